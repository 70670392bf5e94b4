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


# Devices whose fused Adam, AdamW and SGD kernels this torch has (CPU's since torch 2.4).
FUSED_DEVICES = frozenset({"cpu", "cuda"})


def make_optimizer(
    name: str, params: list[dict[str, Any]], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The recipe's optimiser over `params`, with the fused kernel where there is one.

    torch's default on the CPU is the per-tensor loop: for all-MiniLM-L6-v2's 22.7 M parameters
    an AdamW step took 0.116 s there against 0.016 s fused (2 threads; bench/optimizer_step.py),
    a fifth of a text trial's epoch. The fused kernel computes the same update (within 2.4e-7 after
    20 steps, tests/train/test_optimizer.py)."""
    fused = fused_kernel(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


def fused_kernel(params: list[dict[str, Any]]) -> bool | None:
    """True when every parameter is a floating tensor on one device type with a fused kernel;
    else None (torch's default): the fused step refuses mixed devices."""
    tensors = [p for group in params for p in group["params"]]
    devices = {p.device.type for p in tensors}
    floating = all(p.is_floating_point() for p in tensors)
    if len(devices) == 1 and devices <= FUSED_DEVICES and floating:
        return True
    return None
