"""What the user sees while a search runs: a header, a progress line and one line per trial.

Pure state and rendering, no Ray: `SearchView` is told of trial events (by `_progress`'s Tune
callback) and answers with the text to show. On a terminal the whole view is redrawn in place
(`live_renderable`, for rich's Live); elsewhere (CI, a pipe, a file) each event that matters
(started, pruned, finished, failed; not every epoch) is one plain line (`event_line`), with no
control characters, so a log stays short and greppable.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Literal, get_args

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from minesearch.results import Status

# How the view is drawn: redrawn in place on a terminal (plain lines elsewhere), or plain lines
# always; no view (None) shows nothing, for a caller that reads the result (`minesearch.run`).
ViewMode = Literal["live", "plain"]
VIEW_MODES: tuple[ViewMode, ...] = get_args(ViewMode)
RECIPE_WIDTH = 44  # the table cuts a longer recipe label (plain lines and MLflow have it whole)
REASON_WIDTH = 70  # the first line of a failure, cut: the log file and MLflow have the rest
ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit))\b.*:")
SNIPPET = re.compile(r"\[Rank [\d,]+ Error Snippet\]:")  # Ray Train's WorkerGroupError
RAY_WRAPPERS = frozenset(
    {"RayTaskError", "RayActorError", "WorkerGroupError", "TrainingFailedError", "TuneError"}
)


@dataclass(frozen=True)
class Header:
    """Where and what: shown once above the trials."""

    space: str  # the space's name (and file)
    data: str  # e.g. "digits, split by class (val 0.3, test 0.0)"
    trials: int
    epochs: int
    workers: int
    store: str  # the MLflow tracking URI
    ray: str  # the Ray address, or "local"
    log_file: str | None  # where Ray's own output went; None with --verbose

    def lines(self) -> list[str]:
        lines = [
            f"search {self.space}: {self.trials} trials x {self.epochs} epochs, "
            f"{self.workers} worker{'s' if self.workers != 1 else ''} each",
            f"  data   {self.data}",
            f"  store  {self.store}",
            f"  ray    {self.ray}",
        ]
        if self.log_file:
            lines.append(f"  log    {self.log_file}  (Ray's output; --verbose shows it here)")
        return lines


Scores = tuple[int, float | None, float | None]  # (epoch, the metric, the selected score so far)


@dataclass
class TrialLine:
    """One trial as the view knows it; `number` is its place in the order trials started."""

    number: int
    trial_id: str
    recipe: str
    epochs: int
    epoch: int = 0
    score: float | None = None  # the metric at the latest epoch
    best: float | None = None  # the selected score so far (what the trial is ranked by)
    status: Status = "running"
    reason: str = ""  # why it failed


@dataclass
class SearchView:
    """The search's progress: trials by id, in the order they started."""

    title: str  # "trials", "control", "confirmations"
    metric: str
    total: int  # trials planned
    epochs: int
    header: Header | None = None
    started_at: float = field(default_factory=time.monotonic)
    trials: dict[str, TrialLine] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)  # seconds of each ended trial
    _began: dict[str, float] = field(default_factory=dict)

    # --- events: each returns the plain line to print, or None when a terminal redraw suffices

    def start(
        self, trial_id: str, recipe: str, now: float | None = None, epochs: int | None = None
    ) -> str | None:
        """A trial's line; `epochs`: its own budget where it has one (the test estimate's)."""
        if trial_id in self.trials:  # restarted or resumed: the same line, not a new one
            return None
        line = TrialLine(len(self.trials) + 1, trial_id, recipe, epochs or self.epochs)
        self.trials[trial_id] = line
        self._began[trial_id] = time.monotonic() if now is None else now
        return event_line(self, line)

    def epoch(self, trial_id: str, scores: Scores) -> None:
        line = self.trials.get(trial_id)
        if line is None:
            return
        epoch, score, best = scores
        line.epoch = max(line.epoch, epoch)
        line.score = score if score is not None else line.score
        line.best = best if best is not None else line.best

    def ended_before(
        self, trial_id: str, recipe: str, status: Status, scores: Scores, reason: str = ""
    ) -> str | None:
        """A trial that ended before this run of the search (one resumed): done, with its last
        scores, and not timed (the ETA is this run's pace)."""
        if trial_id in self.trials:
            return None
        line = TrialLine(len(self.trials) + 1, trial_id, recipe, self.epochs, *scores, status)
        line.reason = first_line(reason)
        self.trials[trial_id] = line
        return event_line(self, line)

    def end(
        self, trial_id: str, status: Status, reason: str = "", now: float | None = None
    ) -> str | None:
        line = self.trials.get(trial_id)
        if line is None or line.status in ("finished", "pruned", "failed"):
            return None
        line.status = status
        line.reason = first_line(reason)
        began = self._began.get(trial_id)
        if began is not None:
            self.durations.append((time.monotonic() if now is None else now) - began)
        return event_line(self, line)

    # --- the numbers the progress line shows

    @property
    def done(self) -> int:
        return sum(t.status in ("finished", "pruned", "failed") for t in self.trials.values())

    def elapsed(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.started_at

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, from the trials that ended in this run: their mean time times what is
        left. A pruned trial is shorter than a full one, so this is a guess that improves as they
        end. None until a trial has ended."""
        if not self.durations:
            return None
        left = max(0, self.total - self.done)
        return left * (self.elapsed(now) / len(self.durations))


def first_line(reason: str) -> str:
    """The line of an error that says what went wrong. Ray's error files end a traceback with the
    exception's message, but wrap a worker's error in their own (RayTaskError, WorkerGroupError
    with one "[Rank r Error Snippet]" section per distinct worker error, the first usually the
    cause): in the first snippet if any, the last `SomeError: message` line that is not one of
    Ray's wrappers, else the last line."""
    snippets = SNIPPET.split(reason)
    text = snippets[1] if len(snippets) > 1 else reason
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    raised = [
        line
        for line in lines
        if (found := ERROR_LINE.match(line)) and found.group(1).split(".")[-1] not in RAY_WRAPPERS
    ]
    message = raised[-1] if raised else lines[-1]
    return message if len(message) <= REASON_WIDTH else message[: REASON_WIDTH - 1] + "…"


def short(recipe: str) -> str:
    return recipe if len(recipe) <= RECIPE_WIDTH else recipe[: RECIPE_WIDTH - 1] + "…"


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def score_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def status_text(line: TrialLine) -> str:
    if line.status == "pruned":
        return f"pruned at epoch {line.epoch}"
    if line.status == "failed":
        return f"failed: {line.reason or 'see the log'}"
    return line.status


def event_line(view: SearchView, line: TrialLine) -> str:
    """The plain line of a trial event, e.g.
    `[3/10] trial 2 ab12cd34  Contrastive+BatchHardMiner  pruned at epoch 2  ...`."""
    where = f"[{view.done}/{view.total}] {view.title.rstrip('s')} {line.number} {line.trial_id}"
    text = f"{where}  {line.recipe}  {status_text(line)}"  # in full: a log is grepped
    if line.status in ("finished", "pruned"):
        text += (
            f"  {view.metric} {score_text(line.score)} (best {score_text(line.best)}) "
            f"epoch {line.epoch}/{line.epochs}"
        )
    return text


def live_renderable(view: SearchView, now: float | None = None) -> RenderableType:
    """The view for a terminal: the header, a progress bar, a table of trials."""
    parts: list[RenderableType] = []
    if view.header is not None:
        parts.append(Text("\n".join(view.header.lines()), style="dim"))
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        Text(f"{view.title} {view.done}/{view.total}", style="bold"),
        ProgressBar(total=max(1, view.total), completed=view.done, width=30),
        Text(f"elapsed {clock(view.elapsed(now))}  eta {clock(view.eta(now))}"),
    )
    parts.append(bar)
    table = Table(box=None, padding=(0, 2), show_edge=False, header_style="bold")
    for name, justify in (
        ("#", "right"),
        ("trial", "left"),
        ("recipe", "left"),
        ("epoch", "right"),
        (view.metric, "right"),
        ("best", "right"),
        ("status", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    styles = {"running": "cyan", "finished": "green", "pruned": "yellow", "failed": "red"}
    for line in view.trials.values():
        table.add_row(  # Text, not str: rich would read `[semihard]` in a label as markup
            str(line.number),
            Text(line.trial_id),
            Text(short(line.recipe)),
            f"{line.epoch}/{line.epochs}",
            score_text(line.score),
            score_text(line.best),
            Text(status_text(line), style=styles.get(line.status, "")),
        )
    parts.append(table)
    return Group(*parts)
