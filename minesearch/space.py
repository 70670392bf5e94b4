"""The define-by-run search space: an Optuna function built from `search.params` and the catalog.

It only calls `trial.suggest_*` (no computation), so Ray's OptunaSearch can record it and tests can
drive it with `optuna.trial.FixedTrial`. A parameter is asked only where it means something
(`type_of_triplets` only when the miner is TripletMarginMiner); a name keeps one distribution in
every branch, so the miner choice is named per loss whenever the compatible miners differ by loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna

from minesearch import catalog
from minesearch.params import DEFAULT_LR, ParamValue, Range, as_choices, resolve_constant
from minesearch.recipe import MarginMode, Recipe

SpaceFn = Callable[[optuna.Trial], dict[str, Any]]


class SearchSpace:
    """The define-by-run function; returns `{"recipe": Recipe.to_dict()}`.

    A class rather than a closure: Tune pickles the searcher (and so this) with plain `pickle`
    every time it saves the experiment state.
    """

    def __init__(self, params: Mapping[str, ParamValue]) -> None:
        self.params = dict(params)
        self.losses = as_choices(params.get("loss"), ["TripletMarginLoss"])
        self.miners = as_choices(params.get("miner"), [catalog.NO_MINER])
        self.margin_mode: MarginMode = (
            "tied"
            if "margin" in params
            else "separate"
            if {"loss_margin", "miner_margin"} & set(params)
            else "default"
        )

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        params = self.params
        loss = suggest(trial, "loss", self.losses, "TripletMarginLoss")
        usable = [m for m in self.miners if catalog.compatibility(loss, m) != "invalid"]
        miner_key = "miner" if usable == self.miners else f"miner_for_{loss}"
        miner = suggest(trial, miner_key, usable, catalog.NO_MINER)
        info = catalog.miner_info(miner)
        recipe = Recipe(
            loss=loss,
            miner=miner,
            loss_params=_suggest_all(trial, catalog.loss_info(loss).params, params, "loss"),
            miner_params=_suggest_all(trial, info.params if info else {}, params, "miner"),
            lr=float(suggest(trial, "lr", params.get("lr"), DEFAULT_LR)),
            margin_mode=self.margin_mode if _has_margin(loss, miner) else "none",
        )
        return {"recipe": recipe.to_dict()}


def build_space(params: Mapping[str, ParamValue]) -> SpaceFn:
    return SearchSpace(params)


def _suggest_all(
    trial: optuna.Trial,
    declared: Mapping[str, catalog.ParamInfo],
    params: Mapping[str, ParamValue],
    owner: str,
) -> dict[str, Any]:
    """Every declared constructor argument: searched when the file says so, else PML's default."""
    values = {}
    for name, info in declared.items():
        key = name
        if name == "margin" and "margin" not in params:
            key = f"{owner}_margin"
        values[name] = suggest(trial, key, params.get(key), info.default)
    return values


def suggest(trial: optuna.Trial, name: str, value: Any, default: Any) -> Any:
    """One parameter: a constant is returned as is, a list is categorical, a Range is a float."""
    value = resolve_constant(value)
    if value is None:
        return default
    if isinstance(value, Range):
        return trial.suggest_float(name, value.low, value.high, log=value.log)
    if isinstance(value, list):
        return trial.suggest_categorical(name, value)
    return value


def _has_margin(loss: str, miner: str) -> bool:
    info = catalog.miner_info(miner)
    return "margin" in catalog.loss_info(loss).params or (
        info is not None and "margin" in info.params
    )
