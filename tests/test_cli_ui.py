"""`minesearch ui`: the MLflow UI on a store, at its newest search; Ctrl+C leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from test_mlflow_screenshot import CHROMIUM, build_fake_store, pids_with_env

from minesearch.cli import main
from minesearch.recipe import Recipe, TrialConfig
from minesearch.tracking import ChildRuns, runs_url

UI_START_S = 120  # the server takes ~4 s on 2 idle cores; much longer on a loaded CI machine


def test_runs_url_filters_the_search_and_orders_by_its_metric() -> None:
    url = runs_url("http://h:1/", "7", "abc", "selected.mean_average_precision_at_r")
    path, query = url.split("?", 1)
    assert path == "http://h:1/#/experiments/7/runs"
    params = dict(urllib.parse.parse_qsl(query))  # the UI: URLSearchParams
    assert params == {
        "workflowType": "machine_learning",  # the model-training view, not the GenAI overview
        "searchFilter": "tags.mlflow.parentRunId = 'abc'",
        "orderByKey": "metrics.`selected.mean_average_precision_at_r`",
        "orderByAsc": "false",
    }
    assert "orderByAsc=true" in runs_url("b", "7", "abc", "loss", asc=True)


def test_no_store_or_a_bad_space_file_exits_2(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["ui", "--tracking-uri", f"sqlite:///{tmp_path}/none.db"])
    assert missing.exit_code == 2 and f"no MLflow store at {tmp_path}/none.db" in missing.output
    (tmp_path / "bad.yaml").write_text("name: x\ntrain: {epochs: -1}\n")
    bad = runner.invoke(main, ["ui", str(tmp_path / "bad.yaml")])
    assert bad.exit_code == 2 and "train.epochs" in bad.output
    assert not (tmp_path / "none.db").exists()  # reading never creates a store


@pytest.mark.slow
def test_ui_serves_the_newest_search_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    uri, _, older = build_fake_store(tmp_path)  # an earlier search in the same experiment
    _, parent_id, children = build_fake_store(tmp_path)
    stopped, failed = stopped_and_failed(uri, parent_id)
    client = MlflowClient(uri)
    shown = [client.get_run(run_id).info.run_name for run_id in [*children, stopped, failed]]
    hidden = [client.get_run(run_id).info.run_name for run_id in older]
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["SCREENSHOT_TEST_MARKER"] = marker  # every descendant inherits it (see pids_with_env)
    command = [sys.executable, "-c", "from minesearch.cli import main; main()", "ui"]
    cli = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        url = read_url(cli)
        base = url.split("/#/", 1)[0]
        assert base.startswith("http://127.0.0.1:")
        assert f"searchFilter=tags.mlflow.parentRunId%20%3D%20%27{parent_id}%27" in url
        with urllib.request.urlopen(f"{base}/", timeout=10) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
        if CHROMIUM.exists():  # what a first-time visitor of the printed URL sees
            dom = rendered(url, tmp_path / "profile")
            assert "Model training" in dom and "matching runs" in dom  # the runs table
            assert all(name in dom for name in shown), "the search's runs are not listed"
            assert not any(name in dom for name in hidden), "another search's runs are listed"
            icons = status_icons(dom)  # the same icon means the same status to the viewer
            assert {stopped, failed, children[0]} <= set(icons), "the runs table changed"
            assert icons[stopped] == icons[children[0]], (
                "a stopped trial is drawn unlike a finished one"
            )
            assert icons[failed] != icons[stopped], "a stopped trial is drawn as a failure"
        server = {pid for pid in pids_with_env(marker, 0) if pid != cli.pid}
        assert server, "no server process found"
        groups = {os.getpgid(pid) for pid in server}
        assert os.getpgid(cli.pid) not in groups  # the server has its own process group

        cli.send_signal(signal.SIGINT)  # what Ctrl+C sends to the command
        out, err = cli.communicate(timeout=60)
        assert cli.returncode == 0, err
        assert "stopping the MLflow UI" in out
        for group in groups:
            with pytest.raises(ProcessLookupError):
                os.killpg(group, 0)
        assert not pids_with_env(marker, 10), "the UI left processes behind"
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def stopped_and_failed(uri: str, parent_id: str) -> tuple[str, str]:
    """Two more trials of the search, ended as minesearch ends them: one stopped early by the
    scheduler, one failed; their child run ids."""
    children = ChildRuns(uri, parent_id, "trial", {})
    trial = TrialConfig(Recipe("TripletMarginLoss", lr=1e-3))
    stopped = children.create("stopped_00005", trial, trial.to_config())
    children.finish(stopped, stopped_early=True)
    failed = children.create("failed_00006", trial, trial.to_config())
    children.fail(failed, "boom")
    return stopped, failed


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class _StatusIcons(HTMLParser):
    """Each run's status icon in the 3.17 runs table (checked in headless Chromium): the icon in
    its row's `runDateAndNestInfo` ("Created") cell, as its class (the colour) and its paths."""

    def __init__(self) -> None:
        super().__init__()
        self.depth, self.row = 0, ""
        self.cell: int | None = None
        self.icon: int | None = None
        self.icons: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag in VOID:
            return
        self.depth += 1
        self.row = found.get("row-id", self.row)
        if found.get("col-id") == "runDateAndNestInfo" and self.row:
            self.cell = self.depth
        if self.cell and found.get("role") == "img" and self.row not in self.icons:
            self.icon, self.icons[self.row] = self.depth, [found.get("class", "")]
        if self.icon and tag == "path":
            self.icons[self.row].append(found.get("d", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if self.icon == self.depth:
            self.icon = None
        if self.cell == self.depth:
            self.cell = None
        self.depth -= 1


def status_icons(dom: str) -> dict[str, str]:
    """Run id -> its status icon in the runs table."""
    parser = _StatusIcons()
    parser.feed(dom)
    return {run: " ".join(icon) for run, icon in parser.icons.items()}


def rendered(url: str, profile: Path) -> str:
    """The page's DOM after headless Chromium has had 15 s of virtual time to fetch and render
    it (virtual time stands still while requests are pending)."""
    command = [str(CHROMIUM), "--headless", "--disable-gpu", "--disable-dev-shm-usage"]
    command += ["--no-sandbox"] if os.geteuid() == 0 else []
    command += ["--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=15000"]
    done = subprocess.run(
        [*command, "--dump-dom", url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def read_url(cli: subprocess.Popen[str]) -> str:
    """The runs page's URL, the second line the command prints once the server answers."""
    assert cli.stdout is not None
    deadline = time.monotonic() + UI_START_S
    while time.monotonic() < deadline:
        line = cli.stdout.readline()
        if line.startswith("http://"):
            return line.strip()
        if not line and cli.poll() is not None:
            raise AssertionError(f"minesearch ui exited: {cli.stderr.read() if cli.stderr else ''}")
    raise AssertionError("no URL printed")
