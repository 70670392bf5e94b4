"""Embedding networks: input -> L2-normalised embedding.

No BatchNorm on purpose: per-worker batch statistics would make a data-parallel step differ from the
same global batch on one worker, and the class-balanced per-worker shards are small. Outputs are
L2-normalised so that Euclidean distances live in [0, 2] and margins mean the same across trials.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minesearch.inputs import ModelInput


class EmbeddingNet(nn.Module):
    """A trunk (a backbone: backbones.py) followed by a linear head; forward returns unit-length
    embeddings. The trunk takes whatever its preprocess makes (a tensor, or a dict for text)."""

    def __init__(self, trunk: nn.Module, trunk_dim: int, embedding_dim: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(trunk_dim, embedding_dim)

    def forward(self, x: ModelInput) -> torch.Tensor:
        return F.normalize(self.head(self.trunk(x)), dim=-1)  # [B, E], ||row|| = 1


def mlp_trunk(in_dim: int, hidden_dim: int) -> nn.Module:
    """For feature vectors [B, D]."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_dim, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, hidden_dim),
        nn.ReLU(),
    )


def conv_trunk(channels: int, hidden_dim: int) -> nn.Module:
    """For small images [B, C, H, W] (8x8 digits): two conv stages, then global average pooling."""
    half = max(hidden_dim // 2, 8)
    return nn.Sequential(
        nn.Conv2d(channels, half, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(half, hidden_dim, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),  # [B, hidden_dim]
    )
