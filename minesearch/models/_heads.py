"""The embedding network: a trunk, then a head, then L2 normalisation; and the heads.

Fine-tuning improves a pretrained model, so a head on a pretrained trunk starts where the trunk
is: `none` is the trunk's own embedding (as sentence-transformers fine-tunes an encoder), `linear`
is identity-initialised when the widths match, `residual` is x + MLP(x) with the MLP's last layer
zero. With those, epoch 0 *is* the pretrained model (tests/models/test_heads.py checks it to
1e-6), and no trial can start below it. `mlp` is a fresh two-layer network, for fresh trunks.

Outputs are L2-normalised so that Euclidean distances live in [0, 2] and margins mean the same
across trials.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minesearch.config.vocab import HeadName
from minesearch.data import ModelInput


class EmbeddingNet(nn.Module):
    """A trunk (a backbone: `_backbones`) followed by a head; forward returns unit-length
    embeddings. The trunk takes whatever its preprocess makes (a tensor, or a dict for text)."""

    def __init__(self, trunk: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head

    def forward(self, x: ModelInput) -> torch.Tensor:
        return F.normalize(self.head(self.trunk(x)), dim=-1)  # [B, E], ||row|| = 1


class Residual(nn.Module):
    """x + MLP(x); the MLP's last layer starts at zero, so the head starts as the identity and
    learns a correction of the pretrained embedding rather than a new one."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))
        last = self.mlp[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(x)


def make_head(kind: HeadName, in_dim: int, out_dim: int, hidden: int) -> nn.Module:
    """The head `kind` from the trunk's width `in_dim` to `out_dim` (`auto` resolved before)."""
    if kind in ("none", "residual") and out_dim != in_dim:
        raise ValueError(f"head {kind!r} keeps the backbone's width {in_dim}, not {out_dim}")
    if kind == "none":
        return nn.Identity()
    if kind == "residual":
        return Residual(in_dim, hidden)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
    if kind == "linear":
        return start_near_identity(nn.Linear(in_dim, out_dim))
    raise ValueError(f"unknown head {kind!r}; 'auto' is resolved by build_network")


def start_near_identity(linear: nn.Linear) -> nn.Linear:
    """The identity when the widths match; otherwise a semi-orthogonal projection (rows or
    columns orthonormal), which keeps the pretrained geometry as well as a fixed map of that
    width can without data: distances shrink evenly instead of at random. Zero bias."""
    with torch.no_grad():
        out_dim, in_dim = linear.weight.shape
        if out_dim == in_dim:
            linear.weight.copy_(torch.eye(in_dim))
        else:
            nn.init.orthogonal_(linear.weight)
        linear.bias.zero_()
    return linear
