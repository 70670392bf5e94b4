"""Cost of mining telemetry, as a share of a training epoch (issue: under 5%).

Run: python bench/telemetry_overhead.py
Trains the quickstart recipe families for a few epochs on digits in one process (no Ray), once with
telemetry (triplet difficulty each step + PML's reducer statistics) and once without, alternating
to share machine noise, and prints the median epoch times and their ratio.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from pytorch_metric_learning.utils import common_functions as pml_common

from minesearch import worker
from minesearch.batches import ClassBalancedBatches
from minesearch.data import load_digits_dataset, split_by_class
from minesearch.model import build_model
from minesearch.recipe import Recipe
from minesearch.telemetry import recipe_margin

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


def state_for(recipe: Recipe) -> worker.WorkerState:
    torch.manual_seed(0)
    data = load_digits_dataset()
    split = split_by_class(data.labels, 0.3, 0.0, 0)
    train = worker.contiguous_labels(data.subset(split.train))
    model = build_model(data.input_shape, "convnet", 32, 64)
    loss_fn, miner = recipe.build(len(np.unique(train.labels)), 32)
    groups = [{"params": list(model.parameters()), "lr": recipe.lr}]
    return worker.WorkerState(
        model=model,
        loss_fn=loss_fn,
        miner=miner,
        optimizer=worker.make_optimizer("adam", groups, recipe.lr, 0.0),
        batches=ClassBalancedBatches(train.labels, 4, 8),
        train=train,
        val=data.subset(split.val),
        device=torch.device("cpu"),
        rank=0,
        world=1,
        margin=recipe_margin(recipe.loss_params, recipe.miner_params),
    )


def epoch_time(state: worker.WorkerState, epoch: int, telemetry: bool) -> float:
    pml_common.COLLECT_STATS = telemetry
    saved = worker.triplet_difficulty, worker.nonzero_loss_share
    if not telemetry:
        worker.triplet_difficulty = lambda *args: (0, 0, 0)  # type: ignore[assignment]
        worker.nonzero_loss_share = lambda *args: None  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        worker.train_epoch(state, epoch)
        return time.perf_counter() - started
    finally:
        worker.triplet_difficulty, worker.nonzero_loss_share = saved


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'recipe':<24} {'without (s)':>11} {'with (s)':>9} {'overhead':>9}")
    for name, recipe in RECIPES.items():
        state = state_for(recipe)
        without, with_ = [], []
        for epoch in range(1, 9):
            without.append(epoch_time(state, epoch, telemetry=False))
            with_.append(epoch_time(state, epoch, telemetry=True))
        base, tele = statistics.median(without), statistics.median(with_)
        print(f"{name:<24} {base:>11.3f} {tele:>9.3f} {100 * (tele / base - 1):>8.1f}%")


if __name__ == "__main__":
    main()
