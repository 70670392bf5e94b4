"""The live view of a search, without Ray: its state, its plain lines and its terminal frame."""

from __future__ import annotations

import io
import logging
import pickle
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from rich.console import Console

from minesearch.recipe import Recipe, TrialConfig
from minesearch.search._progress import (
    LiveOutput,
    PlainOutput,
    ViewCallback,
    open_output,
    show_header,
    tell,
)
from minesearch.search._view import (
    Header,
    SearchView,
    clock,
    first_line,
    live_renderable,
)

MAP = "mean_average_precision_at_r"
HEADER = Header(
    space="quickstart-digits (search_spaces/quickstart.yaml)",
    data="digits, split by class (val 0.3, test 0)",
    trials=3,
    epochs=4,
    workers=2,
    store="sqlite:////tmp/mlflow.db",
    ray="local 127.0.0.1:6379 (2 CPUs, 0 GPUs)",
    log_file="/tmp/runs/quickstart-digits-1/ray.log",
)
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def played(view: SearchView) -> list[str | None]:
    """Three trials: one finishes, one is pruned at epoch 2, one fails; clock in fake seconds."""
    view.started_at = 0.0
    events = [
        view.start("t1", "Contrastive+BatchHardMiner", now=0.0),
        view.start("t2", "TripletMargin+TripletMarginMiner[semihard] m=0.21", now=1.0),
    ]
    view.epoch("t1", (1, 0.40, 0.40))
    view.epoch("t1", (4, 0.52, 0.55))
    events.append(view.end("t1", "finished", now=10.0))
    view.epoch("t2", (2, 0.30, 0.31))
    events.append(view.end("t2", "pruned", now=11.0))
    events.append(view.start("t3", "MultiSimilarity", now=11.0))
    traceback = "Traceback (most recent call last):\n  File x\nRuntimeError: loss became nan"
    events.append(view.end("t3", "failed", traceback, now=12.0))
    return events


def test_plain_lines_say_each_event_once_with_scores_and_reasons() -> None:
    view = SearchView("trials", MAP, 3, 4)
    events = played(view)
    assert events[0] == "[0/3] trial 1 t1  Contrastive+BatchHardMiner  running"
    assert events[2] == (
        "[1/3] trial 1 t1  Contrastive+BatchHardMiner  finished  "
        f"{MAP} 0.5200 (best 0.5500) epoch 4/4"
    )
    assert "pruned at epoch 2" in str(events[3]) and "[2/3]" in str(events[3])
    assert str(events[5]).endswith("failed: RuntimeError: loss became nan")
    assert view.end("t3", "failed", "again") is None  # an ended trial ends once
    assert view.start("t1", "x") is None  # a restarted trial is not a new line
    assert view.done == 3 and view.eta(now=12.0) == 0.0


def test_eta_comes_from_ended_trials() -> None:
    view = SearchView("trials", MAP, 4, 4, started_at=0.0)
    view.start("a", "A", now=0.0)
    assert view.eta(now=5.0) is None  # nothing ended yet: no guess
    view.end("a", "finished", now=30.0)
    assert view.eta(now=30.0) == 90.0  # 3 left x 30 s each
    frame = io.StringIO()
    Console(file=frame, width=100).print(live_renderable(view, now=30.0))
    assert "trials 1/4" in frame.getvalue() and "elapsed 00:30  eta 01:30" in frame.getvalue()
    assert clock(3725) == "1:02:05" and clock(None) == "--:--"


def test_the_reason_is_the_workers_error_not_rays_wrapper() -> None:
    error_file = """Failure # 1 (occurred at 2026-11-30_02-30-00)
ray.exceptions.RayTaskError(WorkerGroupError): ray::_Inner.train() (pid=1, ip=10.0.0.1)
ray.train.WorkerGroupError: Training failed due to worker errors:
[Rank 0 Error Snippet]:
Traceback (most recent call last):
  File "minesearch/train/_step.py", line 56, in step
    raise FloatingPointError(f"loss became {loss.item()}")
FloatingPointError: loss became nan
[Rank 1 Error Snippet]:
Traceback (most recent call last):
  File "torch/distributed/distributed_c10d.py", line 3, in all_gather
RuntimeError: Connection closed by peer
"""
    assert first_line(error_file) == "FloatingPointError: loss became nan"  # rank 0: the cause
    tune_error = error_file.split("[Rank 0")[0] + "ValueError: data.path: no file\n"
    assert first_line(tune_error) == "ValueError: data.path: no file"  # not Ray's wrapper
    assert first_line("Traceback ...\nsomething odd") == "something odd"


def test_a_long_reason_or_recipe_is_cut() -> None:
    assert first_line("\n\nValueError: " + "x" * 200).endswith("…")
    assert len(first_line("ValueError: " + "x" * 200)) == 70
    assert first_line("") == ""
    view = SearchView("trials", MAP, 1, 1)
    line = view.start("t", "L" * 80)
    assert line is not None and "L" * 80 in line  # a plain line is grepped: the whole recipe
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(live_renderable(view))
    frame = console.file.getvalue()  # type: ignore[attr-defined]
    assert "L" * 43 + "…" in frame and "L" * 44 not in frame  # the table keeps its width


def test_the_terminal_frame_has_header_progress_and_a_row_per_trial() -> None:
    view = SearchView("trials", MAP, 3, 4, header=HEADER)
    played(view)
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(live_renderable(view, now=12.0))
    frame = console.file.getvalue()  # type: ignore[attr-defined]
    assert "search quickstart-digits" in frame and "3 trials x 4 epochs" in frame
    assert "log    /tmp/runs/quickstart-digits-1/ray.log" in frame
    assert "trials 3/3" in frame and "elapsed 00:12" in frame
    rows = [line for line in frame.splitlines() if re.match(r"\s*\d+\s+t\d", line)]
    assert len(rows) == 3
    assert "4/4" in rows[0] and "0.5200" in rows[0] and "0.5500" in rows[0]
    assert "finished" in rows[0]
    assert "pruned at epoch 2" in rows[1]
    assert "TripletMargin+TripletMarginMiner[semihard]" in rows[1]  # not read as markup
    assert "failed: RuntimeError: loss became nan" in rows[2]


@dataclass
class FakeTrial:
    """The attributes of ray.tune.experiment.Trial that the callback reads."""

    trial_id: str
    config: dict[str, Any]
    error_file: str | None = None
    last_result: dict[str, Any] = field(default_factory=dict)
    status: str = "RUNNING"


CONFIG = TrialConfig(Recipe("ContrastiveLoss", "BatchHardMiner", {}, {}, lr=1e-3)).to_config()


def test_the_callback_prints_plain_events_when_not_on_a_terminal(
    capsys: Any, tmp_path: Any
) -> None:
    callback = ViewCallback("trials", MAP, 10, 4, HEADER, "live")  # live, but not a terminal
    callback.setup(total_num_samples=2)  # Tune's count wins over the space's
    done, pruned = FakeTrial("a1", CONFIG), FakeTrial("b2", CONFIG)
    failed = FakeTrial("c3", CONFIG, error_file=str(tmp_path / "error.txt"))
    (tmp_path / "error.txt").write_text("Traceback ...\nValueError: data.path: no file")
    for trial in (done, pruned, failed):
        callback.on_trial_start(0, [], trial)
    for epoch in range(5):
        result = {"epoch": epoch, MAP: 0.1 * epoch, f"selected.{MAP}": 0.1 * epoch}
        callback.on_trial_result(0, [], done, result)
    done.last_result = {"epoch": 4}
    callback.on_trial_complete(0, [], done)
    callback.on_trial_result(0, [], pruned, {"epoch": 2, MAP: 0.2, f"selected.{MAP}": 0.25})
    pruned.last_result = {"epoch": 2}
    callback.on_trial_complete(0, [], pruned)
    callback.on_trial_error(0, [], failed)
    callback.on_experiment_end([])
    out = capsys.readouterr().out
    assert not CONTROL_CHARS.search(out)
    lines = out.splitlines()
    assert lines[: len(HEADER.lines())] == HEADER.lines()
    events = lines[len(HEADER.lines()) :]
    assert len(events) == 6  # started x3, finished, pruned, failed; no line per epoch
    assert "Contrastive+BatchHardMiner" in events[0]
    assert f"[1/2] trial 1 a1  Contrastive+BatchHardMiner  finished  {MAP} 0.4000" in events[3]
    assert "pruned at epoch 2" in events[4] and "(best 0.2500)" in events[4]
    assert events[5].endswith("failed: ValueError: data.path: no file")


def test_the_callback_pickles_without_its_output_or_header() -> None:
    """Tune saves callbacks with the experiment; a resumed search makes its output anew, and its
    header (its own Ray, its log) comes from the resumed driver, not from the first run."""
    callback = ViewCallback("trials", MAP, 3, 4, HEADER)
    callback.open()
    restored = pickle.loads(pickle.dumps(callback))
    assert restored.view is None and restored.output is None
    assert restored.settings == ("trials", MAP, 3, 4, None)


def test_a_resumed_view_starts_from_the_trials_that_ended_before(capsys: Any) -> None:
    """Tune gives a restored experiment's trials to the first step: those that ended before the
    interruption are in the view (done, numbered first), not counted as this run's pace."""
    restored = pickle.loads(pickle.dumps(ViewCallback("trials", MAP, 4, 4, HEADER, "plain")))
    before = [  # Tune's order: newest result first
        FakeTrial("x_00001", CONFIG, last_result={"epoch": 2, MAP: 0.2}, status="TERMINATED"),
        FakeTrial("x_00000", CONFIG, last_result={"epoch": 4, MAP: 0.5}, status="TERMINATED"),
        FakeTrial("x_00002", CONFIG, error_file="/gone/error.txt", status="ERROR"),
    ]
    again = FakeTrial("x_00003", CONFIG, last_result={"epoch": 1}, status="PENDING")
    restored.setup(total_num_samples=4)
    restored.on_step_begin(0, [*before, again])
    restored.on_step_begin(1, [*before, again])  # once is enough
    view = restored.view
    assert view is not None and view.done == 3 and view.eta() is None  # no trial timed yet
    assert [(t.number, t.trial_id, t.status) for t in view.trials.values()] == [
        (1, "x_00000", "finished"),
        (2, "x_00001", "pruned"),
        (3, "x_00002", "failed"),
    ]
    assert view.trials["x_00000"].score == 0.5 and view.trials["x_00001"].epoch == 2
    restored.on_trial_start(0, [], again)
    again.last_result = {"epoch": 4}
    restored.on_trial_complete(0, [], again)
    restored.on_experiment_end([])
    lines = capsys.readouterr().out.splitlines()
    assert not [line for line in lines if line.startswith("  ray ")]  # the first run's Ray
    assert len(lines) == 5 and lines[0].startswith("[1/4] trial 1 x_00000")
    assert lines[-1].startswith("[4/4] trial 4 x_00003") and "finished" in lines[-1]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_live_view_and_a_pipe_plain_lines() -> None:
    view = SearchView("trials", MAP, 1, 1)
    terminal = FakeTerminal()
    live = open_output(view, terminal, "live")
    assert isinstance(live, LiveOutput)
    view.start("t", "Contrastive")
    live.event(None)
    live.close()
    assert "Contrastive" in terminal.getvalue() and "\x1b[" in terminal.getvalue()
    assert isinstance(open_output(view, FakeTerminal(), "plain"), PlainOutput)
    assert isinstance(open_output(view, io.StringIO(), "live"), PlainOutput)


def test_without_a_view_nothing_is_printed_and_messages_are_logged(
    capsys: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """`minesearch.run` without `view`: the trials' events and the driver's messages reach no
    stream; the messages are logged, for a caller who wants them."""
    callback = ViewCallback("trials", MAP, 1, 4, HEADER)
    callback.setup(total_num_samples=1)
    trial = FakeTrial("a1", CONFIG, last_result={"epoch": 4})
    callback.on_trial_start(0, [], trial)
    callback.on_trial_result(0, [], trial, {"epoch": 4, MAP: 0.5})
    callback.on_trial_complete(0, [], trial)
    callback.on_experiment_end([])
    with caplog.at_level(logging.INFO, logger="minesearch"):
        tell(None, "resuming somewhere")
        show_header(HEADER, None)
    assert capsys.readouterr() == ("", "")
    assert "resuming somewhere" in caplog.messages and HEADER.lines()[0] in caplog.text
    tell("plain", "shown")
    assert capsys.readouterr().out == "shown\n"


def test_a_retrain_with_its_own_budget_finishes_at_it(capsys: Any) -> None:
    """A test-estimate run trains to its recipe's selected epoch (`TrialConfig.epochs`): ending
    there it finished; a searched trial ending at the same epoch was pruned."""
    callback = ViewCallback("test estimate", MAP, 2, 4, None, "live")
    own = TrialConfig.from_config(CONFIG)
    retrain = FakeTrial("r1", TrialConfig(own.recipe, seed=1000, epochs=2).to_config())
    searched = FakeTrial("s1", CONFIG)
    for trial in (retrain, searched):
        callback.on_trial_start(0, [], trial)
        callback.on_trial_result(0, [], trial, {"epoch": 2, MAP: 0.3, f"selected.{MAP}": 0.3})
        trial.last_result = {"epoch": 2}
        callback.on_trial_complete(0, [], trial)
    ended = [line for line in capsys.readouterr().out.splitlines() if "epoch 2" in line]
    assert "r1" in ended[0] and "finished" in ended[0] and "2/2" in ended[0], ended
    assert "s1" in ended[1] and "pruned at epoch 2" in ended[1], ended
