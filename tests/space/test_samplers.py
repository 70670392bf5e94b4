"""Samplers by name: seeded sequences, and the grid as every distinct recipe once."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import optuna
import pytest

from minesearch.config import ParamValue, Range, SpecError, parse_spec
from minesearch.recipe import TrialConfig
from minesearch.space import (
    GRID_KEY,
    OPTUNA_STARTUP,
    build_space,
    enumerate_recipes,
    make_sampler,
    make_search,
    startup_trials,
)

PARAMS: dict[str, ParamValue] = {
    "loss": ["TripletMarginLoss", "ContrastiveLoss"],
    "miner": ["none", "TripletMarginMiner"],
    "margin": Range(low=0.05, high=0.5),
    "type_of_triplets": ["hard", "semihard"],
    "lr": Range(low=1e-4, high=1e-2, log=True),
}
FINITE: dict[str, ParamValue] = {
    "loss": ["TripletMarginLoss", "ContrastiveLoss"],
    "miner": ["none", "TripletMarginMiner"],
    "margin": [0.1, 0.2],
    "type_of_triplets": ["hard", "semihard"],
}


def proposals(
    name: str, seed: int, params: dict[str, ParamValue], n: int, budget: int | None = None
) -> list[dict[str, Any]]:
    space, sampler, _ = make_search(name, seed, build_space(params), budget=budget)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    out = []
    for i in range(n):
        trial = study.ask()
        recipe = TrialConfig.from_config(space(trial)).recipe.to_dict()
        # Any deterministic score. GridSampler stops the study once the grid is done, which only
        # works inside study.optimize; Ray's OptunaSearch logs the same error and goes on.
        with contextlib.suppress(RuntimeError):
            study.tell(trial, float(len(json.dumps(recipe)) % 7 + i % 3))
        out.append(recipe)
    return out


@pytest.mark.parametrize("name", ["tpe", "random", "qmc", "cmaes"])
def test_same_seed_same_recipes_other_seed_others(name: str) -> None:
    first = proposals(name, 3, PARAMS, 12)
    assert first == proposals(name, 3, PARAMS, 12)
    assert first != proposals(name, 4, PARAMS, 12)


def test_grid_proposes_every_distinct_recipe_once() -> None:
    recipes = [r.to_dict() for r in enumerate_recipes(build_space(FINITE))]
    # TripletMarginLoss: no miner x 2 margins + TripletMarginMiner x 2 margins x 2 types = 6;
    # ContrastiveLoss: no miner + TripletMarginMiner (margin tied: miner's) 2 x 2 = 5.
    assert len(recipes) == 11
    assert len({json.dumps(r, sort_keys=True) for r in recipes}) == 11
    seen = proposals("grid", 0, FINITE, 11)
    assert sorted(map(json.dumps, seen)) == sorted(map(json.dumps, recipes))
    assert seen == proposals("grid", 0, FINITE, 11)
    assert seen != proposals("grid", 1, FINITE, 11)


def test_grid_space_is_one_categorical_over_recipes() -> None:
    space, _, size = make_search("grid", 0, build_space(FINITE))
    assert size == 11
    study = optuna.create_study()
    trial = study.ask()
    space(trial)
    assert list(trial.distributions) == [GRID_KEY]


def test_enumeration_refuses_ranges() -> None:
    with pytest.raises(ValueError, match="range"):
        enumerate_recipes(build_space(PARAMS))


def test_sampler_needs_the_right_space() -> None:
    base = {
        "name": "x",
        "search": {"params": {"loss": "TripletMarginLoss", "margin": {"low": 0.1, "high": 0.2}}},
    }
    grid = {**base, "search": {**base["search"], "sampler": {"name": "grid"}}}
    with pytest.raises(SpecError, match=r"grid needs a finite space, but \['margin'\]"):
        parse_spec(grid)
    cmaes = {
        "name": "x",
        "search": {"sampler": {"name": "cmaes"}, "params": {"margin": [0.1, 0.2]}},
    }
    with pytest.raises(SpecError, match="cmaes samples ranges"):
        parse_spec(cmaes)
    warm_grid = {
        "name": "x",
        "search": {"sampler": {"name": "grid"}, "warm_start": "earlier", "params": {"lr": [0.1]}},
    }
    with pytest.raises(SpecError, match=r"search\.warm_start: a grid tries every recipe"):
        parse_spec(warm_grid)
    warm_tpe = {**warm_grid, "search": {**warm_grid["search"], "sampler": {"name": "tpe"}}}
    assert parse_spec(warm_tpe).search.warm_start == "earlier"


def test_tpe_defaults_unchanged_without_a_budget() -> None:
    """Callers that pass no budget get Optuna's TPE as before: 10 random trials, no liar."""
    sampler = make_sampler("tpe", 0)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._n_startup_trials == OPTUNA_STARTUP == 10
    assert not sampler._constant_liar
    assert sampler._multivariate and sampler._group


@pytest.mark.parametrize(
    ("budget", "startup"), [(None, 10), (1, 2), (6, 2), (10, 3), (24, 8), (40, 10), (500, 10)]
)
def test_tpe_random_start_scales_with_the_budget(budget: int | None, startup: int) -> None:
    assert startup_trials(budget) == startup
    _, sampler, _ = make_search("tpe", 0, build_space(PARAMS), budget=budget)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._n_startup_trials == startup


def test_tpe_counts_running_trials_only_when_trials_run_side_by_side() -> None:
    for concurrent, liar in ((1, False), (2, True), (4, True)):
        sampler = make_sampler("tpe", 0, budget=10, concurrent=concurrent)
        assert isinstance(sampler, optuna.samplers.TPESampler)
        assert sampler._constant_liar is liar
    # other samplers take the same arguments and ignore them
    assert isinstance(
        make_sampler("random", 0, budget=10, concurrent=4), optuna.samplers.RandomSampler
    )


def test_tpe_with_a_budget_models_after_its_random_start() -> None:
    """Budget 10: 3 random trials (the same as TPE's random start without a budget), then TPE
    models, where Optuna's default would still sample at random; the sequence stays seeded."""
    first = proposals("tpe", 3, PARAMS, 8, budget=10)
    assert first == proposals("tpe", 3, PARAMS, 8, budget=10)
    assert first[:3] == proposals("tpe", 3, PARAMS, 3)
    assert first[3:] != proposals("tpe", 3, PARAMS, 8)[3:]
