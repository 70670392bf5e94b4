"""What the side-by-side benches share: an arm runs in a fresh interpreter (imports, caches and
freed memory of one arm never reach the other), and its peak memory is read from the kernel.

Peak RSS above a baseline: write 5 to /proc/self/clear_refs (the peak mark := current RSS), read
VmRSS, run, read VmHWM; torch's and faiss's allocations are included, which tracemalloc would not
see. Where clear_refs cannot be written, ru_maxrss since the process started stands in (and says
so).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _proc_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class PeakMemory:
    """`start()` before the measured call, `above()` after: bytes of peak RSS above the start."""

    def start(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")  # peak RSS := current RSS
            self.method = "VmHWM after clear_refs"
        except OSError:
            self.method = "ru_maxrss since start (clear_refs not writable)"
        self.before = _proc_kib("VmRSS")

    def peak_kib(self) -> int:
        if self.method.startswith("VmHWM"):
            return _proc_kib("VmHWM")
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    def above(self) -> int:
        return (self.peak_kib() - self.before) * 1024


def run_fresh(
    script: str, args: list[str], what: str, threads: int | None, timeout: float | None = None
) -> dict[str, Any]:
    """`script args` in a fresh interpreter; its last stdout line is the JSON result."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if threads is not None:
        env |= dict.fromkeys(THREAD_VARIABLES, str(threads))
    done = subprocess.run(
        [sys.executable, script, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
