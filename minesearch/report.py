"""The report of a search: leaderboard, parameter importance and plots, read back from MLflow.

It reads the MLflow store rather than Ray's results so that it works on any search in a store,
long after its Ray cluster is gone, and the same way when `minesearch run` calls it at the end.
It stays cheap on large searches: one `search_runs` gives every child run with its last metric
values and params; metric histories are fetched only for the few trials shown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import optuna
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from minesearch.plots import format_leaderboard, write_plots
from minesearch.spec import load_spec
from minesearch.tracking import (
    ROLE_TAG,
    SEARCH_TAG,
    TRIAL_TAG,
    missing_store,
    resolve_tracking_uri,
)

__all__ = [
    "Report",
    "ReportError",
    "Row",
    "TrialRun",
    "attach",
    "build_report",
    "format_leaderboard",
    "locate",
    "param_importance",
    "rank",
    "write_plots",
]

Status = Literal["finished", "pruned", "failed", "killed", "running"]
Series = list[tuple[int, float]]  # (epoch, value), one point per epoch
STOPPED_TAG = "minesearch.stopped"  # set on a KILLED child run that ASHA stopped early
MINING = ("mining.hard", "mining.semihard", "mining.easy")
MINING_TRIALS = 3
MIN_IMPORTANCE_TRIALS = 3
ARTIFACT_DIR = "report"


class ReportError(LookupError):
    """The store, experiment or runs asked for do not exist; the message says which."""


@dataclass(frozen=True)
class TrialRun:
    """One child run as the report needs it (MLflow params are strings, as logged)."""

    run_id: str
    trial_id: str
    label: str  # the run name: the recipe label and the trial id
    status: Status
    params: dict[str, str]
    score: float | None  # last logged value of the search metric
    control: bool = False  # the default recipe trained beside the search

    @property
    def margin(self) -> float | None:
        """The miner's margin when it has one (it chose the triplets), else the loss's."""
        return _float(self.params.get("miner.margin") or self.params.get("loss.margin"))


@dataclass(frozen=True)
class Row:
    """A leaderboard line: `delta` is score - control's score (None without a control)."""

    rank: int
    trial: TrialRun
    score: float
    baseline: float | None  # epoch 0: the untrained model
    delta: float | None
    epochs: int  # last epoch logged


@dataclass(frozen=True)
class Report:
    tracking_uri: str
    experiment: str
    parent_run_id: str
    parent_name: str
    metric: str
    mode: Literal["max", "min"]
    trials: list[TrialRun]  # every child run, control included
    rows: list[Row]  # the top N, best first
    control: TrialRun | None
    mining: dict[str, dict[str, Series]]  # run id -> mining.* key -> curve, for the top trials
    importance: dict[str, float]  # param -> fANOVA importance (sums to 1), most important first
    unrated: list[str] = field(default_factory=list)  # varying numbers asked only for some recipes
    skipped: dict[str, str] = field(default_factory=dict)  # plot -> why it is not drawn

    @property
    def ranked(self) -> list[TrialRun]:
        return rank(self.trials, self.mode)

    def count(self, status: Status) -> int:
        return sum(1 for t in self.trials if t.status == status and not t.control)


def locate(target: str | None, tracking_uri: str | None) -> tuple[str | None, str]:
    """(experiment, tracking URI) for a space file or an experiment name (None: any experiment).

    A space file gives its experiment and its `tracking.uri`; an explicit URI wins, then the space
    file's, then $MLFLOW_TRACKING_URI, then ./mlflow.db. Raises SpecError for a bad space file."""
    is_space = target is not None and (Path(target).is_file() or target.endswith((".yaml", ".yml")))
    spec = load_spec(target) if is_space and target is not None else None
    configured = tracking_uri or (spec.tracking.uri if spec is not None else None)
    return (spec.experiment if spec is not None else target), resolve_tracking_uri(configured)


def build_report(
    tracking_uri: str, experiment: str | None, parent_run_id: str | None = None, top: int = 5
) -> Report:
    """Read a search (default: the experiment's newest parent run; any experiment if None)."""
    client = _client(tracking_uri)
    try:
        parent = _parent(client, experiment, parent_run_id)
        children = _children(client, parent)
        experiment_name = client.get_experiment(parent.info.experiment_id).name
    except MlflowException as exc:
        raise ReportError(f"cannot read the search from {tracking_uri}: {exc.message}") from None
    params = parent.data.params
    if "metric" not in params or params.get("mode") not in ("max", "min"):
        raise ReportError(f"run {parent.info.run_id} has no metric/mode params: not a search")
    metric = params["metric"]
    mode: Literal["max", "min"] = "max" if params["mode"] == "max" else "min"
    if not children:
        raise ReportError(f"search {parent.info.run_name} ({parent.info.run_id}) has no trials")
    trials = [_trial(run, metric) for run in children]
    control = next((t for t in trials if t.control), None)
    ranked = rank(trials, mode)
    rows = [_row(client, metric, control, i + 1, t) for i, t in enumerate(ranked[:top])]
    curves = {
        t.run_id: {k: _history(client, t.run_id, k) for k in MINING} for t in ranked[:MINING_TRIALS]
    }
    mining = {run_id: c for run_id, c in curves.items() if any(c.values())}
    importance, unrated, why_not = param_importance(trials, mode)
    return Report(
        tracking_uri=tracking_uri,
        experiment=experiment_name,
        parent_run_id=parent.info.run_id,
        parent_name=parent.info.run_name or "",
        metric=metric,
        mode=mode,
        trials=trials,
        rows=rows,
        control=control,
        mining=mining,
        importance=importance,
        unrated=unrated,
        skipped=_skipped(ranked, mining, why_not),
    )


def rank(trials: Sequence[TrialRun], mode: str) -> list[TrialRun]:
    """Every trial with a score except failed ones, best first (pruned ones keep theirs)."""
    scored = [t for t in trials if t.status != "failed" and t.score is not None]
    sign = -1.0 if mode == "max" else 1.0
    return sorted(scored, key=lambda t: (sign * (t.score or 0.0), t.label))


def attach(report: Report, paths: Sequence[Path]) -> None:
    """Log the plots and the leaderboard text to the parent run under `report/`."""
    client = MlflowClient(report.tracking_uri)
    for path in paths:
        client.log_artifact(report.parent_run_id, str(path), ARTIFACT_DIR)
    client.log_text(
        report.parent_run_id, format_leaderboard(report) + "\n", f"{ARTIFACT_DIR}/leaderboard.txt"
    )


def param_importance(
    trials: Sequence[TrialRun], mode: str
) -> tuple[dict[str, float], list[str], str | None]:
    """fANOVA importances of the search's finished trials, the varying numeric params left out
    (Optuna rates only params every trial has), and why nothing was rated (or None).

    The control is left out: it is not a proposal of the search's sampler."""
    finished = [t for t in trials if t.status == "finished" and t.score is not None]
    finished = [t for t in finished if not t.control]
    if len(finished) < MIN_IMPORTANCE_TRIALS:
        return {}, [], f"{len(finished)} finished trial(s); needs {MIN_IMPORTANCE_TRIALS}"
    space, unrated = _varying_space(finished)
    if len(space) < 2:
        return {}, unrated, f"{len(space)} parameter(s) vary among the finished trials; needs 2"
    if len({t.score for t in finished}) < 2:
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
            optuna.trial.create_trial(params=values, distributions=space, value=t.score)
        )
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)  # same data, same numbers
    try:
        importance = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except RuntimeError as exc:  # fANOVA's "zero total variance in all trees" on tiny searches
        return {}, unrated, f"fANOVA could not rate these trials ({exc})"
    return {k: float(v) for k, v in importance.items()}, unrated, None


def _varying_space(
    trials: Sequence[TrialRun],
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


def _client(tracking_uri: str) -> MlflowClient:
    """A client on an existing store: MLflow would silently create an empty SQLite file."""
    if (path := missing_store(tracking_uri)) is not None:
        raise ReportError(f"no MLflow store at {path} (give --tracking-uri or a space file)")
    return MlflowClient(tracking_uri)


def _parent(client: MlflowClient, experiment: str | None, run_id: str | None) -> Run:
    experiment_ids = None
    if experiment is not None:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            known = sorted(e.name for e in client.search_experiments())
            raise ReportError(f"no experiment {experiment!r} in the store; known: {known}")
        experiment_ids = [found.experiment_id]
    if run_id is not None:
        return _given_parent(client, run_id, experiment_ids)
    ids = experiment_ids or [e.experiment_id for e in client.search_experiments()]
    newest = client.search_runs(
        ids,
        filter_string=f"tags.`{SEARCH_TAG}` = 'parent'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not newest:
        where = f"experiment {experiment!r}" if experiment else "the store"
        raise ReportError(f"no search (parent run) in {where}")
    return newest[0]


def _given_parent(client: MlflowClient, run_id: str, experiment_ids: list[str] | None) -> Run:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ReportError(f"no run {run_id!r} in the store") from None
    if experiment_ids is not None and run.info.experiment_id not in experiment_ids:
        raise ReportError(f"run {run_id} is not in the experiment given")
    if run.data.tags.get(SEARCH_TAG) != "parent":
        parent = run.data.tags.get(MLFLOW_PARENT_RUN_ID)
        hint = f" (it is a trial of search {parent})" if parent else ""
        raise ReportError(f"run {run_id} is not a search's parent run{hint}")
    return run


def _children(client: MlflowClient, parent: Run) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:  # one page (1000 runs) covers any ordinary search
        page = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'",
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _trial(run: Run, metric: str) -> TrialRun:
    tags = run.data.tags
    return TrialRun(
        run_id=run.info.run_id,
        trial_id=tags.get(TRIAL_TAG, run.info.run_id[:8]),
        label=run.info.run_name or run.info.run_id,
        status=_status(run),
        params=dict(run.data.params),
        score=run.data.metrics.get(metric),
        control=tags.get(ROLE_TAG) == "control",
    )


def _status(run: Run) -> Status:
    status = run.info.status
    if status == "KILLED":
        return "pruned" if run.data.tags.get(STOPPED_TAG) else "killed"
    if status in ("FINISHED", "FAILED"):
        return "finished" if status == "FINISHED" else "failed"
    return "running"  # RUNNING or SCHEDULED: the search is still going


def _row(
    client: MlflowClient, metric: str, control: TrialRun | None, place: int, trial: TrialRun
) -> Row:
    history = _history(client, trial.run_id, metric)
    baseline = next((v for step, v in history if step == 0), None)
    score = trial.score or 0.0
    return Row(
        rank=place,
        trial=trial,
        score=score,
        baseline=baseline,
        delta=None if control is None or control.score is None else score - control.score,
        epochs=history[-1][0] if history else 0,
    )


def _history(client: MlflowClient, run_id: str, key: str) -> Series:
    """One value per epoch (the latest logged, should a step have been logged twice)."""
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return sorted({m.step: m.value for m in points}.items())


def _skipped(
    scored: list[TrialRun], mining: dict[str, dict[str, Series]], importance_note: str | None
) -> dict[str, str]:
    """Why a plot is not drawn, decided here so the text and `write_plots` agree."""
    skipped = {}
    if not any(t.margin is not None for t in scored):
        skipped["margin"] = "no scored trial has a loss or miner margin"
    if not scored:
        skipped["loss_miner"] = "no scored trial"
    if importance_note is not None:
        skipped["importance"] = importance_note
    if not mining:
        skipped["mining"] = "the top trials logged no mining.* metrics"
    return skipped
