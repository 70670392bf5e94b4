"""The report of a search: its leaderboard rows, mining curves and parameter importance.

Built on `minesearch.results.SearchResult` (read from MLflow by `minesearch.tracking`), the same
model the end of a search reads, so `minesearch run` and `minesearch report` say the same thing.
Metric histories are fetched only for the trials shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from minesearch.config import load_spec
from minesearch.config.vocab import Mode
from minesearch.report._importance import param_importance
from minesearch.results import (
    Confirmation,
    SearchResult,
    Status,
    TrialResult,
    confirmations,
    rank,
)
from minesearch.tracking import (
    Series,
    StoreError,
    find_search,
    metric_history,
    read_search,
    resolve_tracking_uri,
)

MINING = ("mining.hard", "mining.semihard", "mining.easy")
MINING_TRIALS = 3


@dataclass(frozen=True)
class Row:
    """A leaderboard line: `delta` is score - control's score (None without a control)."""

    rank: int
    trial: TrialResult
    score: float
    baseline: float | None  # epoch 0: the untrained model
    delta: float | None
    epochs: int  # last epoch logged


@dataclass(frozen=True)
class Report:
    search: SearchResult
    rows: list[Row]  # the top N, best first
    mining: dict[str, dict[str, Series]]  # run id -> mining.* key -> curve, for the top trials
    importance: dict[str, float]  # param -> fANOVA importance (sums to 1), most important first
    confirmations: list[Confirmation] = field(default_factory=list)
    unrated: list[str] = field(default_factory=list)  # varying numbers asked only for some recipes
    skipped: dict[str, str] = field(default_factory=dict)  # plot -> why it is not drawn

    @property
    def metric(self) -> str:
        return self.search.metric

    @property
    def mode(self) -> Mode:
        return self.search.mode

    @property
    def trials(self) -> list[TrialResult]:
        """The searched trials and the control (confirmations are reported apart)."""
        return [t for t in self.search.trials if t.role in ("trial", "control")]

    @property
    def control(self) -> TrialResult | None:
        return self.search.control

    @property
    def ranked(self) -> list[TrialResult]:
        """The searched trials and the control with a score, best first."""
        return rank(self.trials, self.metric, self.mode)

    def score(self, trial: TrialResult) -> float | None:
        return trial.score(self.metric)

    def count(self, status: Status) -> int:
        return self.search.count(status)


def locate(target: str | None, tracking_uri: str | None) -> tuple[str | None, str]:
    """(experiment, tracking URI) for a space file or an experiment name (None: any experiment).

    A space file gives its experiment and its `tracking.uri`; an explicit URI wins, then the space
    file's, then $MLFLOW_TRACKING_URI, then ./mlflow.db. Raises SpecError for a bad space file."""
    is_space = target is not None and (Path(target).is_file() or target.endswith((".yaml", ".yml")))
    spec = load_spec(target) if is_space and target is not None else None
    configured = tracking_uri or (spec.tracking.uri if spec is not None else None)
    return (spec.experiment if spec is not None else target), resolve_tracking_uri(configured)


def read_report(
    tracking_uri: str, experiment: str | None, parent_run_id: str | None = None, top: int = 5
) -> Report:
    """The report of a search in the store (default: the experiment's newest; any experiment's
    if None). Raises `minesearch.tracking.StoreError` when there is none."""
    run_id = find_search(tracking_uri, experiment, parent_run_id)
    return build_report(read_search(tracking_uri, run_id), top)


def build_report(search: SearchResult, top: int = 5) -> Report:
    if not search.trials:
        raise StoreError(f"search {search.parent_name} ({search.parent_run_id}) has no trials")
    partial = Report(search, [], {}, {})
    ranked = partial.ranked
    rows = [_row(search, i + 1, t) for i, t in enumerate(ranked[:top])]
    uri = search.tracking_uri
    curves = {
        t.run_id: {k: metric_history(uri, t.run_id, k) for k in MINING}
        for t in ranked[:MINING_TRIALS]
    }
    mining = {run_id: c for run_id, c in curves.items() if any(c.values())}
    importance, unrated, why_not = param_importance(search.trials, search.metric, search.mode)
    return Report(
        search=search,
        rows=rows,
        mining=mining,
        importance=importance,
        confirmations=confirmations(search),
        unrated=unrated,
        skipped=_skipped(ranked, mining, why_not),
    )


def _row(search: SearchResult, place: int, trial: TrialResult) -> Row:
    history = metric_history(search.tracking_uri, trial.run_id, search.metric)
    baseline = next((v for step, v in history if step == 0), None)
    score = trial.score(search.metric) or 0.0
    control = search.control
    control_score = control.score(search.metric) if control is not None else None
    return Row(
        rank=place,
        trial=trial,
        score=score,
        baseline=baseline,
        delta=None if control_score is None else score - control_score,
        epochs=trial.epochs,
    )


def _skipped(
    scored: list[TrialResult], mining: dict[str, dict[str, Series]], importance_note: str | None
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
