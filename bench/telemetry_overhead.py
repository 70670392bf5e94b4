"""Cost of mining telemetry, as a share of a training epoch (issue: under 5%).

Run: python bench/telemetry_overhead.py
Trains the quickstart recipe families for a few epochs on digits in one process (no Ray), once with
telemetry (triplet difficulty, PML's reducer statistics and the memory sample, every 4th step) and
once without, alternating to share machine noise, and prints the median epoch times and ratio.

PML's losses and miners read `COLLECT_STATS` when they are built, so each arm builds its own state
(same seed, same weights) with the flag set as that arm needs it; flipping it afterwards would
leave both arms without PML's statistics.
"""

from __future__ import annotations

import statistics
import time

import torch
from pytorch_metric_learning.utils import common_functions as pml_common

from minesearch.config import parse_spec
from minesearch.recipe import Recipe
from minesearch.train import WorkerState, build_state
from minesearch.train import _loop as worker
from minesearch.train import _tally as tally  # the epoch's telemetry samples (EpochTally.sample)

MODEL = {"backbone": "convnet", "embedding_dim": 32, "hidden_dim": 64}  # the quickstart's
RECIPES = {
    "triplet+tm-semihard": Recipe(
        "TripletMarginLoss",
        "TripletMarginMiner",
        {"margin": 0.1},
        {"margin": 0.1, "type_of_triplets": "semihard"},
    ),
    "contrastive+batchhard": Recipe(
        "ContrastiveLoss", "BatchHardMiner", {"pos_margin": 0.0, "neg_margin": 1.0}
    ),
    "multisim+ms": Recipe(
        "MultiSimilarityLoss",
        "MultiSimilarityMiner",
        {"alpha": 2.0, "beta": 50.0, "base": 0.5},
        {"epsilon": 0.1},
    ),
}


def state_for(recipe: Recipe, telemetry: bool) -> WorkerState:
    pml_common.COLLECT_STATS = telemetry  # read by the loss and miner constructors
    spec = parse_spec(
        {
            "name": "bench",
            "data": {"split": {"val": 0.3, "test": 0.0}},
            "model": MODEL,
            "train": {"batch": {"classes": 4, "per_class": 8}},
        }
    )
    return build_state(spec, recipe)


def epoch_time(state: WorkerState, epoch: int, telemetry: bool) -> float:
    saved = tally.triplet_difficulty, tally.nonzero_loss_share, tally.rss_anon_mb
    if not telemetry:
        tally.triplet_difficulty = lambda *args: (0, 0, 0)
        tally.nonzero_loss_share = lambda *args: None
        tally.rss_anon_mb = lambda: None
    try:
        started = time.perf_counter()
        worker.train_epoch(state, epoch)
        return time.perf_counter() - started
    finally:
        tally.triplet_difficulty, tally.nonzero_loss_share, tally.rss_anon_mb = saved


def main(epochs: int = 8) -> None:
    torch.set_num_threads(1)
    print(f"{'recipe':<24} {'without (s)':>11} {'with (s)':>9} {'overhead':>9}")
    for name, recipe in RECIPES.items():
        plain, measured = state_for(recipe, telemetry=False), state_for(recipe, telemetry=True)
        assert getattr(measured.loss_fn, "collect_stats", True), "PML's statistics are off"
        without, with_ = [], []
        for epoch in range(1, epochs + 1):
            without.append(epoch_time(plain, epoch, telemetry=False))
            with_.append(epoch_time(measured, epoch, telemetry=True))
        base, tele = statistics.median(without), statistics.median(with_)
        print(f"{name:<24} {base:>11.3f} {tele:>9.3f} {100 * (tele / base - 1):>8.1f}%")


if __name__ == "__main__":
    main()
