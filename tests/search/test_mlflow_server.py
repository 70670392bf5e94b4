"""A tiny real search tracked by a real `mlflow server` over HTTP, read back by another process.

Checks what a local SQLite store cannot: every call goes through the REST API, and artifacts are
uploaded to (and downloaded from) the server's artifact proxy (`mlflow-artifacts:/`), not written
to a path on the client's disk. The same search checks what a search leaves in MLflow besides its
runs: the best model as a registered pyfunc, the datasets, system metrics and cost.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from minesearch.cli import main
from minesearch.data.sources import load_digits_dataset

# ~60 s on 2 idle cores; the timeout turns a hang into a failure with stacks well before 600 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TRIALS = 2
EPOCHS = 1
EXPERIMENT = "server"
METRIC = "mean_average_precision_at_r"
STARTUP_S = 90.0  # the server imports MLflow + FastAPI and migrates the DB; slow on a loaded box
STOP_S = 15.0
REGISTERED = "digits-embedder"  # tracking.register_model: the search's model, registered


@dataclass
class Server:
    url: str
    port: int
    dir: Path
    artifacts: Path
    proc: subprocess.Popen[bytes]

    def log(self) -> str:
        try:
            return (self.dir / "server.log").read_text()[-4000:]
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def processes_of(server_dir: Path, session: int) -> list[str]:
    """Live processes of the server: in its session, or running in / mentioning its temp dir."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (proc / "stat").read_text()
            sid = int(
                stat.rsplit(")", 1)[1].split()[4]
            )  # fields after "(comm)": state ppid pgrp sid
            state = stat.rsplit(")", 1)[1].split()[0]
            cwd = os.readlink(proc / "cwd")
        except (OSError, ValueError, IndexError):
            continue
        if state == "Z" or proc.name == str(os.getpid()):
            continue
        if sid == session or str(server_dir) in cmdline or cwd.startswith(str(server_dir)):
            found.append(f"{proc.name}: {cmdline}")
    return found


def stop(server: Server) -> None:
    """SIGTERM the server (it forwards it to uvicorn), then SIGKILL its process group."""
    if server.proc.poll() is None:
        server.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=STOP_S)
    # The group is the server's own (start_new_session): this catches an orphaned uvicorn.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=STOP_S)


@pytest.fixture(scope="module")
def server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real tracking server on a free port: SQLite backend, proxied artifacts, one worker.

    Started (not yet waited for) before Ray so both start-ups overlap; stopped by PID at the end
    of the module whatever happened, then checked gone (port closed, no process left)."""
    server_dir = tmp_path_factory.mktemp("mlflow_server")
    artifacts = server_dir / "artifacts"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # No job runner: it only serves GenAI jobs, and starts 6 huey consumers plus a /dev/shm dir
    # that outlives the server.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    command = [
        *(sys.executable, "-m", "mlflow", "server"),
        *("--backend-store-uri", f"sqlite:///{server_dir / 'mlflow.db'}"),
        "--serve-artifacts",
        *("--artifacts-destination", artifacts.as_uri()),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--workers", "1"),
    ]
    with (server_dir / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=server_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", port, server_dir, artifacts, proc)
    try:
        yield server
    finally:
        stop(server)
        deadline = time.monotonic() + STOP_S
        while (port_open(port) or processes_of(server_dir, proc.pid)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.3)
        assert not port_open(port), f"port {port} still open after the server stopped"
        assert not processes_of(server_dir, proc.pid), "the MLflow server left processes behind"


@pytest.fixture(scope="module")
def mlflow_server(server_process: Server, ray_instance: None) -> Server:
    """The server once `GET /health` answers (bounded wait; fails with the server's log)."""
    deadline = time.monotonic() + STARTUP_S
    while not healthy(server_process.url):
        if server_process.proc.poll() is not None:
            pytest.fail(
                f"mlflow server exited ({server_process.proc.returncode}):\n{server_process.log()}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server not healthy after {STARTUP_S}s:\n{server_process.log()}")
        time.sleep(0.3)
    return server_process


def tiny_space(tmp_path: Path, uri: str) -> Path:
    space = {
        "name": "over-http",
        "data": {"source": "digits", "split": {"val": 0.3, "test": 0.0, "seed": 0}},
        "model": {"backbone": "convnet", "embedding_dim": 16, "hidden_dim": 32},
        "train": {"epochs": EPOCHS, "batch": {"classes": 4, "per_class": 6}, "workers": 1},
        "search": {
            "trials": TRIALS,
            "sampler": {"name": "random", "seed": 0},
            "scheduler": {"name": "fifo"},
            "control": False,  # no extra child run: exactly one per trial
            "params": {
                "loss": ["TripletMarginLoss", "ContrastiveLoss"],
                "miner": ["none", "BatchHardMiner"],
                "lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
            },
        },
        "tracking": {"uri": uri, "experiment": EXPERIMENT, "register_model": REGISTERED},
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


# Runs in a fresh interpreter: nothing of the search's process (client caches, env) is reused.
READ_BACK = """
import json, sys
from pathlib import Path
from mlflow.artifacts import download_artifacts
from mlflow.tracking import MlflowClient

uri, experiment, metric, dst = sys.argv[1:]
client = MlflowClient(uri)
exp = client.get_experiment_by_name(experiment)
out = {"artifact_location": exp.artifact_location, "runs": []}
for run in client.search_runs([exp.experiment_id]):
    run_id = run.info.run_id
    files = {}
    for artifact in client.list_artifacts(run_id):
        if artifact.is_dir:  # e.g. a report folder: not checked here
            continue
        local = download_artifacts(
            run_id=run_id, artifact_path=artifact.path, dst_path=f"{dst}/{run_id}",
            tracking_uri=uri,
        )
        files[artifact.path] = Path(local).read_text()
    out["runs"].append({
        "run_id": run_id,
        "name": run.info.run_name,
        "status": run.info.status,
        "artifact_uri": run.info.artifact_uri,
        "tags": run.data.tags,
        "params": run.data.params,
        "steps": sorted(m.step for m in client.get_metric_history(run_id, metric)),
        "files": files,
    })
print(json.dumps(out))
"""


def read_back(uri: str, dst: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    dst.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", READ_BACK, uri, EXPERIMENT, METRIC, str(dst)],
        cwd=dst,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_search_over_http_is_read_back_from_another_process(
    mlflow_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = tiny_space(tmp_path, mlflow_server.url)
    result = CliRunner().invoke(main, ["run", str(space), "--storage-path", str(tmp_path / "ray")])
    assert result.exit_code == 0, f"{result.output}\n--- server log:\n{mlflow_server.log()}"
    # the server's UI is up already: the end of the search names its runs page of this search
    assert f"open {mlflow_server.url}/#/experiments/" in result.output
    assert "runs?workflowType=machine_learning&searchFilter=" in result.output

    seen = read_back(mlflow_server.url, tmp_path / "readback")
    assert seen["artifact_location"].startswith("mlflow-artifacts:")  # proxied by the server
    runs = seen["runs"]
    parents = [r for r in runs if "mlflow.parentRunId" not in r["tags"]]
    children = [r for r in runs if "mlflow.parentRunId" in r["tags"]]
    assert len(parents) == 1 and len(children) == TRIALS, [(r["name"], r["status"]) for r in runs]
    parent = parents[0]
    assert parent["name"] == "over-http" and parent["status"] == "FINISHED"
    assert parent["artifact_uri"].startswith("mlflow-artifacts:")
    assert json.loads(parent["files"]["resolved_spec.json"])["name"] == "over-http"
    assert parent["files"]["space.yaml"] == space.read_text()

    trial_ids = set()
    for child in children:
        assert child["tags"]["mlflow.parentRunId"] == parent["run_id"]
        assert child["status"] == "FINISHED"
        assert set(child["params"]) >= {"loss", "miner", "lr"}
        assert child["steps"] == list(range(EPOCHS + 1)), child["name"]
        assert child["artifact_uri"].startswith("mlflow-artifacts:")
        config = json.loads(child["files"]["trial_config.json"])
        assert config["trial"]["recipe"]["loss"] == child["params"]["loss"]
        trial_ids.add(child["tags"]["minesearch.trial_id"])
    assert len(trial_ids) == TRIALS

    # The bytes live in the server's artifact store, and nothing was written beside the client.
    stored = sorted(p.name for p in mlflow_server.artifacts.rglob("*") if p.is_file())
    assert stored.count("trial_config.json") == TRIALS
    assert {"resolved_spec.json", "space.yaml"} <= set(stored)
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlartifacts").exists()
    assert not (tmp_path / "mlflow.db").exists()
    check_model_data_and_cost(mlflow_server.url, parent["run_id"], tmp_path, monkeypatch)


def check_model_data_and_cost(
    url: str, parent_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The best trial's MLflow Model (through the server's artifact proxy) embeds as
    `minesearch embed` does and is registered; every child run shows its datasets, system
    metrics and cost; the parent's cost is theirs summed."""
    client = MlflowClient(url)
    parent = client.get_run(parent_id)
    best = parent.data.tags["best.trial_id"]
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'"
    )
    (best_run,) = [c for c in children if c.data.tags["minesearch.trial_id"] == best]

    rows = load_digits_dataset().inputs[:50].reshape(50, -1)
    data = tmp_path / "digits.parquet"
    pq.write_table(pa.table({"features": list(rows)}), data)
    export = tmp_path / "best_export"
    done = CliRunner().invoke(main, ["export", "best", "--out", str(export), "--tracking-uri", url])
    assert done.exit_code == 0, done.output
    done = CliRunner().invoke(main, ["embed", str(export), str(data), str(tmp_path / "e.parquet")])
    assert done.exit_code == 0, done.output
    by_embed = np.asarray(pq.read_table(tmp_path / "e.parquet").column("embedding").to_pylist())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)  # where models:/ and runs:/ resolve
    for uri in (f"runs:/{best_run.info.run_id}/model", f"models:/{REGISTERED}/1"):
        predicted = mlflow.pyfunc.load_model(uri).predict(rows.astype(np.float32))
        assert predicted.shape == by_embed.shape
        assert float(np.abs(predicted - by_embed).max()) <= 1e-5, uri
    version = client.get_model_version(REGISTERED, "1")
    assert version.run_id == best_run.info.run_id

    total = 0.0
    for child in children:
        contexts = {i.tags[0].value for i in child.inputs.dataset_inputs}
        assert contexts == {"train", "val"}, child.info.run_name  # test: 0 in the tiny space
        assert {i.dataset.name for i in child.inputs.dataset_inputs} == {"digits"}
        metrics = child.data.metrics
        assert metrics["system/cpu_utilization_percentage"] > 0, child.info.run_name
        assert metrics["system/system_memory_usage_megabytes"] > 0
        assert metrics["cost.worker_seconds"] > 0  # one worker: its wall seconds
        total += metrics["cost.worker_seconds"]
    assert parent.data.metrics["cost.worker_seconds"] == pytest.approx(total)
    assert len(parent.inputs.dataset_inputs) == 2
