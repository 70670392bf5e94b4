"""The grid as "every distinct recipe once": the recipes of a finite space, enumerated.

Optuna's GridSampler walks the product of every parameter's values, conditional ones included, so
on a define-by-run space it proposes the same recipe many times (`type_of_triplets` varies while
the miner does not use it). Here the space is walked like a tree instead (an enumerating trial
stops at each undecided choice and branches), and GridSampler walks the recipes' indices.
"""

from __future__ import annotations

from typing import Any

import optuna

from minesearch.recipe import Recipe, TrialConfig
from minesearch.space._space import SearchSpace

GRID_KEY = "recipe_index"


class GridSpace:
    """Define-by-run function over an enumerated list of recipes (picklable, like SearchSpace)."""

    def __init__(self, recipes: list[Recipe]) -> None:
        self.recipes = recipes

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        index = trial.suggest_categorical(GRID_KEY, list(range(len(self.recipes))))
        return TrialConfig(self.recipes[int(index)]).to_config()


class _Undecided(Exception):
    """Raised by the enumerating trial at the first choice it has no value for."""

    def __init__(self, name: str, choices: list[Any]) -> None:
        self.name, self.choices = name, choices


class _EnumeratingTrial:
    """Answers suggest_categorical from `fixed`, or stops at the first undecided choice."""

    def __init__(self, fixed: dict[str, Any]) -> None:
        self.fixed = fixed

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        if name not in self.fixed:
            raise _Undecided(name, list(choices))
        return self.fixed[name]

    def _no_range(self, name: str, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(f"search.params: {name} is a range; a grid needs lists of values")

    suggest_float = suggest_int = _no_range


def enumerate_recipes(space: SearchSpace) -> list[Recipe]:
    """Every distinct recipe of a finite define-by-run space, depth first in the file's order."""
    return [recipe for _, recipe in enumerate_choices(space)]


def enumerate_choices(space: SearchSpace) -> list[tuple[dict[str, Any], Recipe]]:
    """(the Optuna params that propose it, the recipe) for every distinct recipe of a finite
    space; raises ValueError when the space has a range."""
    found: list[tuple[dict[str, Any], Recipe]] = []
    pending = [dict[str, Any]()]
    while pending:
        fixed = pending.pop()
        try:
            found.append((fixed, space.recipe(_EnumeratingTrial(fixed))))  # type: ignore[arg-type]
        except _Undecided as undecided:
            branches = [{**fixed, undecided.name: c} for c in undecided.choices]
            pending.extend(reversed(branches))
    return found
