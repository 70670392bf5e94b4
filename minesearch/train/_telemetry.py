"""Mining telemetry: how hard the batch's triplets are, and how many tuples the loss still uses.

For every trial, whatever its miner, each step classifies the batch's candidate triplets (a, p, n)
by m = d(a, n) - d(a, p) under the trial's margin, as TripletMarginMiner does: hard m <= 0,
semihard 0 < m <= margin, easy m > margin. Logged per epoch, the shares show mining difficulty
evolving as the embedding learns. Bounded cost: at most ~4M candidate triplets per step (anchors
are subsampled on large batches), on detached embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

MAX_CANDIDATES = 4_000_000
DEFAULT_MARGIN = 0.2  # TripletMarginMiner's default, for recipes without a margin


@dataclass
class Difficulty:
    """Running counts of candidate triplets over an epoch."""

    hard: int = 0
    semihard: int = 0
    easy: int = 0
    nonzero: list[float] = field(default_factory=list)

    def add(self, counts: tuple[int, int, int]) -> None:
        self.hard += counts[0]
        self.semihard += counts[1]
        self.easy += counts[2]

    def shares(self) -> dict[str, float]:
        total = self.hard + self.semihard + self.easy
        if total == 0:
            return {}
        shares = {
            "mining.hard": self.hard / total,
            "mining.semihard": self.semihard / total,
            "mining.easy": self.easy / total,
        }
        if self.nonzero:
            shares["mining.nonzero_loss"] = sum(self.nonzero) / len(self.nonzero)
        return shares


@torch.no_grad()
def triplet_difficulty(
    emb: torch.Tensor, labels: torch.Tensor, margin: float
) -> tuple[int, int, int]:
    """(hard, semihard, easy) counts among the candidate triplets of one batch."""
    dist = torch.cdist(emb.detach().float(), emb.detach().float())  # [B, B] Euclidean
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    anchors = max(1, min(len(labels), MAX_CANDIDATES // max(1, len(labels) ** 2)))
    # Evenly spaced anchors: the class-balanced batch is laid out class by class.
    a = torch.linspace(0, len(labels) - 1, anchors, device=labels.device).long()
    m = dist[a, None, :] - dist[a, :, None]  # [A, P, N]: d(a, n) - d(a, p)
    valid = positive[a][:, :, None] & ~same[a][:, None, :]
    hard = int((valid & (m <= 0)).sum())
    semihard = int((valid & (m > 0) & (m <= margin)).sum())
    easy = int((valid & (m > margin)).sum())
    return hard, semihard, easy


def nonzero_loss_share(loss_fn: nn.Module) -> float | None:
    """Share of the loss's elements (tuples) with a non-zero loss, from PML's reducer statistics
    (recorded when `pytorch_metric_learning.utils.common_functions.COLLECT_STATS` is on); None for
    losses whose reducer keeps none (e.g. mean reducers of classification losses)."""
    loss = getattr(loss_fn, "loss", loss_fn)  # under PML's DistributedLossWrapper
    reducer = getattr(loss, "reducer", None)
    reducers: list[Any] = list(getattr(reducer, "reducers", {}).values()) or [reducer]
    past = [getattr(r, "num_past_filter", None) for r in reducers]
    size = [getattr(r, "losses_size", None) for r in reducers]
    pairs = [(p, s) for p, s in zip(past, size, strict=True) if p is not None and s]
    if not pairs:
        return None
    return sum(float(p) for p, _ in pairs) / sum(float(s) for _, s in pairs)


def recipe_margin(loss_params: dict[str, Any], miner_params: dict[str, Any]) -> float:
    """The margin the telemetry classifies under: the miner's, else the loss's, else 0.2."""
    for params in (miner_params, loss_params):
        margin = params.get("margin")
        if isinstance(margin, int | float) and not isinstance(margin, bool):
            return float(margin)
    return DEFAULT_MARGIN


def rss_anon_mb() -> float | None:
    """This process's anonymous resident memory (heap, tensors), in MiB; None off Linux.

    Anonymous, not total RSS: the pages of a memory-mapped Parquet cache are file-backed page
    cache that the kernel reclaims, so they say nothing about whether a worker fits its memory.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        return None
    return None
