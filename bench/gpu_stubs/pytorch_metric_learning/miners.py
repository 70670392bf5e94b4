"""PML 2.9.0's TripletMarginMiner as a base class: arguments, distance and `forward`, the mining
itself left to the subclass (the catalog's blockwise miner) (bench/gpu_stubs/README.md)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class LpDistance(nn.Module):
    """PML's default distance for this miner: Euclidean between L2-normalised rows (cdist)."""

    is_inverted = False

    def forward(self, query: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        query = nn.functional.normalize(query, p=2, dim=1)
        ref = query if ref is None else nn.functional.normalize(ref, p=2, dim=1)
        return torch.cdist(query, ref, p=2)  # (B, R)


class TripletMarginMiner(nn.Module):
    def __init__(
        self,
        margin: float = 0.2,
        type_of_triplets: str = "all",
        collect_stats: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.margin = margin
        self.type_of_triplets = type_of_triplets
        self.collect_stats = collect_stats
        self.distance = LpDistance()

    def add_to_recordable_attributes(self, name: str, is_stat: bool = False) -> None:
        setattr(self, name, 0)

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """PML's BaseMiner.forward: no gradient, the batch as its own reference."""
        with torch.no_grad():
            labels = labels.to(embeddings.device)
            if ref_emb is None:
                ref_emb, ref_labels = embeddings, labels
            assert ref_labels is not None
            return self.mine(embeddings, labels, ref_emb, ref_labels.to(ref_emb.device))
