"""The control: a practitioner's recipe per kind of model, and PML's TripletMarginLoss defaults
(with the space's constant lr) for a network trained from scratch."""

from __future__ import annotations

from typing import Any

import pytest

from minesearch.config import DEFAULT_LR, parse_spec
from minesearch.config.vocab import BACKBONE_FAMILIES
from minesearch.recipe import SETTING_OF_FAMILY, control_recipe, setting_of


def spec(params: dict[str, Any], epochs: int = 3) -> Any:
    return parse_spec(
        {
            "name": "t",
            "train": {"epochs": epochs},
            "search": {"params": {"loss": "ContrastiveLoss", **params}},
        }
    )


def test_from_scratch_is_pmls_default_metric_loss() -> None:
    recipe = control_recipe(spec({"lr": {"low": 1.0e-4, "high": 1.0e-2}}))
    assert recipe.loss == "TripletMarginLoss" and recipe.miner == "none"
    assert recipe.loss_params["margin"] == 0.05 and recipe.lr == DEFAULT_LR
    assert recipe.backbone_lr_factor is None and recipe.margin_mode == "default"
    assert control_recipe(spec({"lr": 3.0e-4})).lr == 3.0e-4  # the space's constant


def test_a_sentence_encoder_gets_the_hand_written_fine_tune() -> None:
    recipe = control_recipe(spec({}, epochs=5), "text")
    assert (recipe.loss, recipe.miner, recipe.head) == ("NTXentLoss", "none", "none")
    assert recipe.loss_params["temperature"] == 0.07  # PML's, as bench/practitioner.py's
    assert recipe.lr == 2.0e-5 and recipe.backbone_lr_factor == 1.0  # every weight at 2e-5
    assert recipe.optimizer == "adamw" and recipe.weight_decay == 0.01
    assert recipe.warmup_epochs == pytest.approx(0.5)  # 10% of the steps
    assert recipe.margin_mode == "none"


def test_vectors_and_images() -> None:
    vectors = control_recipe(spec({}), "vectors")
    assert vectors.head == "linear" and vectors.loss == "NTXentLoss"
    assert vectors.optimizer == "adamw"
    image = control_recipe(spec({}), "image")
    assert (image.loss, image.miner) == ("MultiSimilarityLoss", "MultiSimilarityMiner")
    assert image.backbone_lr_factor == 0.1 and image.lr == 1.0e-3


def test_every_backbone_family_has_a_setting() -> None:
    assert set(SETTING_OF_FAMILY) >= set(BACKBONE_FAMILIES) - {"python"}
    assert setting_of("minilm") == "text" and setting_of("convnet") == "scratch"
    assert setting_of("identity") == "vectors" and setting_of("timm") == "image"
