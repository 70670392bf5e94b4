"""A multi-worker trial's Ray Train run, driven from its Tune trial actor.

Ray's own bridge (`TuneReportCallback`) starts a queue actor per trial and leaves the trial's
thread blocked inside `fit()`: a trial Tune stops keeps its run, its workers and their CPUs until
the process dies, which is why Tune could not reuse trial processes (issue 12). Here the run's
controller appends rank 0's reports to a file in a directory of the trial's own (the controller
runs on the trial actor's node: `_ray_internals`), and the trial's thread forwards them to Tune
with `ray.tune.report`, synchronously, as a single-worker trial does. When Tune stops the trial,
that report does not return (Tune ends the thread there); the thread then asks the controller to
abort the run, and the process is free for the next trial at once.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import ray.train
import ray.tune

CHECKPOINT_KEY = "checkpoint_path"  # where a report names its checkpoint, as Ray's bridge does
POLL_S = 0.05  # how often the trial's thread looks for a new report


class ReportToTrial(ray.train.UserCallback):
    """Runs in the Ray Train controller: each report of rank 0 (with its checkpoint's path) as one
    JSON line of the trial's report file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def after_report(
        self,
        run_context: Any,
        metrics: list[dict[str, Any]],
        checkpoint: ray.train.Checkpoint | None,
    ) -> None:
        item = dict(metrics[0])
        if checkpoint is not None:
            item[CHECKPOINT_KEY] = checkpoint.path
        line = json.dumps(item, default=float) + "\n"
        # OSError: the trial has ended, and nobody reads this run anymore
        with contextlib.suppress(OSError), open(self.path, "a") as out:
            out.write(line)


class Channel:
    """The trial's side: a fresh directory holding the report file and, once Tune stopped the
    trial, the stop flag that the controller watches (`_ray_internals.RunWatch`)."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="minesearch-trial-"))
        self.reports = self.directory / "reports.jsonl"
        self.stop_flag = self.directory / "stop"
        self._read = 0  # bytes of the report file already forwarded
        self._users = 2  # the trial's thread and the run's: the last to let go removes it
        self._lock = threading.Lock()

    def new_reports(self) -> list[dict[str, Any]]:
        """Complete lines written since the last call."""
        try:
            with self.reports.open("rb") as source:
                source.seek(self._read)
                data = source.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self._read += end
        return [json.loads(line) for line in data[:end].splitlines()]

    def ask_to_stop(self) -> None:
        with contextlib.suppress(OSError):  # the run has ended and removed the directory
            self.stop_flag.touch()

    def release(self) -> None:
        """One side is done with the directory; it goes when both are."""
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            shutil.rmtree(self.directory, ignore_errors=True)


class Fit(threading.Thread):
    """`trainer.fit()` in a thread of its own, its error kept for the trial's thread."""

    def __init__(self, trainer: Any, channel: Channel) -> None:
        super().__init__(name="TrialFit", daemon=True)
        self.trainer = trainer
        self.channel = channel
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.trainer.fit()
        except BaseException as exc:  # re-raised in the trial's thread
            self.error = exc
        finally:
            self.channel.release()


def run_and_forward(trainer: Any, channel: Channel) -> None:
    """Run the trainer and hand each of its reports to Tune, in order, until the run ends; its
    error, if any, is the trial's. If Tune stops the trial meanwhile (its `report` raises
    SystemExit), the run is aborted."""
    fit = Fit(trainer, channel)
    fit.start()
    try:
        while True:
            ended = not fit.is_alive()  # read before the reports: none is missed after it
            for report in channel.new_reports():
                ray.tune.report(report)
            if ended:
                break
            fit.join(POLL_S)
    finally:
        if fit.is_alive():
            channel.ask_to_stop()
        channel.release()
    if fit.error is not None:
        raise fit.error
