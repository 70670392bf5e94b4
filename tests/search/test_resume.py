"""Kill the driver mid-search (SIGINT and SIGKILL), resume it, and count what MLflow holds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import ProcessProbe, pids_mentioning, slow_backbone
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

TRIALS, EPOCHS = 4, 3
CLI = [sys.executable, "-m", "minesearch"]


@pytest.fixture
def ray_root(process_probe: ProcessProbe) -> Iterator[Path]:
    """Ray's temp root for the CLI's local Ray (short: Ray's socket paths must stay < 108 chars)."""
    root = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))
    yield root
    leftovers = list(process_probe(str(root), 30))
    for pid in leftovers:  # do not leave them to the next test, but fail this one
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)
    assert not leftovers, "Ray processes outlived the search"


def write_space(tmp_path: Path) -> tuple[Path, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    backbone = slow_backbone(tmp_path)  # a window of seconds for the signal
    space = {
        "name": "resume",
        "data": {"source": "digits", "split": {"val": 0.3, "test": 0.0}},
        "model": {"backbone": backbone, "embedding_dim": 16, "hidden_dim": 32},
        "train": {"epochs": EPOCHS, "batch": {"classes": 4, "per_class": 6}, "workers": 1},
        "search": {
            "trials": TRIALS,
            "concurrent": 2,
            "control": False,  # the control run is covered in test_e2e
            "sampler": {"name": "random", "seed": 1},
            "scheduler": {"name": "fifo"},
            "params": {"lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}},
        },
        "tracking": {"uri": uri, "experiment": "resume"},
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path, uri


def children(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("resume")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id])
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def ray_lines(output: str) -> list[str]:
    """The view header's Ray line(s): `  ray    local 127.0.0.1:<port> (...)`."""
    return [line for line in output.splitlines() if line.startswith("  ray ")]


def steps(client: MlflowClient, run_id: str) -> list[int]:
    history = client.get_metric_history(run_id, "mean_average_precision_at_r")
    return sorted(m.step for m in history)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_resume_after_the_driver_is_killed(
    tmp_path: Path, ray_root: Path, sig: signal.Signals
) -> None:
    space, uri = write_space(tmp_path)
    env = {**os.environ, "RAY_TMPDIR": str(ray_root)}
    args = [*CLI, "run", str(space), "--storage-path", str(tmp_path / "ray")]
    log = (tmp_path / "first.log").open("w")
    driver = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    client = MlflowClient(uri)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        runs = children(client)
        done = [r for r in runs if r.info.status == "FINISHED"]
        if done and len(runs) > len(done):  # one trial finished, another one started
            break
        time.sleep(0.5)
    else:
        driver.kill()
        pytest.fail(
            f"the first run never got a trial finished:\n{(tmp_path / 'first.log').read_text()}"
        )
    finished_before = {r.info.run_id: steps(client, r.info.run_id) for r in done}
    driver.send_signal(sig)
    code = driver.wait(timeout=180)
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL), (
        tmp_path / "first.log"
    ).read_text()
    if sig == signal.SIGKILL:  # nothing ran the driver's cleanup: its local Ray must still go
        pids_mentioning(str(ray_root), 60)
    before = children(client)
    assert len(before) < TRIALS or any(r.info.status != "FINISHED" for r in before)

    resumed = subprocess.run(
        [*args, "--resume"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout
    # the view: this run's Ray in its header, and the trials that ended before in its progress
    first_ray = ray_lines((tmp_path / "first.log").read_text())
    assert len(first_ray) == 1 and ray_lines(resumed.stdout) not in ([], first_ray)
    progress = [line for line in resumed.stdout.splitlines() if line.startswith("[")]
    assert progress[-1].startswith(f"[{TRIALS}/{TRIALS}] "), resumed.stdout

    after = children(client)
    assert len(after) == TRIALS  # one child per trial: none lost, none duplicated
    assert len({r.data.tags["minesearch.trial_id"] for r in after}) == TRIALS
    for run in after:
        assert run.info.status == "FINISHED", run.data.tags
        assert steps(client, run.info.run_id) == list(range(EPOCHS + 1))  # no gap, no repeat
    for run_id, history in finished_before.items():
        assert steps(client, run_id) == history  # finished trials were not run again
    parents = [
        r
        for r in client.search_runs([client.get_experiment_by_name("resume").experiment_id])  # type: ignore[union-attr]
        if "mlflow.parentRunId" not in r.data.tags
    ]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
