"""Training steps per second of k processes side by side, each with t threads, against one
process with all the threads: the measurement behind the test estimate's `side_by_side` rule
(`minesearch.search._test_estimate_runs`).

Run: python bench/side_by_side.py [--space search_spaces/text_minilm.yaml] [--steps 20]
       [--arms 1x2,2x1,3x1]
Each arm KxT starts K processes (spawned, so none inherits the parent's torch threads) that
build the space's network with the control recipe, take 3 warm-up steps, wait for each other,
then time `--steps` steps of class-balanced batches, as a trial's `train_step` takes them. An
arm's rate is all its steps over its slowest process's time; the ratios are against the first
arm, measured in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's minesearch

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "text_minilm.yaml"
WARM_UP = 3


def parse_arm(text: str) -> tuple[int, int]:
    """'3x1' -> (3 processes, 1 thread each)."""
    processes, threads = (int(n) for n in text.lower().split("x"))
    if processes < 1 or threads < 1:
        raise ValueError(f"--arms: KxT with K, T >= 1, got {text!r}")
    return processes, threads


def train_steps(
    space: str, threads: int, steps: int, barrier: Barrier, out: Queue[tuple[int, float]]
) -> None:
    """One process: the space's network and its control recipe, `steps` timed steps."""
    import torch

    torch.set_num_threads(threads)
    from minesearch.config import load_spec
    from minesearch.recipe import control_recipe
    from minesearch.search._score_tasks import model_setting
    from minesearch.train._embed_rows import to_device
    from minesearch.train._loop import build_state, train_step

    spec = load_spec(space)
    state = build_state(spec, control_recipe(spec, model_setting(spec)))
    rows, labels = state.parts.rows("train"), torch.from_numpy(state.train_labels)
    generator = torch.Generator().manual_seed(0)
    state.model.train()
    batches: Iterator[list[int]] = iter(())
    epoch = 0

    def step(number: int) -> None:
        nonlocal batches, epoch
        idx = next(batches, None)
        if idx is None:
            epoch += 1
            state.batches.set_epoch(epoch)
            batches = iter(state.batches)
            idx = next(batches)
        raw = state.parts.source.take(rows[idx])
        x = to_device(state.preprocess(raw, True, generator), state.device)
        train_step(state, x, labels[idx], number)

    for number in range(WARM_UP):
        step(number)
    barrier.wait()
    started = time.perf_counter()
    for number in range(steps):
        step(WARM_UP + number)
    out.put((steps, time.perf_counter() - started))


def rate(space: str, processes: int, threads: int, steps: int) -> tuple[float, list[float]]:
    """All the arm's steps over its slowest process's time, and each process's time."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=train_steps, args=(space, threads, steps, barrier, out))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    done = [out.get() for _ in workers]
    for worker in workers:
        worker.join()
    times = [seconds for _, seconds in done]
    return sum(n for n, _ in done) / max(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", type=Path, default=SPACE)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per process")
    parser.add_argument("--arms", default="1x2,2x1,3x1", help="KxT, the first is the baseline")
    args = parser.parse_args()
    arms = [parse_arm(text) for text in args.arms.split(",")]
    baseline = None
    for processes, threads in arms:
        found, times = rate(str(args.space), processes, threads, args.steps)
        baseline = baseline or found
        each = ", ".join(f"{t:.1f}" for t in times)
        print(
            f"{processes} x {threads} thread(s): {found:.2f} steps/s "
            f"({found / baseline:.2f}x the first arm; each process {each} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
