"""What a child run records as params: the recipe, flat, with which margin was used in the name."""

from __future__ import annotations

from sample_recipes import CONTRASTIVE, SEPARATE, TRIPLET

from minesearch.recipe import Recipe
from minesearch.tracking import recipe_params
from minesearch.tracking._params import margin_of


def test_recipe_params() -> None:
    assert recipe_params(TRIPLET) == {
        "loss": "TripletMarginLoss",
        "miner": "TripletMarginMiner",
        "lr": "0.00123457",
        "loss.margin": "0.2",
        "miner.margin": "0.2",
        "miner.type_of_triplets": "semihard",
        "margin_mode": "tied",
        "tuples": "native",
    }


def test_mlflow_params_say_which_margin_and_conversion() -> None:
    params = recipe_params(SEPARATE)
    assert params["margin_mode"] == "separate"
    assert params["loss.margin"] == "0.05" and params["miner.margin"] == "0.3"
    converted = Recipe("TripletMarginLoss", "MultiSimilarityMiner", miner_params={"epsilon": 0.1})
    assert recipe_params(converted)["tuples"] == "converted"
    assert recipe_params(converted)["miner.epsilon"] == "0.1"
    assert recipe_params(CONTRASTIVE)["loss.neg_margin"] == "1"
    assert all(isinstance(v, str) for v in recipe_params(CONTRASTIVE).values())


def test_the_margin_read_back_is_the_miners_else_the_losss() -> None:
    assert margin_of(recipe_params(SEPARATE)) == 0.3
    assert margin_of(recipe_params(Recipe("TripletMarginLoss", loss_params={"margin": 0.1}))) == 0.1
    assert margin_of(recipe_params(CONTRASTIVE)) is None
    assert margin_of({"miner.margin": "nan"}) is None
