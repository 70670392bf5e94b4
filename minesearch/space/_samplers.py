"""Optuna's samplers by name, seeded; the grid walks the space's distinct recipes (`_grid`).

TPE is configured for the search it serves: its random start is scaled to the budget (Optuna's
default of 10 random trials is the whole of a 10-trial search) and, when trials run side by side,
it counts the running ones as bad (`constant_liar`) so that it does not propose the same region
to every free worker. `bench/search_efficiency.py` replays searches against a tabular benchmark to
choose these numbers (see its docstring for the measurements).
"""

from __future__ import annotations

import math
import warnings

import optuna

from minesearch.space._grid import GRID_KEY, GridSpace, enumerate_recipes
from minesearch.space._space import SearchSpace, SpaceFn

OPTUNA_STARTUP = 10  # TPESampler's own n_startup_trials: used when the budget is unknown
STARTUP_SHARE = 0.3  # of the budget's trials, sampled at random before TPE models
MIN_STARTUP = 2  # TPE needs a few points before its densities say anything


def make_search(
    name: str,
    seed: int,
    space: SearchSpace,
    budget: int | None = None,
    concurrent: int = 1,
) -> tuple[SpaceFn, optuna.samplers.BaseSampler, int | None]:
    """(space function, sampler, grid size or None) for the sampler called `name`.

    `budget`: the trials the search will run (`search.trials`), None when unknown; `concurrent`:
    how many run side by side. Both only tune TPE (`make_sampler`).
    """
    if name == "grid":
        recipes = enumerate_recipes(space)
        grid = optuna.samplers.GridSampler({GRID_KEY: list(range(len(recipes)))}, seed=seed)
        return GridSpace(recipes), grid, len(recipes)
    return space, make_sampler(name, seed, budget=budget, concurrent=concurrent), None


def make_sampler(
    name: str, seed: int, budget: int | None = None, concurrent: int = 1
) -> optuna.samplers.BaseSampler:
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
        return tpe_sampler(seed, startup_trials(budget), constant_liar=concurrent > 1)


def startup_trials(budget: int | None) -> int:
    """TPE's random trials before it models: Optuna's 10 when the budget is unknown, else
    STARTUP_SHARE of the budget, at least MIN_STARTUP and at most Optuna's 10."""
    if budget is None:
        return OPTUNA_STARTUP
    return max(MIN_STARTUP, min(OPTUNA_STARTUP, math.ceil(STARTUP_SHARE * budget)))


def tpe_sampler(
    seed: int, n_startup_trials: int = OPTUNA_STARTUP, constant_liar: bool = False
) -> optuna.samplers.TPESampler:
    """Multivariate TPE over groups of parameters asked together (a define-by-run space asks
    different parameters per branch); the one place its settings are written."""
    with warnings.catch_warnings():  # multivariate, group and constant_liar are experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            multivariate=True,
            group=True,
            seed=seed,
            n_startup_trials=n_startup_trials,
            constant_liar=constant_liar,
        )
