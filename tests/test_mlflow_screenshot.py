"""`scripts/mlflow_screenshot.py`: a PNG of the MLflow UI comparing a search's child runs.

The store is a fake search written with `MlflowClient` as minesearch writes it (no Ray): one parent
run and five child runs (four trials and the control) with per-epoch metrics at steps 0..3. The
script starts its own `mlflow server` and a headless Chromium; the test checks the PNG (size,
content) and that neither leaves a process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
from conftest import ProcessProbe, load_script
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from PIL import Image

from minesearch.tracking import experiment_id, resolve_tracking_uri
from minesearch.tracking.names import ROLE_TAG, SEARCH_TAG, TRIAL_TAG

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mlflow_screenshot.py"
WIDTH, HEIGHT = 1400, 900
EPOCHS = 4  # steps 0..3, step 0 the untrained model
TRIALS = [  # (role, loss, miner, lr, margin, final MAP@R)
    ("trial", "TripletMarginLoss", "TripletMarginMiner", 1e-3, 0.21, 0.41),
    ("trial", "ContrastiveLoss", "BatchHardMiner", 3e-3, 0.35, 0.37),
    ("trial", "MultiSimilarityLoss", "MultiSimilarityMiner", 5e-4, 0.08, 0.45),
    ("trial", "TripletMarginLoss", "none", 8e-3, 0.47, 0.29),
    ("control", "TripletMarginLoss", "none", 1e-3, 0.05, 0.33),
]


def build_fake_store(
    directory: Path, experiment: str = "fake-search"
) -> tuple[str, str, list[str]]:
    """A search as minesearch records it: (tracking URI, parent run id, child run ids)."""
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = experiment_id(client, experiment, uri)
    parent = client.create_run(exp, run_name="quickstart-digits", tags={SEARCH_TAG: "parent"})
    parent_id = parent.info.run_id
    client.log_batch(
        parent_id,
        params=[
            Param("metric", "mean_average_precision_at_r"),
            Param("mode", "max"),
            Param("trials", str(sum(role == "trial" for role, *_ in TRIALS))),
        ],
    )
    children = []
    now = int(time.time() * 1000)
    for i, (role, loss, miner, lr, margin, final) in enumerate(TRIALS):
        trial_id = f"{uuid.uuid4().hex[:5]}_{i:05d}"
        prefix = "" if role == "trial" else f"{role}: "
        run = client.create_run(
            exp,
            run_name=f"{prefix}{loss.removesuffix('Loss')}+{miner} m={margin:.2f} ({trial_id})",
            tags={MLFLOW_PARENT_RUN_ID: parent_id, TRIAL_TAG: trial_id, ROLE_TAG: role},
        )
        run_id = run.info.run_id
        params = {"loss": loss, "miner": miner, "lr": lr, "margin": margin, "epochs": EPOCHS}
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        metrics = []
        for step in range(EPOCHS):
            done = step / (EPOCHS - 1)
            map_r = 0.12 + (final - 0.12) * done
            metrics += [
                Metric("mean_average_precision_at_r", map_r, now + step, step),
                Metric("precision_at_1", min(1.0, 0.3 + 1.2 * map_r), now + step, step),
                Metric("train_loss", 1.0 - 0.6 * done * (1 + i / 10), now + step, step),
            ]
        client.log_batch(run_id, metrics=metrics)
        client.set_terminated(run_id, "FINISHED")
        children.append(run_id)
    client.set_terminated(parent_id, "FINISHED")
    return uri, parent_id, children


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG signature and IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def colour_stats(path: Path) -> tuple[int, int]:
    """(distinct colours, strongly coloured pixels): the rendered page has thousands of colours
    and the plot's lines and jet colour bar; a blank page has 1 colour, the UI's loading or error
    page a few hundred coloured pixels (the logo, links), its home page ~5000."""
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(1 << 24) or []
    vivid = sum(n for n, rgb in colours if isinstance(rgb, tuple) and max(rgb) - min(rgb) > 100)
    return len(colours), vivid


def run_script(
    *args: str, cwd: Path, tmp: Path | None = None, marker: str = "", timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """The script in a subprocess, its temp dirs (server cwd, browser profile) under `tmp` and
    `marker` in its environment, which every descendant inherits. (`tmp` is short: Chromium puts
    a Unix socket in $TMPDIR, and pytest's tmp_path is too long for one.)"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    env["SCREENSHOT_TEST_MARKER"] = marker
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def pids_with_env(marker: str, wait_s: float) -> dict[int, str]:
    """Live processes whose environment carries the marker (uvicorn's and Chromium's helpers'
    command lines do not name the temp dir; they all inherit the environment)."""
    needle = f"SCREENSHOT_TEST_MARKER={marker}".encode()
    deadline = time.monotonic() + wait_s
    while True:
        found = {}
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if needle in (proc / "environ").read_bytes().split(b"\0"):
                    found[int(proc.name)] = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_default_store_and_compare_url_match_minesearch_and_the_ui(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store is resolved by minesearch itself; the URL parses as the UI parses it."""
    script = load_script(SCRIPT)
    assert script.resolve_tracking_uri is resolve_tracking_uri  # no copy to drift
    assert script.resolve_tracking_uri(None) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"

    url = script.compare_url("http://h:1", ["a1", "b2"], ["3"])
    assert url.startswith("http://h:1/#/compare-runs?runs=")
    query = urllib.parse.parse_qs(url.split("?", 1)[1])  # the UI: decodeURIComponent, JSON.parse
    assert json.loads(query["runs"][0]) == ["a1", "b2"]
    assert json.loads(query["experiments"][0]) == ["3"]


def test_no_search_in_the_store_exits_2(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_run(client.create_experiment("not-a-search"))  # a run, but no parent run
    done = run_script(cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "no search (parent run) in the store" in done.stderr
    missing = run_script("--tracking-uri", "sqlite:///nowhere.db", cwd=tmp_path, timeout=120)
    assert missing.returncode == 2 and "no MLflow store at" in missing.stderr


def test_screenshot_of_the_newest_search_compared(
    tmp_path: Path, process_probe: ProcessProbe
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing (Debian: apt-get install -y chromium)")
    build_fake_store(tmp_path, experiment="older-search")
    _, parent_id, children = build_fake_store(tmp_path)  # the newest search: the default
    experiment = MlflowClient(resolve_tracking_uri(None)).get_run(parent_id).info.experiment_id
    out = tmp_path / "docs" / "compare.png"
    marker = uuid.uuid4().hex
    tmp = Path(tempfile.mkdtemp(prefix="mss-"))  # the script's TMPDIR, short (see run_script)
    try:
        started = time.monotonic()
        done = run_script(
            *("--out", str(out), "--width", str(WIDTH), "--height", str(HEIGHT)),
            cwd=tmp_path,
            tmp=tmp,
            marker=marker,
        )
        took = time.monotonic() - started
        left_in_tmp = sorted(p.name for p in tmp.iterdir())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-4000:]
    png, url = done.stdout.split()
    assert Path(png) == out and out.is_file()
    query = urllib.parse.parse_qs(url.split("#/compare-runs?", 1)[1])
    assert sorted(json.loads(query["runs"][0])) == sorted(children)  # trials and the control
    assert json.loads(query["experiments"][0]) == [experiment]

    assert png_size(out) == (WIDTH, HEIGHT)
    colours, vivid = colour_stats(out)
    assert colours > 1000 and vivid > 8000, (
        f"{out}: {colours} colours, {vivid} vivid pixels: not the rendered comparison"
    )

    # Nothing left: neither by command line (store path, temp dirs) nor by environment.
    assert not process_probe(str(tmp_path), 10), "processes naming the store are left"
    assert not process_probe(str(tmp), 10), "processes naming the script's temp dir are left"
    assert not pids_with_env(marker, 10), "the server or the browser left processes"
    assert not left_in_tmp, f"the script left {left_in_tmp} in its temp dir"
    print(f"screenshot in {took:.1f} s: {colours} colours, {vivid} vivid pixels")
