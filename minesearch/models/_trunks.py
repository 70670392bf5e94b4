"""minesearch's own small trunks, trained from scratch: an MLP for vectors, a convnet for images.

No BatchNorm on purpose: per-worker batch statistics would make a data-parallel step differ from the
same global batch on one worker, and the class-balanced per-worker shards are small.
"""

from __future__ import annotations

from torch import nn


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
