"""Optuna's samplers by name, seeded; the grid walks the space's distinct recipes (`_grid`)."""

from __future__ import annotations

import warnings

import optuna

from minesearch.space._grid import GRID_KEY, GridSpace, enumerate_recipes
from minesearch.space._space import SearchSpace, SpaceFn


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
