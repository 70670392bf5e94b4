"""The Tune callback that keeps the user's view of a search (`_view`) up to date, and where the
view is drawn: rich's Live on a terminal, plain lines anywhere else.

Tune pickles its callbacks with the experiment's state (a resumed search gets them back from
there), so the callback keeps only picklable settings; its view and its output are made in
`setup`, in the driver that runs the fit. A restored callback has no header (it described the
first run's Ray and log: the resumed driver shows its own, `show_header`), and its view starts
from the trials Tune restored as ended.

Nothing here writes unless a view mode asks it to (`minesearch.run` shows nothing by default):
the driver's messages go through `tell`, which logs them when there is no view.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

from ray.tune import Callback
from ray.tune.experiment import Trial
from rich.console import Console
from rich.live import Live

from minesearch.config.vocab import EPOCH, SELECTED_PREFIX
from minesearch.recipe import TrialConfig
from minesearch.search._recipe_search import budget_of, stopped_early
from minesearch.search._view import (
    Header,
    Scores,
    SearchView,
    Status,
    ViewMode,
    live_renderable,
)

logger = logging.getLogger(__name__)


class Output(Protocol):
    """Where the view goes."""

    def event(self, line: str | None) -> None: ...
    def refresh(self) -> None: ...
    def close(self) -> None: ...


class PlainOutput:
    """One line per event that matters (CI, a pipe, a file): no redraws, no control characters."""

    def __init__(self, view: SearchView, stream: TextIO) -> None:
        self.stream = stream
        if view.header is not None:
            self.event("\n".join(view.header.lines()))

    def event(self, line: str | None) -> None:
        if line is not None:
            print(line, file=self.stream, flush=True)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


class NoOutput:
    """No view: the caller reads the result (`minesearch.run` without `view`)."""

    def event(self, line: str | None) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


class LiveOutput:
    """The whole view redrawn in place on a terminal; its last frame stays on screen."""

    def __init__(self, view: SearchView, stream: TextIO) -> None:
        self.live = Live(
            get_renderable=lambda: live_renderable(view),
            console=Console(file=stream),
            refresh_per_second=2,  # the elapsed time and ETA tick; cheap on 2 cores
            redirect_stdout=True,  # a message printed meanwhile goes above the view
            redirect_stderr=True,
        )
        self.live.start()

    def event(self, line: str | None) -> None:
        self.live.refresh()

    def refresh(self) -> None:
        self.live.refresh()

    def close(self) -> None:
        if self.live.is_started:
            self.live.refresh()
            self.live.stop()


def tell(mode: ViewMode | None, text: str) -> None:
    """A message of the driver for the user (a resume, the pretrained bar, a warm start): a line
    with the view (above it when live: rich redirects stdout), else logged, so that a caller
    without a view can still have it."""
    if mode is None:
        logger.info(text)
    else:
        print(text, file=sys.stdout, flush=True)


def show_header(header: Header, mode: ViewMode | None) -> None:
    """A resumed search's header (this run's Ray and log), shown by its driver: the view that
    Tune restores has none."""
    tell(mode, "\n".join(header.lines()))


def open_output(view: SearchView, stream: TextIO, mode: ViewMode | None) -> Output:
    """Live on a terminal when asked, else plain lines (a pipe, a file, CI, and --verbose, whose
    Ray lines interleave with ours); nothing without a mode."""
    if mode is None:
        return NoOutput()
    if mode == "live" and stream.isatty():
        return LiveOutput(view, stream)
    return PlainOutput(view, stream)


class ViewCallback(Callback):
    """Tells the view of each trial's start, epochs and end (driver side)."""

    def __init__(
        self,
        title: str,
        metric: str,
        total: int,
        epochs: int,
        header: Header | None = None,
        mode: ViewMode | None = None,
    ) -> None:
        self.settings = (title, metric, total, epochs, header)
        self.mode = mode
        self.view: SearchView | None = None
        self.output: Output | None = None
        self.stepped = False  # whether this driver's run has had its first step

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings, "mode": self.mode, "view": None, "output": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restored (a resumed search): without the header, which was the first run's."""
        title, metric, total, epochs, _ = state["settings"]
        self.__dict__.update({**state, "settings": (title, metric, total, epochs, None)})
        self.stepped = False

    def open(self) -> SearchView:
        if self.view is None or self.output is None:
            title, metric, total, epochs, header = self.settings
            self.view = SearchView(title, metric, total, epochs, header)
            self.output = open_output(self.view, sys.stdout, self.mode)
        return self.view

    def close(self) -> None:
        """Stops a live view (idempotent): Tune's end, or the driver's finally on an error."""
        if self.output is not None:
            self.output.close()
        self.output = None

    def _event(self, line: str | None) -> None:
        if self.output is not None:
            self.output.event(line)

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        """Tune knows the planned trials best (a finite space may have fewer than asked)."""
        if total_num_samples:
            title, metric, _, epochs, header = self.settings
            self.settings = (title, metric, total_num_samples, epochs, header)
            if self.view is not None:  # opened before the fit, to show the header first
                self.view.total = total_num_samples
        self.open()

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        """A resumed search's first step: Tune's trials include those that ended before the
        interruption; they enter the view ended, in the order they were made (trial ids)."""
        view = self.open()
        if self.stepped:
            return
        self.stepped = True
        ended = [t for t in trials if t.status in (Trial.TERMINATED, Trial.ERROR)]
        for trial in sorted(ended, key=lambda t: t.trial_id):
            self._event(view.ended_before(trial.trial_id, *self._ending(view, trial)))

    def _ending(self, view: SearchView, trial: Trial) -> tuple[str, Status, Scores, str]:
        """How a restored trial ended: its recipe, status, last scores and error."""
        failed = trial.status == Trial.ERROR
        status = "failed" if failed else completed(trial, view.epochs)
        last = scores(trial.last_result or {}, view.metric)
        return recipe_label(trial.config), status, last, error_of(trial) if failed else ""

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        view = self.open()
        self._event(start(view, trial))

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        view = self.open()
        if trial.trial_id not in view.trials:  # a resumed trial seen first by its result
            self._event(start(view, trial))
        view.epoch(trial.trial_id, scores(result, view.metric))
        if self.output is not None:
            self.output.refresh()

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        view = self.open()
        self._event(view.end(trial.trial_id, completed(trial, view.epochs)))

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        view = self.open()
        self._event(view.end(trial.trial_id, "failed", error_of(trial)))

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self.close()


def start(view: SearchView, trial: Trial) -> str | None:
    """The trial's line in the view, with its recipe and its own budget of epochs."""
    budget = budget_of(trial.config, view.epochs)
    return view.start(trial.trial_id, recipe_label(trial.config), epochs=budget)


def completed(trial: Trial, epochs: int) -> Status:
    """A trial that ended without an error: stopped early by the scheduler, or finished."""
    budget = budget_of(trial.config, epochs)
    return "pruned" if stopped_early(trial.last_result or {}, budget) else "finished"


def error_of(trial: Trial) -> str:
    return (trial.error_file and _read(trial.error_file)) or "trial raised"


def scores(result: dict[str, Any], metric: str) -> Scores:
    """What the view shows of a trial's result: its epoch, the metric, the selected score."""
    selected = result.get(f"{SELECTED_PREFIX}{metric}")
    return int(result.get(EPOCH, 0)), _number(result.get(metric)), _number(selected)


def recipe_label(config: dict[str, Any]) -> str:
    try:
        return TrialConfig.from_config(config).recipe.label()
    except (KeyError, TypeError, ValueError):  # not a minesearch trial: show what Tune has
        return "?"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
