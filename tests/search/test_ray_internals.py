"""Ray's private parts that minesearch uses (`search/_ray_internals.py`) are where Ray 2.60 had
them; an upgrade that moves one fails here, naming it. Also the pieces built on them, without a
Ray session: the trainer's callbacks, the controller-side watch, the report channel."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import pytest
import ray

from minesearch.search._ray_internals import (
    RAY_MINOR,
    RayChanged,
    RunWatch,
    TrialTrainer,
    ray_changes,
    ray_symbol,
    tune_checkpoint_path,
)
from minesearch.search._train_run import CHECKPOINT_KEY, Channel, ReportToTrial

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_ray_has_every_internal_minesearch_uses() -> None:
    assert ray_changes() == []


def test_a_moved_symbol_is_named() -> None:
    with pytest.raises(RayChanged, match=r"ray\.train\.nowhere\.Thing is gone .*_ray_internals"):
        ray_symbol("ray.train.nowhere", "Thing")


def test_ray_is_pinned_to_the_minor_these_internals_were_read_from() -> None:
    (pin,) = re.findall(r'"ray\[[^"]*\]([^"]*)"', (ROOT / "pyproject.toml").read_text())
    major, minor = (int(n) for n in RAY_MINOR.split("."))
    assert pin == f">={major}.{minor},<{major}.{minor + 1}", pin
    assert ray.__version__.startswith(f"{RAY_MINOR}."), ray.__version__


class FakeTrial:
    def __init__(self, path: str | None) -> None:
        self.path = path


def test_a_tune_checkpoint_is_found_under_the_trials_path() -> None:
    trial: Any = FakeTrial("/runs/search/run_trial_1")
    found = tune_checkpoint_path(trial, {"checkpoint_dir_name": "checkpoint_000003"})
    assert found == "/runs/search/run_trial_1/checkpoint_000003"
    assert tune_checkpoint_path(trial, {"checkpoint_dir_name": None}) is None  # a Train trial
    bucket: Any = FakeTrial("bucket/runs/run_trial_1")  # s3: a path in the bucket's filesystem
    assert tune_checkpoint_path(bucket, {"checkpoint_dir_name": "c"}) == "bucket/runs/run_trial_1/c"


def trainer(run_callbacks: tuple[Any, ...]) -> TrialTrainer:
    import ray.train

    made = TrialTrainer(lambda config: None, scaling_config=ray.train.ScalingConfig(num_workers=2))
    made.run_callbacks = run_callbacks
    return made


def names(callbacks: list[Any]) -> set[str]:
    return {type(c).__name__ for c in callbacks}


def test_a_trials_run_drops_the_dataset_manager_and_the_per_run_cleaner() -> None:
    stock = names(trainer(())._create_default_callbacks())
    assert "PlacementGroupCleanerCallback" in stock  # the old way keeps Ray's own cleaner
    assert "DatasetsCallback" not in stock  # no datasets: no dataset manager either way
    watch = RunWatch(cleaner=None, stop_flag="/nowhere")  # type: ignore[arg-type]
    ours = trainer((watch,))._create_default_callbacks()
    assert "PlacementGroupCleanerCallback" not in names(ours)
    assert watch in ours


def test_the_watch_travels_to_the_controller_without_its_thread_state() -> None:
    watch = RunWatch(cleaner="handle", stop_flag="/tmp/x/stop")  # type: ignore[arg-type]
    copy = pickle.loads(pickle.dumps(watch))
    assert (copy.cleaner, copy.stop_flag) == ("handle", "/tmp/x/stop")
    assert not copy._done.is_set()


class FakeCheckpoint:
    path = "/runs/train/trial-1/checkpoint_2026"


def test_the_controller_writes_reports_the_trial_reads_in_order() -> None:
    channel = Channel()
    callback = ReportToTrial(str(channel.reports))
    assert channel.new_reports() == []  # no file yet
    callback.after_report(None, [{"epoch": 0, "m": 0.5}, {"epoch": 0, "m": 0.1}], None)
    callback.after_report(None, [{"epoch": 1, "m": float("nan")}], FakeCheckpoint())  # type: ignore[arg-type]
    with channel.reports.open("a") as out:
        out.write('{"epoch": 2')  # a line being written: not read yet
    first = channel.new_reports()
    assert [r["epoch"] for r in first] == [0, 1]
    assert first[0]["m"] == 0.5  # rank 0's
    assert first[1][CHECKPOINT_KEY] == FakeCheckpoint.path
    assert first[1]["m"] != first[1]["m"]  # NaN survives the trip
    with channel.reports.open("a") as out:
        out.write("}\n")
    assert channel.new_reports() == [{"epoch": 2}]
    assert channel.new_reports() == []
    channel.ask_to_stop()
    assert channel.stop_flag.exists()
    channel.release()
    assert channel.directory.exists()  # the run still uses it
    channel.release()
    assert not channel.directory.exists()
    channel.ask_to_stop()  # the run ended first: nothing to ask, no error
    callback.after_report(None, [{"epoch": 3}], None)  # nobody reads: dropped, no error
