"""The control recipe: PML's TripletMarginLoss defaults, the space's constant lr, and a pretrained
backbone's step smaller than the head's unless the space fixes it."""

from __future__ import annotations

from typing import Any

import pytest

from minesearch.config import DEFAULT_LR, parse_spec
from minesearch.recipe import PRETRAINED_BACKBONE_LR_FACTOR, control_recipe


def spec(params: dict[str, Any]) -> Any:
    return parse_spec({"name": "t", "search": {"params": {"loss": "ContrastiveLoss", **params}}})


def test_defaults() -> None:
    recipe = control_recipe(spec({"lr": {"low": 1.0e-4, "high": 1.0e-2}}))
    assert recipe.loss == "TripletMarginLoss" and recipe.miner == "none"
    assert recipe.loss_params["margin"] == 0.05 and recipe.lr == DEFAULT_LR
    assert recipe.backbone_lr_factor is None


@pytest.mark.parametrize(
    ("factor", "expected"),
    [({"low": 0.01, "high": 0.2, "log": True}, PRETRAINED_BACKBONE_LR_FACTOR), (0.05, 0.05)],
)
def test_backbone_lr_factor(factor: Any, expected: float) -> None:
    recipe = control_recipe(spec({"lr": 3.0e-4, "backbone_lr_factor": factor}))
    assert recipe.lr == 3.0e-4 and recipe.backbone_lr_factor == expected
