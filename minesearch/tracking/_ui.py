"""The MLflow UI on a store: a `mlflow server` started and stopped as one process group, and the
URLs of its pages for a search.

`minesearch ui` and `scripts/mlflow_screenshot.py` use it. The server runs in its own session
(process group) so that stopping it stops its gunicorn/uvicorn workers too, and nothing outlives
the command that started it.

URLs, as the 3.17 UI reads them (checked in its bundle, mlflow/server/js/build, and in headless
Chromium): the UI is a hash router; an experiment's page opens on a GenAI overview unless
`workflowType=machine_learning`; its runs table takes `searchFilter` (MLflow's run search
grammar, which has no OR: a search's child runs are `tags.mlflow.parentRunId = '<id>'`),
`orderByKey` (e.g. metrics.`selected.<metric>`) and `orderByAsc` from the query.
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
import urllib.parse
import urllib.request
from pathlib import Path

# The UI opens its Assistant side panel on first load when the page's hostname is localhost,
# 127.0.0.1 or ::1. Browsers resolve every *.localhost name to the loopback address, so a page
# loaded from this name (which the server is told to accept) shows no panel.
UI_HOST = "minesearch.localhost"
STOP_S = 10.0


class ServerError(RuntimeError):
    """The server exited or did not answer; the message ends with its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_server(uri: str, host: str, port: int, work: Path) -> subprocess.Popen[bytes]:
    """`mlflow server` on the store, in its own session (process group), logging to
    work/server.log. Artifacts of a local SQLite store are served from beside it. The store is
    opened here first: the server must find it whole, never make it beside a search."""
    from minesearch.tracking._store import local_artifact_root, open_store

    open_store(uri)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no GenAI job runner (huey consumers)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    hosts = {UI_HOST, "127.0.0.1", "localhost", host}
    root = local_artifact_root(uri)
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri),
        *(["--default-artifact-root", root] if root else []),
        *("--host", host, "--port", str(port), "--workers", "1"),
        *("--allowed-hosts", ",".join(f"{h}:{port}" for h in sorted(hosts))),
        *("--cors-allowed-origins", f"http://{UI_HOST}:{port}"),
    ]
    work.mkdir(parents=True, exist_ok=True)
    with (work / "server.log").open("wb") as log:
        return subprocess.Popen(
            command,
            cwd=work,  # its default ./mlartifacts, if ever made, lands there
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_until_up(
    proc: subprocess.Popen[bytes], base: str, work: Path, timeout_s: float = 90.0
) -> None:
    """Until `GET /health` answers 200; ServerError with the log if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while not answers(f"{base}/health"):
        if proc.poll() is not None:
            raise ServerError(f"mlflow server exited ({proc.returncode})\n{_tail(work)}")
        if time.monotonic() > deadline:
            raise ServerError(f"mlflow server not answering after {timeout_s:.0f} s\n{_tail(work)}")
        time.sleep(0.25)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL whatever of it is left; wait for it to go."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + STOP_S
    while time.monotonic() < deadline:  # members other than the leader (reaped by their parent)
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _tail(work: Path) -> str:
    try:
        return "--- server.log ---\n" + (work / "server.log").read_text(errors="replace")[-3000:]
    except OSError:
        return ""


def runs_url(
    base: str, experiment_id: str, parent_run_id: str, metric: str, asc: bool = False
) -> str:
    """The model-training runs table of an experiment, showing the search's child runs (one per
    trial, the control, the confirmations) best first by `metric` (a child run's metric key,
    e.g. `selected.mean_average_precision_at_r`)."""
    query = urllib.parse.urlencode(
        {
            "workflowType": "machine_learning",
            "searchFilter": f"tags.mlflow.parentRunId = '{parent_run_id}'",
            "orderByKey": f"metrics.`{metric}`",
            "orderByAsc": "true" if asc else "false",
        },
        quote_via=urllib.parse.quote,
    )
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def compare_url(base: str, run_ids: list[str], experiment_ids: list[str]) -> str:
    """The UI's compare-runs route (hash router): JSON lists, URL-quoted, as the UI writes them."""

    def quoted(values: list[str]) -> str:
        return urllib.parse.quote(json.dumps(values, separators=(",", ":")), safe="")

    return (
        f"{base.rstrip('/')}/#/compare-runs?runs={quoted(run_ids)}"
        f"&experiments={quoted(experiment_ids)}"
    )
