"""The define-by-run space: what it asks, what it returns, and that the sampler can drive it."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import BaseDistribution
from optuna.samplers import TPESampler
from optuna.trial import FixedTrial

from minesearch import catalog
from minesearch.config import ParamValue, Range, load_spec
from minesearch.recipe import Recipe, TrialConfig
from minesearch.space import SearchSpace, build_space

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART_PARAMS = load_spec(ROOT / "search_spaces" / "quickstart.yaml").search.params

optuna.logging.set_verbosity(optuna.logging.WARNING)


def recipe_for(params: Mapping[str, ParamValue], fixed: dict[str, Any]) -> Recipe:
    out = build_space(params)(FixedTrial(fixed))  # type: ignore[arg-type]
    trial = TrialConfig.from_config(out)
    assert trial == TrialConfig(trial.recipe)  # the search sets only the recipe
    return trial.recipe


# --- what is asked, and only where it means something ------------------------------------------


def test_type_of_triplets_asked_with_triplet_margin_miner() -> None:
    recipe = recipe_for(
        QUICKSTART_PARAMS,
        {
            "loss": "TripletMarginLoss",
            "miner": "TripletMarginMiner",
            "margin": 0.3,
            "type_of_triplets": "semihard",
            "lr": 1e-3,
        },
    )
    assert recipe.miner_params == {"margin": 0.3, "type_of_triplets": "semihard"}
    assert recipe.loss_params == {"margin": 0.3}
    assert recipe.lr == 1e-3


@pytest.mark.parametrize("miner", ["none", "BatchHardMiner", "MultiSimilarityMiner"])
def test_type_of_triplets_not_asked_with_other_miners(miner: str) -> None:
    # FixedTrial raises if the space asks for a parameter it was not given.
    recipe = recipe_for(
        QUICKSTART_PARAMS, {"loss": "TripletMarginLoss", "miner": miner, "margin": 0.1, "lr": 1e-3}
    )
    assert "type_of_triplets" not in recipe.miner_params
    assert recipe.miner == miner


def test_missing_asked_parameter_fails_fixed_trial() -> None:
    with pytest.raises(ValueError, match="type_of_triplets"):
        recipe_for(
            QUICKSTART_PARAMS,
            {"loss": "TripletMarginLoss", "miner": "TripletMarginMiner", "margin": 0.1, "lr": 1e-3},
        )


def test_margin_not_asked_where_nothing_has_one() -> None:
    recipe = recipe_for(
        QUICKSTART_PARAMS, {"loss": "MultiSimilarityLoss", "miner": "BatchHardMiner", "lr": 1e-2}
    )
    assert recipe.loss_params == {"alpha": 2.0, "beta": 50.0, "base": 0.5}
    assert recipe.miner_params == {}


def test_tied_margin_same_value_in_loss_and_miner() -> None:
    params: dict[str, ParamValue] = {
        "loss": ["TripletMarginLoss", "ContrastiveLoss"],
        "miner": ["TripletMarginMiner"],
        "margin": Range(low=0.01, high=0.5),
    }
    recipe = recipe_for(
        params, {"loss": "TripletMarginLoss", "margin": 0.42, "type_of_triplets": "all"}
    )
    assert recipe.loss_params["margin"] == recipe.miner_params["margin"] == 0.42
    assert recipe.margin_mode == "tied"
    assert recipe.miner == "TripletMarginMiner"  # one-element list: a constant


def test_separate_margins() -> None:
    params: dict[str, ParamValue] = {
        "miner": "TripletMarginMiner",
        "loss_margin": Range(low=0.01, high=0.5),
        "miner_margin": [0.1, 0.2, 0.4],
        "type_of_triplets": ["hard", "semihard"],
    }
    recipe = recipe_for(
        params, {"loss_margin": 0.05, "miner_margin": 0.4, "type_of_triplets": "hard"}
    )
    assert recipe.loss_params == {"margin": 0.05}
    assert recipe.miner_params == {"margin": 0.4, "type_of_triplets": "hard"}
    assert recipe.margin_mode == "separate"


def test_only_loss_margin_searched_keeps_miner_default() -> None:
    params: dict[str, ParamValue] = {"miner": "TripletMarginMiner", "loss_margin": [0.1, 0.3]}
    recipe = recipe_for(params, {"loss_margin": 0.3})
    assert recipe.loss_params == {"margin": 0.3}
    assert recipe.miner_params == {"margin": 0.2, "type_of_triplets": "all"}  # PML defaults
    assert recipe.margin_mode == "separate"


def test_pml_defaults_filled_when_not_searched() -> None:
    params: dict[str, ParamValue] = {
        "loss": ["ContrastiveLoss", "TripletMarginLoss"],
        "miner": ["MultiSimilarityMiner", "TripletMarginMiner"],
    }
    recipe = recipe_for(params, {"loss": "ContrastiveLoss", "miner": "MultiSimilarityMiner"})
    assert recipe.loss_params == {"pos_margin": 0.0, "neg_margin": 1.0}
    assert recipe.miner_params == {"epsilon": 0.1}
    assert recipe.lr == 1e-3
    assert recipe.margin_mode == "none"  # neither ContrastiveLoss nor MultiSimilarityMiner has one
    recipe = recipe_for(params, {"loss": "TripletMarginLoss", "miner": "TripletMarginMiner"})
    assert recipe.loss_params == {"margin": 0.05}
    assert recipe.miner_params == {"margin": 0.2, "type_of_triplets": "all"}


def test_empty_params_give_the_default_recipe() -> None:
    recipe = recipe_for({}, {})
    assert recipe == Recipe(
        loss="TripletMarginLoss", miner="none", loss_params={"margin": 0.05}, lr=1e-3
    )


def test_constants_and_single_choices_are_not_suggested() -> None:
    params: dict[str, ParamValue] = {
        "loss": ["ContrastiveLoss"],
        "miner": "MultiSimilarityMiner",
        "pos_margin": 0.1,
        "neg_margin": [0.8],
        "epsilon": [0.3],
        "lr": 0.01,
    }
    recipe = recipe_for(params, {})  # nothing given, nothing asked
    assert recipe.loss == "ContrastiveLoss" and recipe.miner == "MultiSimilarityMiner"
    assert recipe.loss_params == {"pos_margin": 0.1, "neg_margin": 0.8}
    assert recipe.miner_params == {"epsilon": 0.3}
    assert recipe.lr == 0.01
    study = optuna.create_study()
    trial = study.ask()
    build_space(params)(trial)
    assert trial.params == {}


def test_weight_losses_take_a_miner_only_when_asked() -> None:
    """CosFaceLoss only weights samples by a miner's output: no miner unless weight_miners."""
    params: dict[str, ParamValue] = {
        "loss": ["TripletMarginLoss", "CosFaceLoss"],
        "miner": ["none", "BatchHardMiner", "TripletMarginMiner"],
    }
    recipe = recipe_for(params, {"loss": "CosFaceLoss"})
    assert recipe.miner == "none"  # the only usable miner: a constant, not asked
    assert recipe.proxy_lr_factor == 10.0  # a trainable loss gets its own lr factor
    assert (
        recipe_for(params, {"loss": "TripletMarginLoss", "miner": "none"}).proxy_lr_factor is None
    )
    space = build_space(params, weight_miners=True)
    fixed = {"loss": "CosFaceLoss", "miner": "BatchHardMiner"}
    recipe = space.recipe(FixedTrial(fixed))  # type: ignore[arg-type]
    assert recipe.miner == "BatchHardMiner" and recipe.tuples == "converted"


def test_miner_named_per_loss_when_usable_miners_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    """One name, one distribution: a loss with fewer usable miners gets its own miner name."""
    real = catalog.compatibility

    def fake(loss: str, miner: str, weight_miners: bool = False) -> catalog.Compatibility:
        if (loss, miner) == ("ContrastiveLoss", "TripletMarginMiner"):
            return "invalid"
        return real(loss, miner, weight_miners)

    monkeypatch.setattr(catalog, "compatibility", fake)
    params: dict[str, ParamValue] = {
        "loss": ["TripletMarginLoss", "ContrastiveLoss"],
        "miner": ["none", "BatchHardMiner", "TripletMarginMiner"],
    }
    recipe = recipe_for(
        params, {"loss": "ContrastiveLoss", "miner_for_ContrastiveLoss": "BatchHardMiner"}
    )
    assert recipe.miner == "BatchHardMiner"
    recipe = recipe_for(params, {"loss": "TripletMarginLoss", "miner": "TripletMarginMiner"})
    assert recipe.miner == "TripletMarginMiner"
    # The per-loss choice offers only the usable miners.
    study = optuna.create_study()
    study.enqueue_trial({"loss": "ContrastiveLoss"})
    trial = study.ask()
    build_space(params)(trial)
    dist = trial.distributions["miner_for_ContrastiveLoss"]
    assert isinstance(dist, optuna.distributions.CategoricalDistribution)
    assert dist.choices == ("none", "BatchHardMiner")
    assert "miner" not in trial.distributions


def test_space_only_suggests() -> None:
    """The space is pure: it returns plain data (the trial's config as a dict), no PML objects."""
    out = build_space(QUICKSTART_PARAMS)(
        FixedTrial(  # type: ignore[arg-type]
            {"loss": "ContrastiveLoss", "miner": "none", "lr": 5e-3}
        )
    )
    assert pickle.loads(pickle.dumps(out)) == out
    recipe = TrialConfig.from_config(out).recipe
    assert recipe.loss_params == {"pos_margin": 0.0, "neg_margin": 1.0}


# --- driven by a real sampler -----------------------------------------------------------------


def _objective(recipe: Recipe) -> float:
    """A deterministic fake score so that TPE leaves its random start-up phase."""
    margin = recipe.loss_params.get("margin", 0.1)
    return -abs(recipe.lr - 3e-3) * 100 - abs(margin - 0.2) + (recipe.miner == "BatchHardMiner")


def run_study(
    params: Mapping[str, ParamValue], seed: int, n: int = 30
) -> Iterator[tuple[optuna.trial.Trial, Recipe]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = TPESampler(multivariate=True, group=True, seed=seed, n_startup_trials=8)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space = build_space(params)
    for _ in range(n):
        trial = study.ask()
        recipe = space.recipe(trial)
        study.tell(trial, _objective(recipe))
        yield trial, recipe


def test_every_proposed_recipe_builds_and_names_keep_one_distribution() -> None:
    distributions: dict[str, BaseDistribution] = {}
    seen: set[tuple[str, str]] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for trial, recipe in run_study(QUICKSTART_PARAMS, seed=0):
            loss, miner = recipe.build()
            assert isinstance(loss, catalog.LOSSES[recipe.loss].cls)
            assert (miner is None) == (recipe.miner == "none")
            seen.add((recipe.loss, recipe.miner))
            assert ("type_of_triplets" in trial.params) == (recipe.miner == "TripletMarginMiner")
            assert 1e-4 <= recipe.lr <= 1e-2
            for name, dist in trial.distributions.items():
                assert distributions.setdefault(name, dist) == dist, name
    assert set(distributions) == {"loss", "miner", "margin", "type_of_triplets", "lr"}
    assert len(seen) >= 6  # the sampler explores the loss x miner grid


def test_same_seed_same_recipes_different_seed_different() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        first = [r for _, r in run_study(QUICKSTART_PARAMS, seed=7, n=15)]
        again = [r for _, r in run_study(QUICKSTART_PARAMS, seed=7, n=15)]
        other = [r for _, r in run_study(QUICKSTART_PARAMS, seed=8, n=15)]
    assert first == again
    assert first != other


# --- pickling (Ray Tune pickles the searcher) --------------------------------------------------


def test_search_space_pickles() -> None:
    space = build_space(QUICKSTART_PARAMS)
    assert isinstance(space, SearchSpace)
    clone = pickle.loads(pickle.dumps(space))
    assert isinstance(clone, SearchSpace)
    fixed = {
        "loss": "TripletMarginLoss",
        "miner": "TripletMarginMiner",
        "margin": 0.2,
        "type_of_triplets": "easy",
        "lr": 2e-3,
    }
    assert clone(FixedTrial(fixed)) == space(FixedTrial(fixed))  # type: ignore[arg-type]
    assert clone.params == space.params and clone.losses == space.losses


def test_tied_margin_mode_is_none_where_the_recipe_has_no_margin() -> None:
    params: dict[str, ParamValue] = {
        "loss": ["ContrastiveLoss", "TripletMarginLoss"],
        "miner": "BatchHardMiner",
        "margin": Range(low=0.1, high=0.3),
    }
    assert recipe_for(params, {"loss": "ContrastiveLoss"}).margin_mode == "none"
    recipe = recipe_for(params, {"loss": "TripletMarginLoss", "margin": 0.2})
    assert recipe.margin_mode == "tied" and recipe.loss_params == {"margin": 0.2}


@pytest.mark.parametrize("weight_miners", [False, True])
def test_no_seed_proposes_an_invalid_combination(weight_miners: bool) -> None:
    """Every loss and miner in the catalog, many seeds and two samplers: never an invalid pair."""
    params: dict[str, ParamValue] = {
        "loss": list(catalog.LOSSES),
        "miner": list(catalog.MINER_NAMES),
        "lr": Range(low=1e-4, high=1e-2, log=True),
    }
    space = build_space(params, weight_miners)
    seen = set()
    for seed in range(12):
        for sampler in (
            optuna.samplers.RandomSampler(seed=seed),
            optuna.samplers.TPESampler(seed=seed, n_startup_trials=5),
        ):
            study = optuna.create_study(sampler=sampler)
            for _ in range(25):
                trial = study.ask()
                recipe = space.recipe(trial)
                assert catalog.compatibility(recipe.loss, recipe.miner, weight_miners) != "invalid"
                seen.add(recipe.tuples)
                study.tell(trial, recipe.lr)
    assert {"native", "converted"} <= seen  # the sampling reached both kinds of valid pair
