"""Your own network as minesearch's backbone: the factory `build` that custom_model.yaml names.

`model.backbone: python:custom_model.py:build` loads this file (relative to the space file) in
every process that builds the network, and calls `build` with what the data gives. It returns the
module and the width of its output; minesearch puts the embedding head (`model.embedding_dim`) and
the L2 normalisation on top. `model.train_last_blocks` counts the module's children that hold
parameters: here stem, block1, block2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minesearch.models import BackboneInputs, PythonBackbone


class ResidualBlock(nn.Module):
    """conv-norm-relu-conv-norm plus the input. GroupNorm, not BatchNorm: with data-parallel
    workers, per-worker batch statistics would make a step differ from one worker's."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.norm1 = nn.GroupNorm(4, width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.norm2 = nn.GroupNorm(4, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(x + self.norm2(self.conv2(y)))


class ResidualConvNet(nn.Module):
    """Images [B, C, H, W] -> [B, 2 * width]: average and max pooling side by side."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.block1 = ResidualBlock(width)
        self.block2 = ResidualBlock(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.block1(F.relu(self.stem(x))))  # [B, width, H, W]
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)  # [B, 2 * width]


def build(inputs: BackboneInputs) -> PythonBackbone:
    """Digits give float arrays [1, 8, 8] (kind "tensor"); an image folder [3, S, S] ("image")."""
    if len(inputs.shape) != 3:
        raise ValueError(f"ResidualConvNet takes images [C, H, W], got samples of {inputs.shape}")
    width = inputs.hidden_dim
    return PythonBackbone(ResidualConvNet(inputs.shape[0], width), out_dim=2 * width)
