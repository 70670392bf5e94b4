"""The define-by-run search space: an Optuna function built from `search.params` and the catalog.

It only calls `trial.suggest_*` (no computation), so Ray's OptunaSearch can record it and tests can
drive it with `optuna.trial.FixedTrial`. A parameter is asked only where it means something
(`type_of_triplets` only when the miner is TripletMarginMiner, `proxy_lr_factor` only for a loss
with trainable parameters); invalid loss/miner pairs are never proposed; a name keeps one
distribution in every branch, so the miner choice is named per loss whenever the usable miners
differ by loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna

from minesearch import catalog, config
from minesearch.config import (
    DEFAULT_LR,
    DEFAULT_PROXY_LR_FACTOR,
    ParamValue,
    Range,
    chosen,
    resolve_constant,
    usable_miners,
)
from minesearch.recipe import MarginMode, Recipe, TrialConfig

SpaceFn = Callable[[optuna.Trial], dict[str, Any]]


class SearchSpace:
    """The define-by-run function; returns the trial's Tune config (`TrialConfig.to_config()`).

    A class rather than a closure: Tune pickles the searcher (and so this) with plain `pickle`
    every time it saves the experiment state.
    """

    def __init__(self, params: Mapping[str, ParamValue], weight_miners: bool = False) -> None:
        self.params = dict(params)
        self.losses, self.miners = chosen(params)
        self.weight_miners = weight_miners

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        return TrialConfig(self.recipe(trial)).to_config()

    def recipe(self, trial: optuna.Trial) -> Recipe:
        """The recipe this trial's answers make (only `trial.suggest_*` is called)."""
        params = self.params
        loss = suggest(trial, "loss", self.losses, self.losses[0])
        usable = usable_miners(loss, self.miners, self.weight_miners)
        miner_key = "miner" if usable == self.miners else f"miner_for_{loss}"
        miner = suggest(trial, miner_key, usable, catalog.NO_MINER)
        trainable = catalog.loss_info(loss).trainable
        return Recipe(
            loss=loss,
            miner=miner,
            loss_params=_suggest_all(trial, params, "loss", loss),
            miner_params=_suggest_all(trial, params, "miner", miner),
            lr=float(suggest(trial, "lr", params.get("lr"), DEFAULT_LR)),
            margin_mode=margin_mode(params, loss, miner),
            proxy_lr_factor=_proxy_lr_factor(trial, params) if trainable else None,
            weight_miners=self.weight_miners,
            backbone_lr_factor=_optional(trial, params, "backbone_lr_factor"),
            weight_decay=_optional(trial, params, "weight_decay"),
            warmup_epochs=_optional(trial, params, "warmup_epochs"),
            head=suggest(trial, "head", params.get("head"), None),
            optimizer=suggest(trial, "optimizer", params.get("optimizer"), None),
        )


def _proxy_lr_factor(trial: optuna.Trial, params: Mapping[str, ParamValue]) -> float:
    factor = params.get("proxy_lr_factor")
    return float(suggest(trial, "proxy_lr_factor", factor, DEFAULT_PROXY_LR_FACTOR))


def _optional(trial: optuna.Trial, params: Mapping[str, ParamValue], key: str) -> float | None:
    """A recipe key only when the space names it: recipes of spaces without it stay as they were
    (their trial params too), and the space's own default applies."""
    if key not in params:
        return None
    return float(suggest(trial, key, params[key], None))


def build_space(params: Mapping[str, ParamValue], weight_miners: bool = False) -> SearchSpace:
    return SearchSpace(params, weight_miners)


def _suggest_all(
    trial: optuna.Trial, params: Mapping[str, ParamValue], owner: config.Owner, cls_name: str
) -> dict[str, Any]:
    """Every declared constructor argument: searched when the file says so, else PML's default."""
    values = {}
    for name, info in config.declared(owner, cls_name).items():
        key = config.key_for(params, owner, cls_name, name)
        value = None if key is None else params[key]
        values[name] = suggest(trial, key or name, value, info.default, info.integer)
    return values


def margin_mode(params: Mapping[str, ParamValue], loss: str, miner: str) -> MarginMode:
    """How this recipe's margins were set, for the MLflow params."""
    sides: list[tuple[config.Owner, str]] = [("loss", loss), ("miner", miner)]
    keys = [
        config.key_for(params, owner, cls_name, "margin")
        for owner, cls_name in sides
        if "margin" in config.declared(owner, cls_name)
    ]
    if not keys:
        return "none"
    if "margin" in keys:
        return "tied"
    return "default" if all(k is None for k in keys) else "separate"


def suggest(trial: optuna.Trial, name: str, value: Any, default: Any, integer: bool = False) -> Any:
    """One parameter: a constant is returned as is, a list is categorical, a Range a number."""
    value = resolve_constant(value)
    if value is None:
        return default
    if isinstance(value, Range):
        if integer:
            return trial.suggest_int(name, round(value.low), round(value.high), log=value.log)
        return trial.suggest_float(name, value.low, value.high, log=value.log)
    if isinstance(value, list):
        return trial.suggest_categorical(name, value)
    return value
