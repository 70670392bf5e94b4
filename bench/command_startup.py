"""Wall time of the light commands against `python -c "import torch"`, measured in one run.

Run: python bench/command_startup.py [--repeats 5]

`minesearch validate search_spaces/quickstart.yaml` and `minesearch catalog` should cost no more
than importing torch (target: at most 1.2x): they load no Ray, MLflow, Optuna or torch. The
commands run interleaved (torch, validate, catalog, torch, ...) so that machine noise falls on
all of them alike; the medians and their ratios to torch's are printed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "minesearch validate": [
        sys.executable,
        "-m",
        "minesearch",
        "validate",
        "search_spaces/quickstart.yaml",
    ],
    "minesearch catalog": [sys.executable, "-m", "minesearch", "catalog"],
}
TARGET = 1.2


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def main(repeats: int = 5) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeats):
        for name, command in COMMANDS.items():
            times[name].append(seconds(command))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["import torch"]
    print(f"{'command':<22} {'median (s)':>10} {'x import torch':>15}")
    for name, median in medians.items():
        print(f"{name:<22} {median:>10.2f} {median / base:>15.2f}")
    print(f"target: validate and catalog at most {TARGET}x import torch ({repeats} runs each)")
    return {name: median / base for name, median in medians.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    main(parser.parse_args().repeats)
