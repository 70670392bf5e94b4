"""scripts/cluster_faults.py's logic without a cluster: its space validates, losses are spread
over the search, progress is read from the store, and Tune's records are read back. The run
itself (real raylets, a node killed) is scripts/try_cluster.sh."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from conftest import load_script
from mlflow.tracking import MlflowClient

from minesearch.config import load_spec

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cluster_faults.py"


@pytest.fixture(scope="module")
def faults() -> ModuleType:
    return load_script(SCRIPT)


@pytest.mark.parametrize("preset", ["fault", "soak"])
def test_the_space_of_each_preset_validates(
    faults: ModuleType, tmp_path: Path, preset: str
) -> None:
    plan = faults.PRESETS[preset]
    spec = load_spec(faults.write_space(tmp_path, plan))
    assert (spec.search.trials, spec.search.concurrent) == (plan.trials, plan.concurrent)
    assert (spec.train.workers, spec.train.max_failures) == (1, plan.max_failures)
    assert spec.search.control is False
    assert spec.tracking.uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    slots = plan.nodes * plan.node_cpus / plan.cpus_per_worker
    assert slots >= plan.concurrent  # the cluster holds the trials asked to run at once


def test_losses_are_spread_over_the_search_and_wait_for_a_trial_mid_way(
    faults: ModuleType,
) -> None:
    plan = faults.Plan(trials=50, epochs=2, node_losses=2)
    started = {f"run{i}": 2 for i in range(16)}  # 16 finished: the first loss is due at 17
    assert not faults.loss_due(0, plan, started)
    assert not faults.loss_due(0, plan, started | {"run16": 2})  # 17 started, none mid-way
    assert faults.loss_due(0, plan, started | {"run16": 1})
    assert not faults.loss_due(0, plan, started | {"run16": 0})  # no checkpoint past epoch 0
    assert not faults.loss_due(1, plan, started | {"run16": 1})  # the second one at 34
    many = {f"run{i}": 2 for i in range(33)} | {"run33": 1}
    assert faults.loss_due(1, plan, many)
    assert not faults.loss_due(2, plan, many)  # all done


def test_progress_is_each_runs_last_epoch_read_without_mlflow(
    faults: ModuleType, tmp_path: Path
) -> None:
    db = tmp_path / "mlflow.db"
    assert faults.epochs_by_run(db) == {}  # before the search made its store
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.create_experiment("x")
    runs = [client.create_run(experiment).info.run_id for _ in range(2)]
    for step in range(3):
        client.log_metric(runs[0], "epoch", step, step=step)
    client.log_metric(runs[1], "epoch", 0, step=0)
    client.log_metric(runs[1], "precision_at_1", 0.5, step=7)
    assert faults.epochs_by_run(db) == {runs[0]: 2, runs[1]: 0}


def test_descendants_follow_renamed_children(faults: ModuleType) -> None:
    table = {1: (0, ["init"]), 10: (1, ["raylet"]), 11: (10, ["ray::IDLE"]), 12: (11, ["x"])}
    assert faults.descendants(table, {10}) == {10, 11, 12}


def test_a_nodes_processes_are_found_by_its_temp_dir_alone(faults: ModuleType) -> None:
    table = {
        1: (0, ["raylet", "--temp_dir=/tmp/c/node-1"]),
        2: (0, ["python", "log_monitor.py", "--session-dir=/tmp/c/node-1/session_x"]),
        3: (0, ["raylet", "--temp_dir=/tmp/c/node-10"]),
    }
    assert faults.naming(table, Path("/tmp/c/node-1")) == {1, 2}


def test_tunes_records_are_read_back(faults: ModuleType, tmp_path: Path) -> None:
    experiment = tmp_path / "storage" / "search-1"
    trial_dir = experiment / "run_trial_ab12cd34_3_loss=x"
    trial_dir.mkdir(parents=True)
    lines = [{"epoch": e} for e in (0, 1, 2, 2, 3)]
    (trial_dir / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
    state = {"trial_id": "ab12cd34", "status": "TERMINATED"}
    trial_data = [[json.dumps(state), json.dumps({"num_failures": 1})]]
    (experiment / "experiment_state-1.json").write_text(json.dumps({"trial_data": trial_data}))
    assert faults.repeated_reports(tmp_path / "storage") == {"ab12cd34": [2]}
    assert faults.trial_failures(tmp_path / "storage") == {"ab12cd34": ("TERMINATED", 1)}


def test_a_preset_is_adjusted_from_the_command_line(faults: ModuleType) -> None:
    plan, keep = faults.parse_plan(["--preset", "soak", "--trials", "20", "--keep"])
    assert (plan.trials, plan.concurrent, plan.node_losses, keep) == (20, 4, 2, True)
    assert faults.parse_plan([])[0] == faults.PRESETS["fault"]
