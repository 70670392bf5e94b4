"""A backbone and what goes with it: the contract between the registry and its families."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from torch import nn

from minesearch.data import Preprocess


class BackboneError(ValueError):
    """A backbone that cannot be built as asked; `field` names the config entry to fix."""

    def __init__(self, message: str, field: str = "model.backbone") -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Backbone:
    """A trunk and what goes with it.

    The backbone's parameters are exactly ``trunk.parameters()``: give those the backbone learning
    rate (lr x factor) and everything else (the embedding head, a loss's proxies) the base rate.
    `blocks` are the trunk's stages from input to output; together they hold every trunk parameter,
    so `freeze` can train "the last N" of them. A block may be a ``ParameterList`` that only
    *refers* to parameters owned elsewhere in the trunk (a ViT's class token): use blocks for
    freezing, never to build an optimiser or a state dict.
    """

    trunk: nn.Module  # forward(ModelInput) -> float [B, out_dim]
    out_dim: int
    preprocess: Preprocess | None  # None: the source's raw tensors go straight in (mlp/convnet)
    blocks: list[nn.Module]
    pretrained: bool


def require(module: str, name: str, install: str) -> ModuleType:
    """Import an optional package, or say which backbone needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise BackboneError(
            f"model.backbone {name!r} needs the {module} package, which is not installed: {install}"
        ) from err


def stage_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's children that own parameters, with Sequential/ModuleList children split once.

    One level of splitting turns ResNet's layer1..4 into residual blocks, a ViT's ``blocks`` into
    transformer blocks and torchvision's ``features`` into stages, so "the last N blocks" means
    late layers rather than "almost everything". Parameters owned by the model itself (a ViT's
    class token and position embedding) come first, as a ParameterList.
    """
    blocks: list[nn.Module] = []
    own = list(model.parameters(recurse=False))
    if own:
        blocks.append(nn.ParameterList(own))
    for child in model.children():
        split = isinstance(child, nn.Sequential | nn.ModuleList)
        parts = list(child.children()) if split else [child]
        blocks.extend(part for part in parts if next(part.parameters(), None) is not None)
    return blocks
