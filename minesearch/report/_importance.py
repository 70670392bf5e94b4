"""Which recipe parameters explain the search metric: fANOVA over an Optuna study rebuilt from the
finished trials (the control and confirmations left out: they are not the sampler's proposals)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna

from minesearch.results import TrialResult

MIN_IMPORTANCE_TRIALS = 3


def param_importance(
    trials: Sequence[TrialResult], metric: str, mode: str
) -> tuple[dict[str, float], list[str], str | None]:
    """fANOVA importances of the search's finished trials, the varying numeric params left out
    (Optuna rates only params every trial has), and why nothing was rated (or None).

    The control is left out: it is not a proposal of the search's sampler."""
    finished = [t for t in trials if t.status == "finished" and t.score(metric) is not None]
    finished = [t for t in finished if t.role == "trial"]
    if len(finished) < MIN_IMPORTANCE_TRIALS:
        return {}, [], f"{len(finished)} finished trial(s); needs {MIN_IMPORTANCE_TRIALS}"
    space, unrated = _varying_space(finished)
    if len(space) < 2:
        return {}, unrated, f"{len(space)} parameter(s) vary among the finished trials; needs 2"
    if len({t.score(metric) for t in finished}) < 2:
        return {}, unrated, "every finished trial has the same score: nothing to explain"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line in the report
    try:
        study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for t in finished:
        values = {k: _value(t.params.get(k), d) for k, d in space.items()}
        study.add_trial(
            optuna.trial.create_trial(params=values, distributions=space, value=t.score(metric))
        )
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)  # same data, same numbers
    try:
        importance = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except RuntimeError as exc:  # fANOVA's "zero total variance in all trees" on tiny searches
        return {}, unrated, f"fANOVA could not rate these trials ({exc})"
    return {k: float(v) for k, v in importance.items()}, unrated, None


def _varying_space(
    trials: Sequence[TrialResult],
) -> tuple[dict[str, optuna.distributions.BaseDistribution], list[str]]:
    """Numbers as floats, strings as categories ("n/a" where a recipe lacks the param)."""
    space: dict[str, optuna.distributions.BaseDistribution] = {}
    unrated = []
    for key in sorted({k for t in trials for k in t.params}):
        raw = [t.params.get(key) for t in trials]
        given = [v for v in raw if v is not None]
        numbers = [n for v in given if (n := _float(v)) is not None]
        if len(set(raw)) < 2:
            continue
        if len(numbers) == len(given):
            if len(given) < len(raw):
                unrated.append(key)
                continue
            low, high = min(numbers), max(numbers)
            # Log scale for wide positive ranges (lr): fANOVA's variance splits follow the scale.
            log = low > 0 and high / low >= 10
            space[key] = optuna.distributions.FloatDistribution(low, high, log=log)
        else:
            choices = sorted({v or "n/a" for v in raw})
            space[key] = optuna.distributions.CategoricalDistribution(choices)
    return space, unrated


def _value(raw: str | None, distribution: optuna.distributions.BaseDistribution) -> str | float:
    if isinstance(distribution, optuna.distributions.FloatDistribution):
        return float(raw or "nan")
    return raw or "n/a"


def _float(raw: str | None) -> float | None:
    try:
        value = float(raw or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None
