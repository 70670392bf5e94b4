"""The steps of a search after Tune's fit, each over one explicit `Search`: the control, the
confirmations, the test split of the chosen trials (once, after selection), the verdict and the
parent run's outcome. (The pretrained reference, scored while Tune starts, is `_reference`'s.)
"""

from __future__ import annotations

import math
from typing import Any

from minesearch.config.vocab import COST_METRICS, SELECTED_EPOCH, TEST_PREFIX
from minesearch.results import (
    SHOWN,
    Confirmation,
    SearchResult,
    TrialResult,
    confirmations,
    estimate_of,
    recipe_key,
    unchosen_control_key,
    verdict,
)
from minesearch.search._control_run import run_control
from minesearch.search._rerun import Reruns, run_reruns
from minesearch.search._score_tasks import ScoreJob, has_test_split, score
from minesearch.search._search_state import Search
from minesearch.search._test_estimate_runs import Retrain, run_confirm
from minesearch.tracking import (
    ChildRuns,
    metric_history,
    names,
    read_search,
    recipe_params,
    trial_params,
)


def after_fit(search: Search, confirm: tuple[int, int] | None) -> SearchResult:
    """The control, the test estimate, the test split of the chosen trials, then the verdict and
    the parent run's outcome; the search read back from MLflow at the end.

    `confirm` (`--confirm K,S`): the top K recipes (and the control) retrained with S seeds;
    None: the space's `search.test_seeds` for the chosen recipe and the control, when there is
    a test split."""
    params = trial_params(search.spec)
    result = read_search(search.tracking_uri, search.parent.run_id)
    if search.spec.search.control and result.control is None:  # not trained inside the search
        run_control(
            search.setup,
            search.name,
            search.tracking_uri,
            search.parent.run_id,
            params,
            search.control,
            search.view("control", 1),
        )
        result = read_search(search.tracking_uri, search.parent.run_id)
    if (reruns := run_reruns(search, params, result)) is not None:
        search.parent.log_outcome(*rerun_outcome(reruns))
        result = read_search(search.tracking_uri, search.parent.run_id)
    top, seeds = confirm or (1, search.spec.search.test_seeds or 0)
    if seeds and result.best is not None and (confirm or has_test_split(search.spec)):
        run_confirm(
            search.setup,
            search.name,
            search.tracking_uri,
            search.parent.run_id,
            params,
            (retrains := estimated_recipes(result, top, seeds)),
            search.at_once,
            search.view("test estimate", sum(r.seeds for r in retrains)),
        )
        result = read_search(search.tracking_uri, search.parent.run_id)
    if has_test_split(search.spec):
        score_test_split(search, result)
        result = read_search(search.tracking_uri, search.parent.run_id)
    outcome_params, metrics, tags = outcome(result)
    search.parent.log_outcome(outcome_params, metrics, tags)
    return read_search(search.tracking_uri, search.parent.run_id)


def rerun_outcome(reruns: Reruns) -> tuple[dict[str, Any], dict[str, float], dict[str, str]]:
    """The re-runs on the parent run: each recipe's mean over the units and its p-value against
    the best (rerun.<i>.*, in the order re-run: the top recipes, then the control), how many
    are indistinguishable from the best, and the chosen trial."""
    comparison = reruns.comparison
    tags = {f"{names.RERUN_PREFIX}{i}.recipe": r.label() for i, r in enumerate(reruns.recipes)}
    tags[names.CHOSEN_TAG] = reruns.chosen.trial_id
    metrics = {f"{names.RERUN_PREFIX}units": float(comparison.units)}
    metrics[f"{names.RERUN_PREFIX}indistinguishable"] = float(len(comparison.indistinguishable))
    for i, (mean, p) in enumerate(zip(comparison.means, comparison.p_values, strict=True)):
        metrics[f"{names.RERUN_PREFIX}{i}.mean"] = mean
        metrics[f"{names.RERUN_PREFIX}{i}.worse"] = float(comparison.worse[i])  # after Holm
        if math.isfinite(p):
            metrics[f"{names.RERUN_PREFIX}{i}.p_worse"] = p
    return {}, metrics, tags


def estimated_recipes(result: SearchResult, top: int, seeds: int) -> list[Retrain]:
    """What the test estimate retrains: the chosen recipe (and the next of the top recipes, with
    `--confirm K,S`), and the control, which the verdict weighs on the same classes; each with
    the epochs to train it for (`retrain_epochs`) and its new seeds: `seeds`, one fewer for the
    control when its own run is one of them (`unchosen_control`: the search did not choose it)."""
    chosen: dict[str, TrialResult] = {}
    for trial in [result.best, *result.ranked]:
        if trial is not None and trial.recipe is not None and len(chosen) < top:
            chosen.setdefault(recipe_key(trial.recipe), trial)
    control = result.control
    if control is not None and control.recipe is not None:
        chosen.setdefault(recipe_key(control.recipe), control)
    counted = unchosen_control_key(result)
    retrains = [
        Retrain(trial.recipe, retrain_epochs(trial), seeds - (key == counted))
        for key, trial in chosen.items()
        if trial.recipe is not None
    ]
    return [r for r in retrains if r.seeds > 0]


def retrain_epochs(trial: TrialResult) -> int | None:
    """The epoch the trial was selected at (at least 1), which is the model the search keeps of
    its recipe: retraining past it would pay for epochs whose weights the selection set aside
    (on text, a chosen trial at epoch 1 of 3 made two thirds of its test estimate waste). The
    estimate is then of that model on new seeds, scored at its best val epoch up to there.
    None (the space's budget) when the trial recorded no selection."""
    selected = trial.selected_epoch
    return None if selected is None else max(1, selected)


def score_test_split(search: Search, result: SearchResult) -> None:
    """The test split, once, after selection: the best trial, the control and the confirmations
    from their selected checkpoints, and the pretrained model. A trial's scores go to its child
    run as test.<metric>, the pretrained model's to the parent run as pretrained.test.<metric>."""
    chosen = {"best": result.best, "control": result.control}
    chosen |= {f"confirmation {t.trial_id}": t for t in result.of_role("confirm")}
    trials = {name: t for name, t in chosen.items() if t is not None}
    jobs = {name: job for name, t in trials.items() if (job := ScoreJob.of(t, "test"))}
    if result.pretrained:
        jobs["pretrained"] = ScoreJob("test")
    runs = ChildRuns(search.tracking_uri, search.parent.run_id, "trial", {})
    for name, metrics in score(search.spec, search.setup.storage_path, jobs).items():
        test = {f"{TEST_PREFIX}{k}": v for k, v in metrics.items()}
        if name == "pretrained":
            search.parent.log_metrics({f"{names.PRETRAINED_PREFIX}{k}": v for k, v in test.items()})
        else:
            runs.log_after(trials[name].trial_id, test)


def outcome(result: SearchResult) -> tuple[dict[str, Any], dict[str, float], dict[str, str]]:
    """The parent run's params, metrics and tags once the search is done: the best recipe, its
    selected scores, epoch-0 scores and test scores, the control's, the confirmations', and the
    verdict among it, the control and the pretrained model; and what the search cost, summed
    over its runs."""
    best, control = result.best, result.control
    costs = cost_totals(result)
    if best is None:
        return {}, costs, {}
    params = {f"{names.BEST_PREFIX}{k}": v for k, v in _recipe_params(best).items()}
    metrics = costs | _shown(names.BEST_PREFIX, best)
    metrics |= _shown(names.EPOCH0_PREFIX, epoch0_scores(result.tracking_uri, best))
    if best.selected_epoch is not None:
        metrics[f"{names.BEST_PREFIX}{SELECTED_EPOCH}"] = float(best.selected_epoch)
    if control is not None:
        metrics |= _shown(names.CONTROL_PREFIX, control)
    for name, trial in (("best", best), ("control", control)):  # e.g. best.test.<metric>
        tested = (trial.metrics if trial else {}).items()
        metrics |= {f"{name}.{k}": v for k, v in tested if k.startswith(TEST_PREFIX)}
    for confirmation in confirmations(result):
        metrics |= confirmation_metrics(confirmation, result.metric)
    if control is not None and control.recipe and (estimate := estimate_of(result, control.recipe)):
        metrics |= confirmation_metrics(estimate, result.metric, names.CONTROL_ESTIMATE)
    tags = {names.BEST_TAG: best.trial_id}
    if (found := verdict(result)) is not None:
        tags[names.VERDICT_TAG] = found.name
        margins = {names.VERDICT_MARGIN: found.margin}
        margins[names.VERDICT_CONTROL_MARGIN] = found.control_margin
        metrics |= {k: v for k, v in margins.items() if math.isfinite(v)}
    return params, metrics, tags


def cost_totals(result: SearchResult) -> dict[str, float]:
    """cost.worker_seconds (and cost.gpu_seconds) over every child run, failed and stopped ones
    too (they were paid for): each run's last value is its total (`train.SystemSampler`)."""
    totals: dict[str, float] = {}
    for trial in result.trials:
        for name in COST_METRICS:
            if (value := trial.metrics.get(name)) is not None:
                totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def confirmation_metrics(
    confirmation: Confirmation, metric: str, rank: str | None = None
) -> dict[str, float]:
    """confirm.<rank>.test.<metric>.mean / .ci95 and confirm.<rank>.seeds, for the parent run
    (`rank`: another name, e.g. the control's)."""
    mean, half = confirmation.interval(metric)
    rank = rank or f"{names.CONFIRM_PREFIX}{confirmation.rank}"
    values = {
        f"{rank}.{TEST_PREFIX}{metric}.mean": mean,
        f"{rank}.{TEST_PREFIX}{metric}.ci95": half,
        f"{rank}.seeds": float(len(confirmation.scores)),
    }
    return {k: v for k, v in values.items() if math.isfinite(v)}


def epoch0_scores(tracking_uri: str, trial: TrialResult) -> dict[str, float]:
    """A trial's scores before training (epoch 0), from its metric histories."""
    scores: dict[str, float] = {}
    for key in SHOWN:
        history = dict(metric_history(tracking_uri, trial.run_id, key))
        if 0 in history:
            scores[key] = history[0]
    return scores


def _shown(prefix: str, scores: TrialResult | dict[str, float]) -> dict[str, float]:
    """The SHOWN scores of a trial (its selected epoch's) or of a dict, under `prefix`."""
    values = {
        k: scores.score(k) if isinstance(scores, TrialResult) else scores.get(k) for k in SHOWN
    }
    return {
        f"{prefix}{k}": float(v) for k, v in values.items() if v is not None and math.isfinite(v)
    }


def _recipe_params(trial: TrialResult) -> dict[str, str]:
    if trial.recipe is not None:
        return recipe_params(trial.recipe)
    return dict(trial.params)
