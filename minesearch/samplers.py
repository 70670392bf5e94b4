"""Optuna's samplers by name, seeded, and the grid as "every distinct recipe once".

Optuna's GridSampler walks the product of every parameter's values, conditional ones included, so
on a define-by-run space it proposes the same recipe many times (`type_of_triplets` varies while
the miner does not use it). The grid here enumerates the distinct recipes of the space instead and
lets GridSampler walk their indices: each recipe once, in a seeded order.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from minesearch.space import SearchSpace, SpaceFn, enumerate_recipes

GRID_KEY = "recipe_index"


class GridSpace:
    """Define-by-run function over an enumerated list of recipes (picklable, like SearchSpace)."""

    def __init__(self, recipes: list[dict[str, Any]]) -> None:
        self.recipes = recipes

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        index = trial.suggest_categorical(GRID_KEY, list(range(len(self.recipes))))
        return {"recipe": self.recipes[int(index)]}


def make_search(
    name: str, seed: int, space: SearchSpace
) -> tuple[SpaceFn, optuna.samplers.BaseSampler, int | None]:
    """(space function, sampler, grid size or None) for the sampler called `name`."""
    if name == "grid":
        recipes = enumerate_recipes(space)
        grid = optuna.samplers.GridSampler({GRID_KEY: list(range(len(recipes)))}, seed=seed)
        return GridSpace(recipes), grid, len(recipes)
    return space, make_sampler(name, seed), None


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # "experimental feature" warnings for group / QMC
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(
                seed=seed,
                warn_independent_sampling=False,
                independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            )
        return optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed)
