"""The `minesearch` program's exit (`cli.entry`): without the interpreter's teardown, but with
everything a normal exit does first: the exit code, the output through a pipe, atexit hooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


def test_bad_input_exits_2_with_its_message_and_no_traceback(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("name: x\ndata: {source: nowhere}\n")
    done = subprocess.run(
        [sys.executable, "-m", "minesearch", "validate", str(space)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "data.source" in done.stderr and "Traceback" not in done.stderr


def test_atexit_hooks_run_and_piped_output_arrives(tmp_path: Path) -> None:
    marker = tmp_path / "hook"
    code = (
        "import atexit, pathlib, sys\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'ran')\n"
        "sys.argv = ['minesearch', '--version']\n"
        "from minesearch.cli import entry\n"
        "print('before', end=' ')\n"  # buffered: a pipe is block-buffered
        "entry()\n"
    )
    done = run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("before ") and "version" in done.stdout
    assert marker.read_text() == "ran"


def test_a_message_as_exit_code_is_printed_and_exits_1() -> None:
    code = (
        "import minesearch.cli as cli\n"
        "def main():\n"
        "    raise SystemExit('stopped: why')\n"
        "cli.main = main\n"
        "cli.entry()\n"
    )
    done = run(code)
    assert done.returncode == 1 and done.stderr.strip() == "stopped: why"
