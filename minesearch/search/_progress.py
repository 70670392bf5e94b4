"""The Tune callback that keeps the user's view of a search (`_view`) up to date, and where the
view is drawn: rich's Live on a terminal, plain lines anywhere else.

Tune pickles its callbacks with the experiment's state (a resumed search gets them back from
there), so the callback keeps only picklable settings; its view and its output are made in
`setup`, in the driver that runs the fit.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

from ray.tune import Callback
from ray.tune.experiment import Trial
from rich.console import Console
from rich.live import Live

from minesearch.config.vocab import EPOCH, SELECTED_PREFIX
from minesearch.recipe import TrialConfig
from minesearch.search._searcher import stopped_early
from minesearch.search._view import Header, SearchView, live_renderable


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


def open_output(view: SearchView, stream: TextIO, plain: bool) -> Output:
    """Live on a terminal unless `plain` (--verbose: Ray's own lines interleave with ours)."""
    if not plain and stream.isatty():
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
        plain: bool = False,
    ) -> None:
        self.settings = (title, metric, total, epochs, header)
        self.plain = plain
        self.view: SearchView | None = None
        self.output: Output | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings, "plain": self.plain, "view": None, "output": None}

    def open(self) -> SearchView:
        if self.view is None or self.output is None:
            title, metric, total, epochs, header = self.settings
            self.view = SearchView(title, metric, total, epochs, header)
            self.output = open_output(self.view, sys.stdout, self.plain)
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
        self.open()

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        view = self.open()
        self._event(view.start(trial.trial_id, recipe_label(trial.config)))

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        view = self.open()
        if trial.trial_id not in view.trials:  # a resumed trial seen first by its result
            self._event(view.start(trial.trial_id, recipe_label(trial.config)))
        metric = view.metric
        view.epoch(
            trial.trial_id,
            int(result.get(EPOCH, 0)),
            _number(result.get(metric)),
            _number(result.get(f"{SELECTED_PREFIX}{metric}")),
        )
        if self.output is not None:
            self.output.refresh()

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        view = self.open()
        pruned = stopped_early(trial.last_result or {}, view.epochs)
        self._event(view.end(trial.trial_id, "pruned" if pruned else "finished"))

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        view = self.open()
        reason = (trial.error_file and _read(trial.error_file)) or "trial raised"
        self._event(view.end(trial.trial_id, "failed", reason))

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self.close()


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
