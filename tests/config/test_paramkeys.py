"""The three spellings of a constructor argument: Class.param, loss_/miner_param, param (tied)."""

from __future__ import annotations

import pytest
from optuna.trial import FixedTrial

from minesearch.config import ParamValue, Range, SpecError, key_error, key_for, parse_spec, targets
from minesearch.space import build_space


def test_most_specific_spelling_wins() -> None:
    params = {"margin": 0.1, "loss_margin": 0.2, "ArcFaceLoss.margin": 30.0}
    assert key_for(params, "loss", "ArcFaceLoss", "margin") == "ArcFaceLoss.margin"
    assert key_for(params, "loss", "TripletMarginLoss", "margin") == "loss_margin"
    assert key_for(params, "miner", "TripletMarginMiner", "margin") == "margin"
    assert key_for({}, "miner", "TripletMarginMiner", "margin") is None


def test_targets_follow_the_chosen_losses_and_miners() -> None:
    params = {"margin": 0.1, "ArcFaceLoss.margin": 30.0}
    found = targets(params, ["TripletMarginLoss", "ArcFaceLoss"], ["TripletMarginMiner"])
    assert [(t.owner, t.cls_name) for t in found["margin"]] == [
        ("loss", "TripletMarginLoss"),
        ("miner", "TripletMarginMiner"),
    ]
    assert [t.cls_name for t in found["ArcFaceLoss.margin"]] == ["ArcFaceLoss"]


def test_class_scoped_range_is_its_own_dimension() -> None:
    """ArcFace's margin (degrees) and TripletMargin's (a distance) must not share a range."""
    params: dict[str, ParamValue] = {
        "loss": ["TripletMarginLoss", "ArcFaceLoss"],
        "margin": Range(low=0.05, high=0.5),
        "ArcFaceLoss.margin": Range(low=20.0, high=40.0),
    }
    space = build_space(params)
    arc = space.recipe(FixedTrial({"loss": "ArcFaceLoss", "ArcFaceLoss.margin": 30.0}))  # type: ignore[arg-type]
    assert arc.loss_params["margin"] == 30.0
    tml = space.recipe(FixedTrial({"loss": "TripletMarginLoss", "margin": 0.2}))  # type: ignore[arg-type]
    assert tml.loss_params["margin"] == 0.2


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("ArcFaceLos.margin", "did you mean 'ArcFaceLoss'"),
        ("ArcFaceLoss.margn", "did you mean 'margin'"),
        ("loss_marginn", "did you mean 'loss_margin'"),
        ("tempreature", "did you mean 'temperature'"),
    ],
)
def test_misspelled_keys_get_suggestions(key: str, expected: str) -> None:
    why = key_error(key)
    assert why is not None and expected in why


def test_class_scoped_key_for_an_unchosen_class_is_an_error() -> None:
    raw = {
        "name": "x",
        "search": {"params": {"loss": "TripletMarginLoss", "ArcFaceLoss.margin": 30}},
    }
    with pytest.raises(SpecError, match=r"search.params.ArcFaceLoss.margin: applies to none"):
        parse_spec(raw)


def test_bounds_are_checked_per_class() -> None:
    raw = {"name": "x", "search": {"params": {"loss": "ArcFaceLoss", "ArcFaceLoss.margin": 120}}}
    with pytest.raises(SpecError, match=r"120 must be <= 90.0 \(for ArcFaceLoss\)"):
        parse_spec(raw)


def test_proxy_lr_factor_needs_a_trainable_loss() -> None:
    raw = {"name": "x", "search": {"params": {"loss": "TripletMarginLoss", "proxy_lr_factor": 10}}}
    with pytest.raises(SpecError, match="proxy_lr_factor: applies only to losses with trainable"):
        parse_spec(raw)


def test_a_loss_with_no_usable_miner_is_an_error() -> None:
    raw = {"name": "x", "search": {"params": {"loss": "ArcFaceLoss", "miner": "BatchHardMiner"}}}
    with pytest.raises(SpecError, match="ArcFaceLoss works with none of the miners") as info:
        parse_spec(raw)
    assert "search.weight_miners: true" in str(info.value)
    raw["search"]["weight_miners"] = True  # type: ignore[index]
    assert parse_spec(raw).search.weight_miners


def test_square_batch_rule_for_smooth_ap() -> None:
    raw = {
        "name": "x",
        "train": {"batch": {"classes": 4, "per_class": 8}},
        "search": {"params": {"loss": ["TripletMarginLoss", "SmoothAPLoss"]}},
    }
    with pytest.raises(SpecError, match=r"train.batch: SmoothAPLoss needs classes == per_class"):
        parse_spec(raw)


def test_one_key_cannot_be_integer_for_one_class_and_real_for_another() -> None:
    raw = {
        "name": "x",
        "search": {"params": {"loss": ["TripletMarginLoss", "SphereFaceLoss"], "margin": [1, 2]}},
    }
    with pytest.raises(SpecError, match="sets parameters of different kinds") as info:
        parse_spec(raw)
    assert "SphereFaceLoss.margin (integer)" in str(info.value)
    raw["search"]["params"] = {  # type: ignore[index]
        "loss": ["TripletMarginLoss", "SphereFaceLoss"],
        "TripletMarginLoss.margin": [0.1, 0.2],
        "SphereFaceLoss.margin": [1, 2],
    }
    assert parse_spec(raw).search.params["SphereFaceLoss.margin"] == [1, 2]
