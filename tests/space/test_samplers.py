"""Samplers by name: seeded sequences, and the grid as every distinct recipe once."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import optuna
import pytest

from minesearch.config import ParamValue, Range, SpecError, parse_spec
from minesearch.recipe import TrialConfig
from minesearch.space import GRID_KEY, build_space, enumerate_recipes, make_search

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


def proposals(name: str, seed: int, params: dict[str, ParamValue], n: int) -> list[dict[str, Any]]:
    space, sampler, _ = make_search(name, seed, build_space(params))
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
