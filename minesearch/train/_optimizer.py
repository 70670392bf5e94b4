"""The optimiser of a trial: which parameters learn at which rate, with which algorithm."""

from __future__ import annotations

from typing import Any

import torch

from minesearch.models import Network
from minesearch.recipe import Recipe


def param_groups(network: Network, recipe: Recipe) -> list[dict[str, Any]]:
    """The backbone at lr x backbone_lr_factor (a pretrained trunk usually wants a smaller step
    than its fresh head), the head at lr; frozen parameters are left out."""
    trunk = {id(p) for p in network.backbone.trunk.parameters()}
    params = [p for p in network.model.parameters() if p.requires_grad]
    backbone = [p for p in params if id(p) in trunk]
    head = [p for p in params if id(p) not in trunk]
    groups = [{"params": head, "lr": recipe.lr}]
    if backbone:
        factor = recipe.backbone_lr_factor if recipe.backbone_lr_factor is not None else 1.0
        groups.append({"params": backbone, "lr": recipe.lr * factor})
    return groups


def make_optimizer(
    name: str, params: list[dict[str, Any]], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
