"""The embedding network: a trunk, then a head, then L2 normalisation.

Outputs are L2-normalised so that Euclidean distances live in [0, 2] and margins mean the same
across trials.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minesearch.data import ModelInput


class EmbeddingNet(nn.Module):
    """A trunk (a backbone: `_backbones`) followed by a linear head; forward returns unit-length
    embeddings. The trunk takes whatever its preprocess makes (a tensor, or a dict for text)."""

    def __init__(self, trunk: nn.Module, trunk_dim: int, embedding_dim: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(trunk_dim, embedding_dim)

    def forward(self, x: ModelInput) -> torch.Tensor:
        return F.normalize(self.head(self.trunk(x)), dim=-1)  # [B, E], ||row|| = 1
