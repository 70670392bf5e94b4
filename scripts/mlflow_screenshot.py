"""A PNG of the MLflow UI comparing a search's child runs (one per trial), from a headless browser.

    python scripts/mlflow_screenshot.py --out docs/mlflow_compare.png

Starts its own `mlflow server` on a free port of 127.0.0.1 against the store (as `minesearch`
resolves it: --tracking-uri, else $MLFLOW_TRACKING_URI, else ./mlflow.db), opens the UI's
compare-runs page for the children of a search's parent run in headless Chromium, saves the
screenshot, and always stops the server and the browser (each runs in its own process group).
Prints the PNG path and the URL. Exit code 2 when there is nothing to show or no browser.

Needs Chromium (Debian: `apt-get install -y chromium`). The store is read with
`minesearch.tracking`, which imports MLflow and nothing heavier.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

from minesearch.tracking import (
    UI_HOST,
    ServerError,
    StoreError,
    compare_url,
    find_search,
    free_port,
    read_search,
    resolve_tracking_uri,
    start_server,
    stop_group,
    wait_until_up,
)

BROWSERS = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
BROWSER_TIMEOUT_S = 45.0  # real seconds beyond the virtual-time budget; ~5 s is usual
ATTEMPTS = 2


class Unusable(Exception):
    """Nothing to screenshot (no store, no search, no browser): exit code 2."""


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def find_browser(given: str | None) -> str:
    for name in (given,) if given else BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise Unusable(
        f"no Chromium ({given or ', '.join(BROWSERS)}); on Debian: apt-get install -y chromium"
    )


def screenshot(
    browser: str, url: str, out: Path, size: tuple[int, int], budget_ms: int, work: Path
) -> None:
    """Headless Chromium loads `url` and writes `out` once the page has had `budget_ms` of
    virtual time, which stands still while requests are pending: the data is in, not a spinner.
    Chromium now and then hangs instead of writing the screenshot: one more try after a timeout."""
    for attempt in range(1, ATTEMPTS + 1):
        profile = work / f"chromium-profile-{attempt}"
        profile.mkdir()
        command = [
            browser,
            "--headless",
            *(["--no-sandbox"] if os.geteuid() == 0 else []),
            *("--disable-gpu", "--disable-quic", "--disable-dev-shm-usage"),
            *("--no-first-run", "--no-default-browser-check", "--disable-sync"),
            *("--disable-background-networking", "--disable-component-update"),
            "--enable-unsafe-swiftshader",  # software WebGL, for the parallel-coordinates plot
            f"--user-data-dir={profile}",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--window-size={size[0]},{size[1]}",
            f"--virtual-time-budget={budget_ms}",
            f"--screenshot={out}",
            url,
        ]
        log = work / f"chromium-{attempt}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                command,
                cwd=work,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = proc.wait(timeout=BROWSER_TIMEOUT_S + budget_ms / 1000)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                stop_group(proc)  # its helpers (zygotes, crashpad) too
        if code == 0 and out.is_file():
            return
        if code is not None:
            fail(f"chromium exited {code} without writing {out}", log)
        print(f"chromium hung (attempt {attempt} of {ATTEMPTS})", file=sys.stderr)
    fail(f"chromium did not write {out} in {ATTEMPTS} attempts", log)


def fail(message: str, log: Path) -> NoReturn:
    try:
        tail = log.read_text(errors="replace")[-3000:]
    except OSError:
        tail = ""
    raise RuntimeError(f"{message}\n--- {log.name} ---\n{tail}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tracking-uri",
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)",
    )
    parser.add_argument(
        "--experiment", help="experiment name (default: that of the newest search's parent run)"
    )
    parser.add_argument("--run", help="the search's parent run id (default: the newest)")
    parser.add_argument("--out", type=Path, default=Path("mlflow_compare.png"), help="PNG path")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument(
        "--budget-ms",
        type=int,
        default=15000,
        help="virtual time the page gets to fetch and render (default: 15000)",
    )
    parser.add_argument(
        "--server-timeout", type=float, default=90.0, help="seconds for the server to start"
    )
    parser.add_argument("--chromium", help="browser binary (default: /usr/bin/chromium, PATH)")
    return parser.parse_args(argv)


def _terminate(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the processes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    uri = resolve_tracking_uri(args.tracking_uri)
    try:
        search = read_search(uri, find_search(uri, args.experiment, args.run))
        if not search.trials:
            raise Unusable(f"run {search.parent_run_id} has no child runs to compare")
        browser = find_browser(args.chromium)
    except (Unusable, StoreError) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)  # a stale PNG must not pass for this one
    run_ids = [trial.run_id for trial in search.trials]
    experiment_ids = [search.experiment_id]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mlflow_screenshot_") as tmp:
        work = Path(tmp)
        server = None
        try:
            if is_server(uri):
                base = uri.rstrip("/")
            else:
                port = free_port()
                server = start_server(uri, "127.0.0.1", port, work)
                wait_until_up(server, f"http://127.0.0.1:{port}", work, args.server_timeout)
                base = f"http://{UI_HOST}:{port}"
                up = time.monotonic() - started
                print(f"mlflow server up on port {port} in {up:.1f} s", file=sys.stderr)
            url = compare_url(base, run_ids, experiment_ids)
            size = (args.width, args.height)
            screenshot(browser, url, out, size, args.budget_ms, work)
        except (RuntimeError, ServerError) as problem:
            print(f"error: {problem}", file=sys.stderr)
            return 1
        finally:
            if server is not None:
                stop_group(server)
    name = search.parent_name or search.parent_run_id
    took = time.monotonic() - started
    print(
        f"{len(run_ids)} child runs of {name} ({search.parent_run_id}), {took:.1f} s",
        file=sys.stderr,
    )
    print(out)
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
