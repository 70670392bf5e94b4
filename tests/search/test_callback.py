"""The driver-side Tune callback that writes child runs, without Ray: nesting, steps, ends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from minesearch.recipe import Recipe, TrialConfig
from minesearch.search._callback import MlflowTrialCallback
from minesearch.tracking import ParentRun, names


@dataclass
class FakeTrial:
    """The attributes of ray.tune.experiment.Trial that the callback reads."""

    trial_id: str
    config: dict[str, Any]
    error_file: str | None = None
    last_result: dict[str, Any] = field(default_factory=dict)


RECIPE = Recipe(
    "TripletMarginLoss",
    "TripletMarginMiner",
    {"margin": 0.1},
    {"margin": 0.1, "type_of_triplets": "semihard"},
    lr=1e-3,
    margin_mode="tied",
)
CONFIG = TrialConfig(RECIPE).to_config()
MAP = "mean_average_precision_at_r"


def test_trial_callback_nests_logs_steps_and_ends_runs(
    tmp_path: Path, parent_spec: Callable[..., dict[str, object]]
) -> None:
    uri = f"sqlite:///{tmp_path}/m.db"
    spec = parent_spec()
    parent = ParentRun.start(uri, "exp", "search", spec, None, tags={})
    callback = MlflowTrialCallback(uri, parent.run_id, {"workers": 1}, epochs=2)
    ok = FakeTrial("t_ok", CONFIG)
    error_file = tmp_path / "error.txt"
    error_file.write_text("FloatingPointError: loss became nan")
    bad = FakeTrial("t_bad", CONFIG, error_file=str(error_file))
    pruned = FakeTrial("t_pruned", CONFIG, last_result={"epoch": 1})
    for trial in (ok, bad, pruned):
        callback.on_trial_start(0, [], trial)  # type: ignore[arg-type]
    for epoch in range(3):
        result = {
            "epoch": epoch,
            "mean_average_precision_at_r": 0.1 * epoch,
            "time_this_iter_s": 1.0,
        }
        callback.on_trial_result(0, [], ok, result)  # type: ignore[arg-type]
        ok.last_result = result
    callback.on_trial_complete(0, [], ok)  # type: ignore[arg-type]
    callback.on_trial_error(0, [], bad)  # type: ignore[arg-type]
    callback.on_trial_complete(0, [], pruned)  # type: ignore[arg-type]

    client = MlflowClient(uri)
    ok_run = client.get_run(callback.runs["t_ok"])
    bad_run = client.get_run(callback.runs["t_bad"])
    assert ok_run.data.tags["mlflow.parentRunId"] == parent.run_id
    assert ok_run.data.tags[names.TRIAL_TAG] == "t_ok"
    assert ok_run.data.params["miner.type_of_triplets"] == "semihard"
    assert ok_run.data.params["loss.margin"] == "0.1"
    history = client.get_metric_history(ok_run.info.run_id, "mean_average_precision_at_r")
    assert [m.step for m in history] == [0, 1, 2]
    assert "time_this_iter_s" not in ok_run.data.metrics
    assert ok_run.info.status == "FINISHED"
    assert bad_run.info.status == "FAILED"
    assert "loss became nan" in bad_run.data.tags["minesearch.error"]
    pruned_run = client.get_run(callback.runs["t_pruned"])
    assert pruned_run.info.status == "FINISHED"  # stopped early by ASHA: a normal outcome
    assert "pruned" in pruned_run.data.tags["minesearch.stopped"]


def test_callback_finds_its_run_again_after_a_restart(tmp_path: Path) -> None:
    """A restarted driver (resume) must not create a second child run for the same trial."""
    uri = f"sqlite:///{tmp_path}/m.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("exp")
    parent = client.create_run(experiment).info.run_id
    trial = FakeTrial("t1", CONFIG)
    first = MlflowTrialCallback(uri, parent, {}, epochs=1).run_id(trial)  # type: ignore[arg-type]
    second = MlflowTrialCallback(uri, parent, {}, epochs=1).run_id(trial)  # type: ignore[arg-type]
    assert first == second
    assert len(client.search_runs([experiment])) == 2  # the parent and one child


def test_a_restarted_trial_does_not_log_an_epoch_twice(tmp_path: Path) -> None:
    """After a driver restart the trial reports its last checkpointed epoch again."""
    uri = f"sqlite:///{tmp_path}/m.db"
    client = MlflowClient(uri)
    parent = client.create_run(client.create_experiment("exp")).info.run_id
    trial = FakeTrial("t1", CONFIG)
    first = MlflowTrialCallback(uri, parent, {}, epochs=3)
    for epoch in (0, 1):
        first.on_trial_result(0, [], trial, {"epoch": epoch, "precision_at_1": 0.5})  # type: ignore[arg-type]
    again = MlflowTrialCallback(uri, parent, {}, epochs=3)  # the resumed driver's callback
    for epoch in (1, 2, 3):
        again.on_trial_result(0, [], trial, {"epoch": epoch, "precision_at_1": 0.6})  # type: ignore[arg-type]
    history = client.get_metric_history(first.runs["t1"], "precision_at_1")
    assert sorted(m.step for m in history) == [0, 1, 2, 3]


def test_runs_of_trials_tune_forgot_are_dropped_at_the_end(tmp_path: Path) -> None:
    """A SIGKILLed driver can start a trial after Tune's last snapshot: on resume Tune does not
    know it and proposes its recipe again. Its run must not stay as a duplicate."""
    uri = f"sqlite:///{tmp_path}/m.db"
    client = MlflowClient(uri)
    parent = client.create_run(client.create_experiment("exp")).info.run_id
    callback = MlflowTrialCallback(uri, parent, {}, epochs=1)
    kept = FakeTrial("kept", CONFIG)
    orphan = FakeTrial("orphan", CONFIG)
    for trial in (kept, orphan):
        callback.on_trial_start(0, [], trial)  # type: ignore[arg-type]
    callback.on_experiment_end([kept])  # type: ignore[list-item]
    alive = client.search_runs([client.get_experiment_by_name("exp").experiment_id])  # type: ignore[union-attr]
    assert {r.data.tags.get("minesearch.trial_id") for r in alive} == {"kept", None}
    assert client.get_run(callback.runs["orphan"]).info.lifecycle_stage == "deleted"


def test_fixed_curves_select_the_best_epoch_and_its_checkpoint(
    tmp_path: Path, parent_spec: Callable[..., dict[str, object]]
) -> None:
    """Two trials with fixed curves: the leaderboard ranks them by their best epoch, and each
    run's checkpoint tag is its selected epoch's checkpoint, not the last one."""
    from minesearch.results import rank
    from minesearch.tracking import read_search
    from minesearch.train import Selected

    uri = f"sqlite:///{tmp_path}/m.db"
    spec = parent_spec(metric=MAP, scheduler="fifo", epochs=3)
    parent = ParentRun.start(uri, "exp", "search", spec, None, tags={})
    callback = MlflowTrialCallback(uri, parent.run_id, {}, epochs=3)
    curves = {"peaks": [0.2, 0.6, 0.4, 0.3], "climbs": [0.2, 0.3, 0.4, 0.5]}
    for name, values in curves.items():
        trial = FakeTrial(name, CONFIG)
        callback.on_trial_start(0, [], trial)  # type: ignore[arg-type]
        selected = Selected(MAP, "max", "best_epoch")
        for epoch, value in enumerate(values):
            selected.update(epoch, {MAP: value})
            result = {
                "epoch": epoch,
                MAP: value,
                "checkpoint_path": f"/ckpt/{name}/{epoch}",
                **selected.report(epoch),
            }
            callback.on_trial_result(0, [], trial, result)  # type: ignore[arg-type]
            trial.last_result = result
        callback.on_trial_complete(0, [], trial)  # type: ignore[arg-type]
    result = read_search(uri, parent.run_id)
    ranked = rank(result.searched, MAP, "max")
    assert [t.trial_id for t in ranked] == ["peaks", "climbs"]  # 0.6 at epoch 1 beats 0.5
    peaks = ranked[0]
    assert peaks.selected_epoch == 1 and peaks.epochs == 3
    assert peaks.checkpoint == "/ckpt/peaks/1"
    assert ranked[1].checkpoint == "/ckpt/climbs/3"
    assert "checkpoint_rank" not in peaks.metrics
