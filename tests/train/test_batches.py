"""ClassBalancedBatches: the global plan, its split across ranks, determinism, DataLoader use."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from minesearch.train import ClassBalancedBatches


def _labels(n_classes: int = 12, per_class: int = 10, seed: int = 0) -> np.ndarray:
    """Shuffled rows, so positions and classes are unrelated."""
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(n_classes), per_class))


def _ranks(
    labels: np.ndarray, classes: int, per_class: int, world: int, **kw: int
) -> list[ClassBalancedBatches]:
    return [ClassBalancedBatches(labels, classes, per_class, world, r, **kw) for r in range(world)]


def _steps(samplers: list[ClassBalancedBatches]) -> list[tuple[list[int], ...]]:
    """Per step, the tuple of each rank's batch."""
    return list(zip(*(list(s) for s in samplers), strict=True))


@pytest.mark.parametrize(("classes", "per_class", "world"), [(8, 4, 2), (7, 3, 3), (4, 5, 4)])
def test_union_over_ranks_is_balanced_and_disjoint(
    classes: int, per_class: int, world: int
) -> None:
    labels = _labels()
    samplers = _ranks(labels, classes, per_class, world, seed=3)
    for step in _steps(samplers):
        union = [i for batch in step for i in batch]
        assert len(union) == len(set(union)) == classes * per_class  # no row on two ranks
        counts = Counter(labels[union].tolist())
        assert len(counts) == classes and set(counts.values()) == {per_class}
        rank_classes = [set(labels[batch].tolist()) for batch in step]
        for r, (batch, cls) in enumerate(zip(step, rank_classes, strict=True)):
            assert len(batch) == samplers[0].per_worker_classes[r] * per_class
            assert len(cls) == samplers[0].per_worker_classes[r]  # whole classes on this rank
        assert sum(len(c) for c in rank_classes) == classes  # no class split between ranks


def test_per_worker_classes() -> None:
    labels = _labels()
    assert ClassBalancedBatches(labels, 8, 2, world_size=2).per_worker_classes == [4, 4]
    assert ClassBalancedBatches(labels, 7, 2, world_size=3).per_worker_classes == [3, 2, 2]
    assert ClassBalancedBatches(labels, 5, 2).per_worker_classes == [5]


def test_world_size_one_is_the_global_plan() -> None:
    labels = _labels()
    whole = list(ClassBalancedBatches(labels, 6, 3, seed=7))
    for step, ranks in zip(whole, _steps(_ranks(labels, 6, 3, 3, seed=7)), strict=True):
        assert sorted(step) == sorted(i for batch in ranks for i in batch)
        # rank r takes the global plan's classes r, r + world, ...: groups of per_class in order
        groups = [step[k : k + 3] for k in range(0, len(step), 3)]
        for r, batch in enumerate(ranks):
            assert batch == [i for g in groups[r::3] for i in g]


def test_small_classes_are_drawn_with_replacement() -> None:
    labels = np.array([0, 0, 1, 1, 1, 1, 1, 2, 2, 2])
    for batch in ClassBalancedBatches(labels, 3, 4, seed=0):
        counts = Counter(labels[batch].tolist())
        assert counts == {0: 4, 1: 4, 2: 4}
        assert len(set(i for i in batch if labels[i] == 1)) == 4  # class 1 has enough: no repeats


def test_deterministic_for_seed_and_epoch() -> None:
    labels = _labels()
    a, b = ClassBalancedBatches(labels, 4, 3, seed=1), ClassBalancedBatches(labels, 4, 3, seed=1)
    assert list(a) == list(b)
    assert list(a) == list(a)  # iterating again replays the same epoch
    epoch0 = list(a)
    a.set_epoch(1)
    assert list(a) != epoch0
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(ClassBalancedBatches(labels, 4, 3, seed=2)) != epoch0


def test_len_is_steps_per_epoch() -> None:
    labels = _labels()  # 120 rows
    sampler = ClassBalancedBatches(labels, 4, 3)
    assert len(sampler) == 10 == len(list(sampler))
    assert len(ClassBalancedBatches(labels, 12, 11)) == 1  # 132 > 120 still gives one step
    assert len(ClassBalancedBatches(labels, 4, 3, world_size=2, rank=1)) == 10  # same on all ranks


def test_works_as_dataloader_batch_sampler() -> None:
    labels = _labels()
    data = TensorDataset(torch.arange(len(labels)), torch.as_tensor(labels))
    sampler = ClassBalancedBatches(labels, 4, 3, world_size=2, rank=1, seed=5)
    loader = DataLoader(data, batch_sampler=sampler)
    assert len(loader) == len(sampler)
    for (rows, y), expected in zip(loader, sampler, strict=True):
        assert rows.tolist() == expected
        assert y.shape == (6,) and torch.equal(y, torch.as_tensor(labels[expected]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": 13, "per_class": 2}, "distinct labels"),
        ({"classes": 2, "per_class": 2, "world_size": 3, "rank": 0}, "world_size"),
        ({"classes": 4, "per_class": 0}, "per_class"),
        ({"classes": 4, "per_class": 2, "world_size": 2, "rank": 2}, "rank"),
        ({"classes": 4, "per_class": 2, "seed": -1}, "seed"),
    ],
)
def test_errors(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClassBalancedBatches(_labels(), **kwargs)


def test_bad_labels_and_epoch() -> None:
    with pytest.raises(ValueError, match="1-D"):
        ClassBalancedBatches(np.zeros((2, 2)), 1, 1)
    with pytest.raises(ValueError, match="epoch"):
        ClassBalancedBatches(_labels(), 2, 2).set_epoch(-1)


def test_a_restarted_worker_draws_the_same_plan_for_an_epoch() -> None:
    """Resume restarts a trial after its last checkpointed epoch: a new sampler must draw exactly
    the batches the old one would have, from (seed, epoch) alone."""
    labels = np.repeat(np.arange(6), 10)
    first = ClassBalancedBatches(labels, classes=4, per_class=3, world_size=2, rank=1, seed=5)
    for epoch in (1, 2, 3):
        first.set_epoch(epoch)
        steps = list(first)
    restarted = ClassBalancedBatches(labels, classes=4, per_class=3, world_size=2, rank=1, seed=5)
    restarted.set_epoch(3)
    assert list(restarted) == steps
    restarted.set_epoch(2)
    assert list(restarted) != steps
