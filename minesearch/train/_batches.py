"""Class-balanced batches that stay balanced when a trial trains on several data-parallel workers.

Miners and losses need positives (two samples of one class) in every batch. PML's MPerClassSampler
gives that on one process but is not DDP-aware (PML#546): each worker would draw its own batch, and
a class could land on one worker with a single sample. Here every worker computes the same global
plan and keeps only its own whole classes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["ClassBalancedBatches"]


class ClassBalancedBatches:
    """Per-step row indices for one rank; usable as a DataLoader `batch_sampler`.

    Each global step draws `classes` distinct classes x `per_class` samples of each (without
    replacement inside a class when the class has enough samples, with replacement otherwise). The
    global batch is split across `world_size` workers BY CLASS: worker r gets the step's classes
    r, r + world_size, r + 2·world_size, ... with all `per_class` samples of each. So:

    - the global batch is classes * per_class samples;
    - rank r's batch is per_worker_classes[r] * per_class samples, where per_worker_classes[r] is
      classes // world_size, plus one for the first classes % world_size ranks. Training needs
      equal shards (PML's all-gather assumes them), so the space file requires classes to be a
      multiple of the workers (spec.py); the sampler itself allows any split;
    - every shard holds complete classes, so positives exist on every worker even without
      all-gathering embeddings, and no sample appears on two workers in the same step.

    Requires classes >= world_size (otherwise some worker would get an empty batch). Deterministic
    given (seed, epoch): all ranks draw the same plan from the same RNG, so they need no
    communication; call `set_epoch` each epoch, as with DistributedSampler.
    steps_per_epoch = max(1, len(labels) // (classes * per_class)).
    """

    def __init__(
        self,
        labels: np.ndarray,
        classes: int,
        per_class: int,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
    ) -> None:
        labels = np.asarray(labels)
        _check_args(labels, classes, per_class, world_size, rank, seed)
        self._pools = _rows_by_class(labels)  # one int64 array of row positions per class
        self._classes = classes
        self._per_class = per_class
        self._world_size = world_size
        self._rank = rank
        self._seed = seed
        self._epoch = 0
        self._steps = max(1, len(labels) // (classes * per_class))

    def set_epoch(self, epoch: int) -> None:
        """Select the plan `__iter__` yields: new each epoch, identical on all ranks."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch = epoch

    def __len__(self) -> int:
        return self._steps

    def __iter__(self) -> Iterator[list[int]]:
        for groups in self._global_plan():
            mine = groups[self._rank :: self._world_size]
            yield [int(i) for group in mine for i in group]

    @property
    def per_worker_classes(self) -> list[int]:
        """How many classes each rank gets per step (they differ by at most one)."""
        base, extra = divmod(self._classes, self._world_size)
        return [base + (r < extra) for r in range(self._world_size)]

    def _global_plan(self) -> Iterator[list[np.ndarray]]:
        """Yield, per step, the `classes` groups of `per_class` row positions of the global batch.

        Every rank runs this in full, consuming the RNG identically, so the plans agree.
        """
        rng = np.random.default_rng((self._seed, self._epoch))
        for _ in range(self._steps):
            chosen = rng.choice(len(self._pools), size=self._classes, replace=False)
            yield [self._draw(rng, self._pools[c]) for c in chosen]

    def _draw(self, rng: np.random.Generator, pool: np.ndarray) -> np.ndarray:
        """`per_class` rows of one class; repeats only when the class is too small to avoid them."""
        return rng.choice(pool, size=self._per_class, replace=len(pool) < self._per_class)


def _rows_by_class(labels: np.ndarray) -> list[np.ndarray]:
    """Row positions grouped by class, classes in sorted order (so the plan ignores row order)."""
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    return [part.astype(np.int64) for part in np.split(order, bounds)]


def _check_args(
    labels: np.ndarray, classes: int, per_class: int, world_size: int, rank: int, seed: int
) -> None:
    """Reject settings that would give empty, unbalanced or positive-free batches."""
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    n_distinct = len(np.unique(labels))
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"need world_size >= 1 and 0 <= rank < world_size, got {rank}/{world_size}"
        )
    if not world_size <= classes <= n_distinct:
        raise ValueError(
            f"classes must be between world_size ({world_size}) and the number of distinct "
            f"labels ({n_distinct}), got {classes}: each worker needs at least one whole class"
        )
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
