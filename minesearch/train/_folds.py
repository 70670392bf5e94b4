"""K class folds trained in lockstep inside one trial, on common random numbers.

With `search.folds: K` a trial trains one model per fold of `data.split_folds` in the same
worker(s): epoch by epoch, fold 0's epoch, then fold 1's, ...; then each fold is scored on its own
val classes and the trial reports the mean over folds (what Tune, ASHA, Optuna and the selection
read) beside each fold's scores (`fold{k}.<metric>`). K folds cost K times the training and the
evaluation, and K models, optimisers and losses in memory; the data is held once.

Common random numbers: every fold model starts from the same init and draws its batches from the
same seed in every recipe (`build_state`). PML's miners and losses draw from the global numpy and
torch generators, so each fold keeps its own copy of the global generators (`GlobalRng`), swapped
in around everything the fold does: the lockstep run is exactly what K separate single-fold
trainings give (tests/train/test_folds_lockstep.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

FOLD_PREFIX = "fold"  # fold k's metrics: fold{k}.<metric>


def fold_metric(fold: int, name: str) -> str:
    return f"{FOLD_PREFIX}{fold}.{name}"


def seed_globals(seed: int) -> None:
    """The global generators a trial starts from: Python's, numpy's (PML's too) and torch's (every
    device's, CUDA's included)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class GlobalRng:
    """One fold's copy of the global generators, swapped in while the fold runs (`active`)."""

    python: Any
    numpy: Any
    torch_cpu: torch.Tensor
    cuda: torch.Tensor | None  # the current CUDA device's, when the fold trains on one

    @classmethod
    def capture(cls, device: torch.device) -> GlobalRng:
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return cls(random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda)

    def install(self, device: torch.device) -> None:
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch_cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, device)

    @contextmanager
    def active(self, device: torch.device) -> Iterator[None]:
        """The fold's generators while the block runs; where they got to is kept for its next
        block."""
        self.install(device)
        yield
        fresh = GlobalRng.capture(device)
        self.python, self.numpy, self.torch_cpu, self.cuda = (
            fresh.python,
            fresh.numpy,
            fresh.torch_cpu,
            fresh.cuda,
        )


def fold_scores(per_fold: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The trial's scores: each metric's mean over folds under its own name, and with K > 1 each
    fold's under `fold{k}.`. One fold reports its scores as they are."""
    if len(per_fold) == 1:
        return dict(per_fold[0])
    names = list(per_fold[0])
    mean = {name: float(np.mean([scores[name] for scores in per_fold])) for name in names}
    folds = {fold_metric(k, n): float(v) for k, s in enumerate(per_fold) for n, v in s.items()}
    return mean | folds


# a fold's epoch statistics that add up (the trial's epoch took all folds' time) or peak
_SUMMED = ("epoch_time_s",)
_PEAKS = ("memory.",)


def fold_stats(per_fold: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """One epoch's training statistics over the folds: times summed, memory peaks the largest,
    the rest (losses, rates, mining shares) the mean of the folds that have them."""
    if len(per_fold) == 1:
        return dict(per_fold[0])
    merged: dict[str, float] = {}
    for name in dict.fromkeys(n for stats in per_fold for n in stats):
        values = [stats[name] for stats in per_fold if name in stats]
        if name in _SUMMED:
            merged[name] = float(np.sum(values))
        elif name.startswith(_PEAKS):
            merged[name] = float(np.max(values))
        else:
            merged[name] = float(np.mean(values))
    return merged
