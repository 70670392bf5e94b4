"""A recipe: dict round trip (driver -> workers), run label, building (its MLflow params:
tests/tracking/test_params.py)."""

from __future__ import annotations

import json
import pickle

import pytest
from pytorch_metric_learning import losses, miners
from sample_recipes import CONTRASTIVE, SEPARATE, TRIPLET

from minesearch.catalog import UnknownNameError
from minesearch.recipe import Recipe


@pytest.mark.parametrize("recipe", [TRIPLET, SEPARATE, CONTRASTIVE, Recipe("TripletMarginLoss")])
def test_dict_round_trip(recipe: Recipe) -> None:
    data = recipe.to_dict()
    assert Recipe.from_dict(data) == recipe
    # Plain data: survives JSON (Ray configs, MLflow artifacts) and pickle (Ray transport).
    assert Recipe.from_dict(json.loads(json.dumps(data))) == recipe
    assert pickle.loads(pickle.dumps(recipe)) == recipe


def test_to_dict_shape() -> None:
    assert TRIPLET.to_dict() == {
        "loss": "TripletMarginLoss",
        "miner": "TripletMarginMiner",
        "loss_params": {"margin": 0.2},
        "miner_params": {"margin": 0.2, "type_of_triplets": "semihard"},
        "lr": 0.00123456789,
        "margin_mode": "tied",
        "proxy_lr_factor": None,
        "backbone_lr_factor": None,
        "weight_miners": False,
        "weight_decay": None,
        "warmup_epochs": None,
        "head": None,
        "optimizer": None,
    }


def test_defaults() -> None:
    recipe = Recipe("TripletMarginLoss")
    assert recipe.miner == "none" and recipe.lr == 1e-3 and recipe.margin_mode == "default"
    assert recipe.loss_params == {} and recipe.miner_params == {}


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(TypeError):
        Recipe.from_dict({"loss": "TripletMarginLoss", "schedule": "cosine"})


def test_tuples_property() -> None:
    assert TRIPLET.tuples == "native"
    assert Recipe("ContrastiveLoss", "TripletMarginMiner").tuples == "converted"
    assert CONTRASTIVE.tuples == "native"


def test_label() -> None:
    assert TRIPLET.label() == "TripletMargin+TripletMarginMiner[semihard] m=0.2"
    assert SEPARATE.label() == "TripletMargin+TripletMarginMiner[hard] m=0.05 m=0.3"
    assert CONTRASTIVE.label() == "Contrastive"
    assert Recipe("MultiSimilarityLoss", "BatchHardMiner").label() == (
        "MultiSimilarity+BatchHardMiner"
    )
    assert Recipe("TripletMarginLoss", loss_params={"margin": 0.123456}).label() == (
        "TripletMargin m=0.1235"
    )


def test_build() -> None:
    loss, miner = TRIPLET.build()
    assert isinstance(loss, losses.TripletMarginLoss) and loss.margin == 0.2
    assert isinstance(miner, miners.TripletMarginMiner)
    assert miner.margin == 0.2 and miner.type_of_triplets == "semihard"
    loss, miner = CONTRASTIVE.build()
    assert isinstance(loss, losses.ContrastiveLoss) and miner is None


def test_build_unknown_name() -> None:
    with pytest.raises(UnknownNameError, match="valid"):
        Recipe("ArcFace").build()
    with pytest.raises(UnknownNameError, match="did you mean 'BatchHardMiner'"):
        Recipe("TripletMarginLoss", "BatchHardMinr").build()


def test_recipe_is_frozen() -> None:
    with pytest.raises(AttributeError):
        TRIPLET.lr = 1.0  # type: ignore[misc]


def test_resolved_fills_what_the_recipe_leaves_to_the_space() -> None:
    from minesearch.config import parse_spec

    spec = parse_spec(
        {
            "name": "t",
            "model": {"head": "auto"},
            "train": {"optimizer": "sgd", "weight_decay": 0.05, "warmup_epochs": 0.5},
        }
    )
    plain = Recipe("TripletMarginLoss").resolved(spec)
    assert (plain.optimizer, plain.weight_decay, plain.warmup_epochs) == ("sgd", 0.05, 0.5)
    assert plain.head == "linear" and plain.backbone_lr_factor == 1.0  # auto: the identity head
    own = Recipe("TripletMarginLoss", weight_decay=0.0, head="none", optimizer="adamw")
    assert own.resolved(spec).weight_decay == 0.0 and own.resolved(spec).head == "none"
    assert own.resolved(spec).optimizer == "adamw"
