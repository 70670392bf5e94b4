"""Trials reuse their process (Tune's `reuse_actors`) on both ways of training: a single-worker
trial in its Tune trial actor, a 2-worker trial through Ray Train. On a 2-CPU Ray a trial that ASHA
stops is followed at once by the next one in the same process (issue 12: it used to hang, the
stopped trial's thread stuck inside Ray Train's `fit`), no placement group outlives the search,
and a single-worker trial whose process dies continues from its last checkpoint."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from click.testing import CliRunner
from conftest import slow_backbone
from mlflow.tracking import MlflowClient
from ray.util.state import list_actors, list_placement_groups

from minesearch.cli import main
from minesearch.tracking.names import ROLE_TAG

pytestmark = pytest.mark.slow

TRIALS = 3  # the second (lr 1e-6 after a learning first) is stopped at its rung, then one more
NEXT_TRIAL_WITHIN_S = 5.0  # a stopped trial's end to the next trial's start (it hung before)
TRIAL_ACTOR = "ImplicitFunc"  # Tune's class for a function trainable's actor


def write_space(tmp_path: Path, name: str, workers: int, **search: Any) -> Path:
    space = {
        "name": name,
        "data": {"source": "digits", "split": {"val": 0.3, "test": 0.0, "seed": 0}},
        "model": {"backbone": "convnet", "embedding_dim": 16, "hidden_dim": 32},
        "train": {
            "epochs": 3,
            "batch": {"classes": 4, "per_class": 6},
            "workers": workers,
            "cpus_per_worker": 1,
        },
        "search": {
            "trials": TRIALS,
            "concurrent": 1,
            "control": False,
            "sampler": {"name": "random", "seed": 3},
            # grace 1, halving: a trial that does not learn (lr 1e-6) after one that does is
            # below its rung's median (this seed proposes such a pair before the last trial)
            "scheduler": {"name": "asha", "grace_epochs": 1, "reduction_factor": 2},
            "params": {"loss": ["ContrastiveLoss", "TripletMarginLoss"], "lr": [1.0e-6, 1.0e-2]},
            **search,
        },
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "reuse"},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def child_runs(tmp_path: Path) -> list[Any]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("reuse")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if r.data.tags.get(ROLE_TAG) == "trial"]
    return sorted(children, key=lambda r: r.info.start_time)


def trial_pids(storage: Path) -> set[int]:
    """The process each trial reported from (Tune's result files)."""
    pids = set()
    for results in storage.glob("*/run_trial_*/result.json"):
        pids |= {json.loads(line)["pid"] for line in results.read_text().splitlines()}
    return pids


def live_placement_groups(wait_s: float) -> list[str]:
    address = ray.get_runtime_context().gcs_address
    deadline = time.monotonic() + wait_s
    while True:
        groups = list_placement_groups(address=address, detail=True, raise_on_missing_output=False)
        live = [g.placement_group_id for g in groups if g.state != "REMOVED"]
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(0.5)


@pytest.mark.parametrize("workers", [1, 2], ids=["in-actor", "ray-train-2-workers"])
def test_a_stopped_trial_is_followed_at_once_in_the_same_process(
    ray_instance: None, tmp_path: Path, workers: int
) -> None:
    space = write_space(tmp_path, f"reuse-{workers}", workers)
    storage = tmp_path / "ray"
    result = CliRunner().invoke(main, ["run", str(space), "--storage-path", str(storage)])
    assert result.exit_code == 0, result.output
    runs = child_runs(tmp_path)
    assert len(runs) == TRIALS and all(r.info.end_time for r in runs)
    # a reuse that failed would be a trial error ("reset_config() ... must return True")
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED"}, result.output
    stopped = [i for i, r in enumerate(runs) if r.data.tags.get("minesearch.stopped")]
    order = [(r.data.params["loss"], r.data.params["lr"], r.info.status) for r in runs]
    assert stopped and stopped[0] < TRIALS - 1, f"ASHA stopped no trial before the last: {order}"
    for before, after in itertools.pairwise(runs):
        gap = (after.info.start_time - before.info.end_time) / 1000
        assert gap < NEXT_TRIAL_WITHIN_S, f"{gap:.1f} s from one trial to the next"
    assert len(trial_pids(storage)) == 1  # one trial process, reused by every trial
    assert live_placement_groups(wait_s=15) == []  # nothing holds the CPUs after the search


def test_a_single_worker_trial_whose_process_dies_continues_from_its_checkpoint(
    ray_instance: None, tmp_path: Path
) -> None:
    """train.max_failures for a trial that trains in its Tune trial actor: Tune starts it again
    from its latest checkpoint, and MLflow has each epoch once."""
    epochs = 8
    space = yaml.safe_load(write_space(tmp_path, "retry", workers=1).read_text())
    # ~1.5 s an epoch: a window of seconds for the killer, whatever the machine's load
    space["model"]["backbone"] = slow_backbone(tmp_path)
    space["train"] |= {"epochs": epochs, "max_failures": 2}
    space["search"] |= {"trials": 1, "scheduler": {"name": "fifo"}, "params": {"lr": 3.0e-3}}
    path = tmp_path / "retry.yaml"
    path.write_text(yaml.safe_dump(space))
    storage = tmp_path / "ray"
    killed: list[int] = []
    done = threading.Event()
    killer = threading.Thread(target=kill_the_trial_after_epoch_one, args=(tmp_path, killed, done))
    killer.start()
    try:
        result = CliRunner().invoke(main, ["run", str(path), "--storage-path", str(storage)])
    finally:
        done.set()
        killer.join()
    assert killed, "no trial process was killed: the trial ended before its checkpoint was seen"
    assert result.exit_code == 0, result.output
    (run,) = child_runs(tmp_path)
    assert run.info.status == "FINISHED"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    history = client.get_metric_history(run.info.run_id, "mean_average_precision_at_r")
    assert sorted(m.step for m in history) == list(range(epochs + 1))  # no gap, no repeat
    assert len(trial_pids(storage)) == 2  # the killed process and the one that continued


def kill_the_trial_after_epoch_one(
    tmp_path: Path, killed: list[int], done: threading.Event
) -> None:
    """Wait until MLflow has epoch 1 (so a checkpoint exists), then SIGKILL the trial actor."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not done.is_set():
        try:
            runs = child_runs(tmp_path)
        except Exception:  # no store or experiment yet
            runs = []
        for run in runs:
            history = client.get_metric_history(run.info.run_id, "mean_average_precision_at_r")
            if len(history) < 2:  # epochs 0 and 1
                continue
            alive = list_actors(
                address=ray.get_runtime_context().gcs_address, filters=[("state", "=", "ALIVE")]
            )
            # by the class's own name: Ray reports it qualified ("wrap_function.<locals>.
            # ImplicitFunc") once an earlier module's Ray ran in this process, bare otherwise
            pids = [
                a.pid
                for a in alive
                if a.pid is not None and a.class_name.rsplit(".", 1)[-1] == TRIAL_ACTOR
            ]
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
        time.sleep(0.2)
