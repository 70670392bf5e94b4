"""A real (tiny) search through Ray Tune, Optuna, Ray Train, PML and MLflow, read back."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from ray.util.state import list_actors

from minesearch.cli import main
from minesearch.results import mean_ci95
from minesearch.tracking.names import CONTROL_TAG, ROLE_TAG, TRIAL_TAG, VERDICT_TAG

pytestmark = pytest.mark.slow

EPOCHS = 2
TRIALS = 3
RECIPE_PARAMS = {"loss", "miner", "lr", "margin_mode", "tuples", "workers", "seed", "batch.classes"}
CURVES = ("mean_average_precision_at_r", "precision_at_1", "r_precision")


def tiny_space(tmp_path: Path) -> Path:
    space = {
        "name": "e2e",
        "data": {"source": "digits", "split": {"val": 0.3, "test": 0.2, "seed": 0}},
        "model": {"backbone": "convnet", "embedding_dim": 16, "hidden_dim": 32},
        "train": {"epochs": EPOCHS, "batch": {"classes": 4, "per_class": 6}, "workers": 2},
        "search": {
            "trials": TRIALS,
            "sampler": {"name": "tpe", "seed": 3},
            "scheduler": {"name": "fifo"},
            "params": {
                "loss": ["TripletMarginLoss", "ContrastiveLoss", "MultiSimilarityLoss"],
                "miner": ["none", "TripletMarginMiner", "BatchHardMiner", "MultiSimilarityMiner"],
                "margin": {"low": 0.01, "high": 0.5},
                "type_of_triplets": ["all", "hard", "semihard", "easy"],
                "lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
            },
        },
        "tracking": {"uri": f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", "experiment": "e2e"},
    }
    (tmp_path / "store").mkdir()
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def test_search_writes_one_parent_and_a_child_per_trial(ray_instance: None, tmp_path: Path) -> None:
    space = tiny_space(tmp_path)
    result = CliRunner().invoke(
        main, ["run", str(space), "--storage-path", str(tmp_path / "ray"), "--confirm", "1,2"]
    )
    assert result.exit_code == 0, result.output
    assert "best recipe" in result.output
    check_plain_view(result.output, tmp_path / "ray")
    assert f"minesearch ui --tracking-uri 'sqlite:///{tmp_path}/store/mlflow.db'" in result.output

    client = MlflowClient(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("e2e")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    nested = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    children = [r for r in nested if r.data.tags[ROLE_TAG] == "trial"]
    # the control recipe lies in the space: it is the search's first trial, not a run of its own
    controls = [r for r in children if r.data.tags.get(CONTROL_TAG) == "true"]
    assert len(parents) == 1 and len(children) == TRIALS and len(controls) == 1
    assert not [r for r in nested if r.data.tags[ROLE_TAG] == "control"]
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert "best.mean_average_precision_at_r" in parent.data.metrics
    assert "control.mean_average_precision_at_r" in parent.data.metrics
    control = controls[0]
    assert control.info.status == "FINISHED" and control.data.params["miner"] == "none"
    assert control.data.params["loss"] == "TripletMarginLoss"
    assert control.data.params["loss.margin"] == "0.05"  # PML's default
    assert "control" in result.output
    report = [a.path for a in client.list_artifacts(parent.info.run_id, "report")]
    assert "report/loss_miner_heatmap.png" in report  # the report is attached when a search ends
    best_run = next(
        c for c in children if c.data.tags[TRIAL_TAG] == parent.data.tags["best.trial_id"]
    )
    # the verdict's answer is exported: the control's model when it did best (or tied)
    answer = control if parent.data.tags[VERDICT_TAG] == "control_better" else best_run
    exported = {a.path for a in client.list_artifacts(answer.info.run_id, "export/torchscript")}
    assert {"export/torchscript/model.pt", "export/torchscript/preprocess.json"} <= exported
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert len({c.data.tags[TRIAL_TAG] for c in children}) == TRIALS

    final_maps = []
    for child in children:
        assert child.info.status == "FINISHED"
        assert set(child.data.params) >= RECIPE_PARAMS
        if child.data.params["miner"] == "TripletMarginMiner":
            assert child.data.params["miner.type_of_triplets"] in {
                "all",
                "hard",
                "semihard",
                "easy",
            }
        else:
            assert "miner.type_of_triplets" not in child.data.params
        for name in CURVES:
            history = client.get_metric_history(child.info.run_id, name)
            assert sorted(m.step for m in history) == list(range(EPOCHS + 1)), name
        final_maps.append(child.data.metrics["mean_average_precision_at_r"])
        artifacts = [a.path for a in client.list_artifacts(child.info.run_id)]
        assert "trial_config.json" in artifacts
    assert len(set(final_maps)) == TRIALS  # the recipe matters
    check_test_split_and_confirmation(client, parent, children, control, nested, result.output)


def check_plain_view(out: str, storage: Path) -> None:
    """Not a terminal (CliRunner): the header, one line per trial event and the summary; Ray's
    tables, the workers' lines and faiss's probe are in the search's log file instead."""
    lines = out.splitlines()
    assert len(lines) <= 60, out
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out), "control characters"
    for noise in ("╭", "│", "Trial status", "RayTrainWorker", "faiss", "tensorboard"):
        assert noise not in out, noise
    header = next(line for line in lines if line.startswith("  log    "))
    log_file = Path(header.split()[1])
    assert log_file.parent.parent == storage and log_file.is_file()
    assert "RayTrainWorker" in log_file.read_text()  # the workers' output went there
    events = [line for line in lines if re.match(r"\[\d+/\d+\] trial ", line)]
    started = [line for line in events if line.endswith("  running")]
    ended = [line for line in events if " finished  " in line or " pruned at epoch" in line]
    assert len(started) == TRIALS and len(ended) == TRIALS, events
    assert ended[-1].startswith(f"[{TRIALS}/{TRIALS}] trial ")
    assert events[0].startswith("[0/3] trial 1 ") and "TripletMargin m=0.05" in events[0]
    assert any(line.startswith("the control ranks ") for line in lines)
    estimates = [line for line in lines if re.match(r"\[\d+/\d+\] test estimate ", line)]
    assert estimates and estimates[-1].startswith(f"[{len(estimates) // 2}/{len(estimates) // 2}]")
    # each retrain ends at its own budget (the chosen epoch): finished, never shown as pruned
    assert all("pruned" not in line for line in estimates), estimates


def check_test_split_and_confirmation(
    client: MlflowClient,
    parent: Any,
    children: list[Any],
    control: Any,
    nested: list[Any],
    out: str,
) -> None:
    """The test split is scored for the best trial and the control only; `--confirm 1,2` trains
    the best recipe with 2 new seeds (the control, unless chosen, with 1: its own run is the
    other) and puts mean ± 95% CI on the parent."""
    test_map = "test.mean_average_precision_at_r"
    best_id = parent.data.tags["best.trial_id"]
    scored = {c.data.tags[TRIAL_TAG] for c in children if test_map in c.data.metrics}
    # selection never saw the test split of the others
    assert scored == {best_id, control.data.tags[TRIAL_TAG]}
    assert test_map in control.data.metrics
    assert parent.data.metrics[f"best.{test_map}"] == next(
        c.data.metrics[test_map] for c in children if c.data.tags[TRIAL_TAG] == best_id
    )
    assert parent.data.metrics[f"control.{test_map}"] == control.data.metrics[test_map]
    assert "best on the test split" in out and "control on the test split" in out

    best = next(c for c in children if c.data.tags[TRIAL_TAG] == best_id)
    recipe = ("loss", "miner", "lr")
    every = [r for r in nested if r.data.tags[ROLE_TAG] == "confirm"]
    confirms = [r for r in every if all(r.data.params[k] == best.data.params[k] for k in recipe)]
    assert sorted(int(r.data.params["seed"]) for r in confirms) == [1000, 1001]
    if best.info.run_id != control.info.run_id:  # the control's estimate: its own run, 1 new seed
        of_control = [r for r in every if r not in confirms]
        assert sorted(int(r.data.params["seed"]) for r in of_control) == [1000]
        assert parent.data.metrics["confirm.control.seeds"] == 2
        own = mean_ci95([control.data.metrics[test_map], of_control[0].data.metrics[test_map]])
        assert parent.data.metrics[f"confirm.control.{test_map}.mean"] == pytest.approx(own[0])
        assert parent.data.metrics[f"confirm.control.{test_map}.ci95"] == pytest.approx(own[1])
    # retrained to the epoch the chosen trial was selected at: the model the search keeps
    retrain = max(1, int(best.data.metrics["selected_epoch"]))
    for run in confirms:
        assert run.info.status == "FINISHED"
        assert run.data.params["epochs"] == str(retrain)
        assert run.data.metrics["epoch"] == retrain
        assert run.data.tags.get("minesearch.stopped") is None  # its own budget, not pruned
        assert {k: run.data.params[k] for k in ("loss", "miner", "lr")} == {
            k: best.data.params[k] for k in ("loss", "miner", "lr")
        }
    values = [r.data.metrics[test_map] for r in confirms]
    mean, half = mean_ci95(values)
    key = "confirm.1.test.mean_average_precision_at_r"
    assert parent.data.metrics[f"{key}.mean"] == pytest.approx(mean)
    assert parent.data.metrics[f"{key}.ci95"] == pytest.approx(half)
    assert parent.data.metrics["confirm.1.seeds"] == 2
    assert "confirmation on the test split" in out and f"{mean:.4f} ± {half:.4f}" in out


def test_a_diverging_trial_fails_alone(ray_instance: None, tmp_path: Path) -> None:
    """lr=1e12 with SGD makes the loss NaN at step 1 (checked): that trial ends FAILED in Tune and
    MLflow with the reason, and the search goes on to finish the other trial."""
    space = yaml.safe_load(tiny_space(tmp_path).read_text())
    space["name"] = "e2e-failure"
    space["train"] |= {"epochs": 1, "workers": 1, "optimizer": "sgd"}
    space["search"] |= {
        "trials": 2,
        "sampler": {"name": "random", "seed": 0},
        "control": False,
        "test_seeds": 0,  # the test estimate: the first test of this module (--confirm)
    }
    space["search"]["params"] = {"loss": "ContrastiveLoss", "lr": [1.0e-3, 1.0e12]}
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump(space))
    result = CliRunner().invoke(main, ["run", str(path), "--storage-path", str(tmp_path / "ray")])
    assert result.exit_code == 0, result.output
    assert "1 failed" in result.output
    failed_lines = [line for line in result.output.splitlines() if "  failed: " in line]
    assert len(failed_lines) == 1 and "loss became nan" in failed_lines[0], result.output

    client = MlflowClient(space["tracking"]["uri"])
    experiment = client.get_experiment_by_name("e2e")
    assert experiment is not None
    parent = client.search_runs(
        [experiment.experiment_id], filter_string="attributes.run_name = 'e2e-failure'"
    )[0]
    children = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    status = {float(c.data.params["lr"]): c.info.status for c in children}
    assert status == {1.0e-3: "FINISHED", 1.0e12: "FAILED"}
    failed = next(c for c in children if c.info.status == "FAILED")
    assert "loss became nan" in failed.data.tags["minesearch.error"]
    assert parent.info.status == "FINISHED"


def test_a_killed_worker_restarts_from_its_last_checkpoint(
    ray_instance: None, tmp_path: Path
) -> None:
    """SIGKILL one Ray Train worker after the first checkpoint: the trial restarts its workers
    (train.max_failures), continues after the last checkpointed epoch and finishes, and its
    metrics have every epoch exactly once."""
    epochs = 24  # a window of ~12 s for the killer, also on a loaded machine
    space = yaml.safe_load(tiny_space(tmp_path).read_text())
    space["name"] = "e2e-worker-failure"
    space["train"] |= {"epochs": epochs, "workers": 2, "max_failures": 2}
    space["search"] |= {
        "trials": 1,
        "sampler": {"name": "random", "seed": 0},
        "control": False,
        "test_seeds": 0,  # 3 retrains to its selected epoch (13 of 24 here) checked nothing here
    }
    space["search"]["params"] = {"loss": "ContrastiveLoss", "miner": "BatchHardMiner"}
    path = tmp_path / "failure.yaml"
    path.write_text(yaml.safe_dump(space))
    client = MlflowClient(space["tracking"]["uri"])
    killed: list[int] = []
    results = tmp_path / "ray"
    done = threading.Event()
    killer = threading.Thread(target=kill_a_worker_after_epoch_one, args=(results, killed, done))
    killer.start()
    try:
        result = CliRunner().invoke(
            main, ["run", str(path), "--storage-path", str(tmp_path / "ray")]
        )
    finally:
        done.set()  # a killer outliving the test would re-initialise Ray for the next module
        killer.join()
    assert killed, "no worker was killed: the trial ended before its first checkpoint was seen"
    assert result.exit_code == 0, result.output

    child = only_child(client, "e2e-worker-failure")
    assert child.info.status == "FINISHED"
    history = client.get_metric_history(child.info.run_id, "mean_average_precision_at_r")
    assert sorted(m.step for m in history) == list(range(epochs + 1))  # no gap, no repeat


def kill_a_worker_after_epoch_one(storage: Path, killed: list[int], done: threading.Event) -> None:
    """Wait until Tune has epoch 1 (so a checkpoint exists), then SIGKILL a live Train worker.
    Reads Tune's result file (fast, so the window is not missed on a loaded machine)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not done.is_set():
        reported = [
            len(path.read_text().splitlines())
            for path in storage.glob("e2e-worker-failure-*/run_trial_*/result.json")
        ]
        if reported and max(reported) >= 2:  # epochs 0 and 1
            alive = list_actors(
                address=ray.get_runtime_context().gcs_address,  # this module's Ray, not another
                filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")],
            )
            pids = [a.pid for a in alive if a.pid is not None]
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
        time.sleep(0.2)


def only_child(client: MlflowClient, parent_name: str) -> Any:
    experiment = client.get_experiment_by_name("e2e")
    if experiment is None:
        raise LookupError("no experiment yet")
    parents = client.search_runs(
        [experiment.experiment_id], filter_string=f"attributes.run_name = '{parent_name}'"
    )
    if not parents:
        raise LookupError("no parent run yet")
    children = client.search_runs(  # the searched trial, not the test estimate's runs
        [experiment.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}' "
        f"and tags.`{ROLE_TAG}` = 'trial'",
    )
    (child,) = children
    return child
