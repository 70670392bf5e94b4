"""space: the define-by-run search space and the samplers that walk it.

`SearchSpace` is an Optuna define-by-run function built from `search.params` and the catalog: it
only calls `trial.suggest_*`, asks a parameter only where it means something and never proposes an
invalid loss/miner pair. `make_search` pairs it with a seeded Optuna sampler (the grid walks the
space's distinct recipes, `_grid`); TPE is set for the search's budget and concurrency
(`_samplers`). `locate` finds the params under which the space proposes a given recipe (the
control, proposed first).

Runs in the Tune driver (Ray's OptunaSearch calls the space; tests drive it with Optuna's
FixedTrial). Imports optuna, `config`, `catalog` and `recipe`; never Ray, torch or MLflow.
"""

from minesearch.space._grid import GRID_KEY, GridSpace, enumerate_choices, enumerate_recipes
from minesearch.space._locate import locate
from minesearch.space._samplers import (
    OPTUNA_STARTUP,
    make_sampler,
    make_search,
    startup_trials,
    tpe_sampler,
)
from minesearch.space._space import SearchSpace, SpaceFn, build_space, margin_mode, suggest

__all__ = [
    "GRID_KEY",
    "OPTUNA_STARTUP",
    "GridSpace",
    "SearchSpace",
    "SpaceFn",
    "build_space",
    "enumerate_choices",
    "enumerate_recipes",
    "locate",
    "make_sampler",
    "make_search",
    "margin_mode",
    "startup_trials",
    "suggest",
    "tpe_sampler",
]
