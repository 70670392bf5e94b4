"""Where a given recipe lies in a define-by-run space: the Optuna params that make it, if any.

The search proposes the control first (`optuna.Study.enqueue_trial`) when the space holds it, so
it starts from a known-good point and explores around it. A define-by-run space asks different
parameters per branch, so the params are found by walking the space function with a trial that
answers every `suggest_*` from the recipe, and refuses an answer outside the distribution asked.
The walk is then checked by building the recipe back (`FixedTrial`): a constant of the space that
differs from the recipe, or a tied margin the recipe does not tie, means the recipe is not in it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

import optuna

from minesearch.config import DEFAULT_PROXY_LR_FACTOR, SpaceSpec
from minesearch.recipe import Recipe
from minesearch.space._space import SearchSpace

# Recipe keys a space asks under their own name (`minesearch.config.RECIPE_KEYS` without the
# loss and miner, which are answered by name).
_SETTINGS = ("lr", "backbone_lr_factor", "weight_decay", "warmup_epochs", "head", "optimizer")


class _NotInSpace(Exception):
    """An answer the space does not allow."""


class _RecipeTrial:
    """Answers the space's questions from a (resolved) recipe, recording them as Optuna params."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self._value(name)
        for choice in choices:
            if _same(choice, value):
                self.params[name] = choice
                return choice
        raise _NotInSpace(f"{name}={value!r} is not among {list(choices)}")

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        value = self._value(name)
        inside = isinstance(value, int | float) and (
            low <= value <= high or _close(value, low) or _close(value, high)
        )
        if not inside:
            raise _NotInSpace(f"{name}={value!r} is outside [{low}, {high}]")
        self.params[name] = float(min(max(value, low), high))
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        value = self._value(name)
        if not isinstance(value, int | float) or value != int(value) or not low <= value <= high:
            raise _NotInSpace(f"{name}={value!r} is not an integer in [{low}, {high}]")
        self.params[name] = int(value)
        return int(value)

    def _value(self, name: str) -> Any:
        recipe = self.recipe
        if name == "loss":
            return recipe.loss
        if name == "miner" or name.startswith("miner_for_"):
            return recipe.miner
        if name == "proxy_lr_factor":
            factor = recipe.proxy_lr_factor
            return DEFAULT_PROXY_LR_FACTOR if factor is None else factor
        if name in _SETTINGS:
            return getattr(recipe, name)
        return _constructor_value(recipe, name)


def _constructor_value(recipe: Recipe, key: str) -> Any:
    """The value of a loss/miner argument under any of its spellings (`minesearch.config`'s
    `Cls.param`, `loss_param`/`miner_param`, `param`)."""
    loss, miner = recipe.loss_params, recipe.miner_params
    if "." in key:
        cls_name, param = key.split(".", 1)
        found = loss if cls_name == recipe.loss else miner if cls_name == recipe.miner else {}
    elif key.startswith("loss_") and key[5:] in loss:
        found, param = loss, key[5:]
    elif key.startswith("miner_") and key[6:] in miner:
        found, param = miner, key[6:]
    else:
        found, param = (loss if key in loss else miner), key
    if param not in found:
        raise _NotInSpace(f"the recipe has no value for {key!r}")
    return found[param]


def locate(space: SearchSpace, recipe: Recipe, spec: SpaceSpec) -> dict[str, Any] | None:
    """The Optuna params under which `space` proposes `recipe` (as `spec` trains it), or None
    when the space cannot propose it."""
    target = _comparable(recipe, spec)
    walker = _RecipeTrial(target)
    try:
        space.recipe(walker)  # type: ignore[arg-type]  # answers every suggest_* it asks
    except _NotInSpace:
        return None
    found = space.recipe(optuna.trial.FixedTrial(walker.params))  # type: ignore[arg-type]
    return walker.params if _same(asdict(_comparable(found, spec)), asdict(target)) else None


def _comparable(recipe: Recipe, spec: SpaceSpec) -> Recipe:
    """The recipe as a trial trains it; descriptive fields (how margins were set, whether the
    space let proxies weigh a miner) left out of the comparison."""
    return replace(recipe.resolved(spec), margin_mode="default", weight_miners=False)


def _same(choice: Any, value: Any) -> bool:
    """Equal, numbers up to rounding (a warm-up of 0.1 x 3 epochs is the space's 0.3)."""
    if isinstance(choice, bool) or isinstance(value, bool):
        return choice is value
    if isinstance(choice, int | float) and isinstance(value, int | float):
        return _close(float(choice), float(value))
    if isinstance(choice, dict) and isinstance(value, dict):
        return choice.keys() == value.keys() and all(_same(choice[k], value[k]) for k in choice)
    return bool(choice == value)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
