"""Mining telemetry against brute force on tiny hand-built batches."""

from __future__ import annotations

import itertools
import sys
import time

import pytest
import torch
from pytorch_metric_learning import losses
from pytorch_metric_learning.utils import common_functions

from minesearch.config.vocab import GPU_SECONDS, WORKER_SECONDS
from minesearch.train._telemetry import (
    Difficulty,
    SystemSampler,
    nonzero_loss_share,
    recipe_margin,
    triplet_difficulty,
)


def brute(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> tuple[int, int, int]:
    counts = [0, 0, 0]
    n = len(labels)
    for a, p, q in itertools.product(range(n), repeat=3):
        if a == p or labels[a] != labels[p] or labels[a] == labels[q]:
            continue
        m = float(torch.dist(emb[a], emb[q]) - torch.dist(emb[a], emb[p]))
        counts[0 if m <= 0 else 1 if m <= margin else 2] += 1
    return counts[0], counts[1], counts[2]


@pytest.mark.parametrize("seed", range(5))
def test_difficulty_matches_brute_force(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(12, 4, generator=generator), dim=1)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    for margin in (0.05, 0.3, 1.0):
        assert triplet_difficulty(emb, labels, margin) == brute(emb, labels, margin)


def test_hand_built_batch() -> None:
    # Class 0 at x=0 and x=0.1, class 1 at x=1: from either class-0 anchor the negative is far.
    emb = torch.tensor([[0.0], [0.1], [1.0], [1.05]])
    labels = torch.tensor([0, 0, 1, 1])
    hard, semihard, easy = triplet_difficulty(emb, labels, margin=0.5)
    assert (hard, semihard, easy) == (0, 0, 8)
    assert triplet_difficulty(emb, labels, margin=2.0) == (0, 8, 0)


def test_shares_sum_to_one_and_empty_epoch_logs_nothing() -> None:
    d = Difficulty()
    assert d.shares() == {}
    d.add((1, 2, 1))
    d.nonzero += [0.5, 1.0]
    shares = d.shares()
    assert shares["mining.hard"] == 0.25 and shares["mining.semihard"] == 0.5
    assert shares["mining.nonzero_loss"] == 0.75


def test_nonzero_share_from_pml_reducer_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common_functions, "COLLECT_STATS", True)
    emb = torch.tensor([[0.0, 1.0], [0.0, 0.9], [1.0, 0.0], [0.9, 0.1]])
    emb = torch.nn.functional.normalize(emb, dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    loss = losses.TripletMarginLoss(margin=0.05)
    loss(emb, labels)
    assert nonzero_loss_share(loss) == 0.0  # well separated: every triplet satisfies the margin
    loss = losses.TripletMarginLoss(margin=5.0)
    loss(emb, labels)
    assert nonzero_loss_share(loss) == 1.0
    contrastive = losses.ContrastiveLoss()
    contrastive(emb, labels)
    assert nonzero_loss_share(contrastive) is not None
    assert nonzero_loss_share(torch.nn.Linear(1, 1)) is None


def test_recipe_margin() -> None:
    assert recipe_margin({"margin": 0.05}, {"margin": 0.3}) == 0.3
    assert recipe_margin({"margin": 0.05}, {}) == 0.05
    assert recipe_margin({"pos_margin": 0.0}, {}) == 0.2


def test_system_sampler_reports_cost_and_the_machine_as_mlflow_names_it() -> None:
    """Worker seconds run on from the worker's start times the workers; CPU is averaged since
    the last sample; memory is the machine's; no GPU metric on a CPU worker."""
    sampler = SystemSampler(torch.device("cpu"), world=2, started=time.monotonic() - 10.0)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # keep a core busy between the samples
        sum(i * i for i in range(1000))
    first = sampler.sample()
    assert 20.0 <= first[WORKER_SECONDS] < 25.0
    assert GPU_SECONDS not in first and not any("gpu" in k for k in first)
    if sys.platform == "linux":
        assert 0.0 < first["system/cpu_utilization_percentage"] <= 100.0
        used = first["system/system_memory_usage_megabytes"]
        assert 0.0 < first["system/system_memory_usage_percentage"] <= 100.0 and used > 0
    assert sampler.sample()[WORKER_SECONDS] >= first[WORKER_SECONDS]  # a running total


def test_a_gpu_worker_reports_gpu_seconds_and_its_peak_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No GPU here: torch's CUDA queries are stood in for, to check names and arithmetic (the
    peak is reset after each sample, so each epoch reports its own)."""
    peaks, resets = [3e9, 1e9], []

    class Props:
        total_memory = 12e9
        uuid = "0000"

    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda i: peaks[len(resets)])
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda i: resets.append(i))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props())
    sampler = SystemSampler(torch.device("cuda", 1), world=2, started=time.monotonic() - 5.0)
    first, second = sampler.sample(), sampler.sample()
    assert first[GPU_SECONDS] == pytest.approx(first[WORKER_SECONDS]) and first[GPU_SECONDS] >= 10
    assert first["system/gpu_1_memory_usage_megabytes"] == pytest.approx(3000.0)
    assert first["system/gpu_1_memory_usage_percentage"] == pytest.approx(25.0)
    assert second["system/gpu_1_memory_usage_megabytes"] == pytest.approx(1000.0)
    assert resets == [1, 1]
