"""`locate`: the Optuna params under which a space proposes a given recipe, or None."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from minesearch.config import parse_spec
from minesearch.recipe import Recipe, control_recipe
from minesearch.results import recipe_key
from minesearch.space import build_space, locate


def spec(params: dict[str, Any], **train: Any) -> Any:
    return parse_spec({"name": "t", "train": {"epochs": 3, **train}, "search": {"params": params}})


TEXT = {
    "loss": ["NTXentLoss", "TripletMarginLoss", "MultiSimilarityLoss"],
    "miner": ["none", "TripletMarginMiner"],
    "margin": {"low": 0.05, "high": 0.4},
    "temperature": {"low": 0.03, "high": 0.2, "log": True},
    "lr": {"low": 1.0e-5, "high": 1.0e-4, "log": True},
    "backbone_lr_factor": 1.0,
    "weight_decay": 0.01,
    "warmup_epochs": 0.3,
    "head": ["none", "linear"],
    "optimizer": "adamw",
}


def proposed(space_spec: Any, params: dict[str, Any]) -> Recipe:
    return build_space(space_spec.search.params).recipe(optuna.trial.FixedTrial(params))


def test_the_text_control_is_found_and_proposed_back() -> None:
    s = spec(TEXT)
    control = control_recipe(s, "text")
    params = locate(build_space(s.search.params), control, s)
    assert params is not None
    assert params["loss"] == "NTXentLoss" and params["head"] == "none"
    assert params["lr"] == pytest.approx(2.0e-5) and params["temperature"] == pytest.approx(0.07)
    back = proposed(s, params)
    assert back.resolved(s).lr == control.lr and back.loss_params == control.loss_params


def test_outside_a_range_or_a_choice_it_is_not_in_the_space() -> None:
    s = spec({**TEXT, "lr": {"low": 3.0e-4, "high": 3.0e-3, "log": True}})
    assert locate(build_space(s.search.params), control_recipe(s, "text"), s) is None
    s = spec({**TEXT, "head": ["linear", "residual"]})
    assert locate(build_space(s.search.params), control_recipe(s, "text"), s) is None
    s = spec({**{k: v for k, v in TEXT.items() if k != "temperature"}, "loss": "ContrastiveLoss"})
    assert locate(build_space(s.search.params), control_recipe(s, "text"), s) is None


def test_a_constant_of_the_space_that_differs_means_not_in_it() -> None:
    s = spec({**TEXT, "weight_decay": 0.1})  # a constant: never asked, but the trial trains it
    assert locate(build_space(s.search.params), control_recipe(s, "text"), s) is None


def test_a_setting_the_space_leaves_to_train_counts_as_the_spaces_value() -> None:
    """The space does not search weight_decay, optimizer or warm-up: the trial trains with the
    space's train.* values, which must equal the control's for it to be in the space."""
    params = {k: v for k, v in TEXT.items() if k not in ("weight_decay", "optimizer")}
    params.pop("warmup_epochs")
    matching = spec(params, weight_decay=0.01, optimizer="adamw", warmup_epochs=0.3)
    assert locate(build_space(matching.search.params), control_recipe(matching, "text"), matching)
    other = spec(params, weight_decay=0.0, optimizer="adamw", warmup_epochs=0.3)
    assert not locate(build_space(other.search.params), control_recipe(other, "text"), other)


def test_the_scratch_control_in_the_quickstart_space() -> None:
    s = spec(
        {
            "loss": ["TripletMarginLoss", "ContrastiveLoss"],
            "miner": ["none", "TripletMarginMiner"],
            "margin": {"low": 0.01, "high": 0.5},
            "type_of_triplets": ["all", "hard", "semihard"],
            "lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
        }
    )
    control = control_recipe(s)
    params = locate(build_space(s.search.params), control, s)
    assert params == {"loss": "TripletMarginLoss", "miner": "none", "margin": 0.05, "lr": 1e-3}
    assert recipe_key(proposed(s, params)) == recipe_key(
        build_space(s.search.params).recipe(optuna.trial.FixedTrial(params))
    )


def test_a_tied_margin_the_recipe_does_not_tie_is_not_in_the_space() -> None:
    s = spec({"loss": ["TripletMarginLoss"], "miner": ["TripletMarginMiner"], "margin": 0.1})
    recipe = Recipe(
        loss="TripletMarginLoss",
        miner="TripletMarginMiner",
        loss_params={
            "margin": 0.1,
            "swap": False,
            "smooth_loss": False,
            "triplets_per_anchor": "all",
        },
        miner_params={"margin": 0.2, "type_of_triplets": "all"},
    )
    assert locate(build_space(s.search.params), recipe, s) is None
