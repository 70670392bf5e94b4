"""The optimiser of a trial: which parameters learn at which rate, with which algorithm."""

from __future__ import annotations

from typing import Any

import torch

from minesearch.models import Network
from minesearch.recipe import Recipe

BACKBONE = "backbone"  # the param group whose lr warms up


def param_groups(network: Network, recipe: Recipe) -> list[dict[str, Any]]:
    """The backbone at lr x backbone_lr_factor (a pretrained trunk usually wants a smaller step
    than its fresh head), the head at lr; frozen parameters are left out, and so are empty
    groups (a `none` head has no parameters, an identity backbone neither)."""
    trunk = {id(p) for p in network.backbone.trunk.parameters()}
    params = [p for p in network.model.parameters() if p.requires_grad]
    backbone = [p for p in params if id(p) in trunk]
    head = [p for p in params if id(p) not in trunk]
    factor = recipe.backbone_lr_factor if recipe.backbone_lr_factor is not None else 1.0
    groups = [
        {"params": head, "lr": recipe.lr, "name": "head"},
        {"params": backbone, "lr": recipe.lr * factor, "name": BACKBONE},
    ]
    return [g for g in groups if g["params"]]


def warm_up(optimizer: torch.optim.Optimizer, step: int, warmup_steps: int, base_lr: float) -> None:
    """The backbone's lr at global step `step` (0-based): a linear ramp from base/warmup_steps to
    base over `warmup_steps` steps, then base. Computed from the step alone (no scheduler state),
    so a restarted trial resumes on the same ramp."""
    factor = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    for group in optimizer.param_groups:
        if group.get("name") == BACKBONE:
            group["lr"] = base_lr * factor


def make_optimizer(
    name: str, params: list[dict[str, Any]], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
