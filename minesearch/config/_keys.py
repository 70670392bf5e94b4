"""Which key of `search.params` sets which constructor argument of which loss or miner.

Three spellings, most specific first, so that one file can tie knobs or keep them apart:

- ``ArcFaceLoss.margin``: that class only (ArcFace's margin is in degrees, TripletMargin's is a
  distance: they must not share a range);
- ``loss_margin`` / ``miner_margin``: every chosen loss (or miner) that has the argument;
- ``margin``: every chosen loss *and* miner that has it, with one value (tied).

A key with the same name in two places of one trial is one Optuna parameter, hence one value: that
is what makes a tie a tie.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from minesearch import catalog

Owner = Literal["loss", "miner"]

# Keys of the recipe itself rather than of a loss or miner constructor.
RECIPE_KEYS = (
    "loss",
    "miner",
    "lr",
    "proxy_lr_factor",
    "backbone_lr_factor",
    "weight_decay",
    "warmup_epochs",
    "head",
    "optimizer",
)
OWNERS: tuple[Owner, ...] = ("loss", "miner")


@dataclass(frozen=True)
class Target:
    """One constructor argument that a key sets."""

    owner: Owner
    cls_name: str
    param: str
    info: catalog.ParamInfo


def declared(owner: Owner, cls_name: str) -> Mapping[str, catalog.ParamInfo]:
    if owner == "loss":
        return catalog.loss_info(cls_name).params
    info = catalog.miner_info(cls_name)
    return info.params if info is not None else {}


def spellings(owner: Owner, cls_name: str, param: str) -> tuple[str, str, str]:
    return (f"{cls_name}.{param}", f"{owner}_{param}", param)


def key_for(params: Mapping[str, Any], owner: Owner, cls_name: str, param: str) -> str | None:
    """The key that sets `param` of `cls_name`, or None (PML's default is used)."""
    return next((k for k in spellings(owner, cls_name, param) if k in params), None)


def targets(
    params: Mapping[str, Any], losses: list[str], miners: list[str]
) -> dict[str, list[Target]]:
    """For every key in `params`, the arguments it sets among the chosen losses and miners."""
    found: dict[str, list[Target]] = {key: [] for key in params}
    chosen: list[tuple[Owner, list[str]]] = [("loss", losses), ("miner", miners)]
    for owner, names in chosen:
        for cls_name in names:
            for param, info in declared(owner, cls_name).items():
                key = key_for(params, owner, cls_name, param)
                if key is not None:
                    found[key].append(Target(owner, cls_name, param, info))
    return found


def all_param_names() -> dict[Owner, set[str]]:
    names: dict[Owner, set[str]] = {"loss": set(), "miner": set()}
    for loss in catalog.LOSSES.values():
        names["loss"] |= set(loss.params)
    for miner in catalog.MINERS.values():
        names["miner"] |= set(miner.params)
    return names


def allowed_keys() -> list[str]:
    """The unscoped keys (the class-scoped `Class.param` form is allowed for every entry too)."""
    names = all_param_names()
    scoped = {f"{owner}_{p}" for owner in OWNERS for p in names[owner]}
    return sorted({*RECIPE_KEYS, *names["loss"], *names["miner"], *scoped})


def key_error(key: str) -> str | None:
    """Why `key` is not a parameter name minesearch knows, or None."""
    if "." in key:
        cls_name, param = key.split(".", 1)
        owner: Owner = "loss" if cls_name in catalog.LOSSES else "miner"
        if cls_name not in catalog.LOSSES and cls_name not in catalog.MINERS:
            valid = [*catalog.LOSSES, *catalog.MINERS]
            return f"unknown loss or miner {cls_name!r}{catalog.did_you_mean(cls_name, valid)}"
        params = list(declared(owner, cls_name))
        if param not in params:
            hint = catalog.did_you_mean(param, params)
            return f"{cls_name} has no parameter {param!r}{hint}; it has: {params}"
        return None
    allowed = allowed_keys()
    if key in allowed:
        return None
    return (
        f"unknown parameter{catalog.did_you_mean(key, allowed)}; allowed: {allowed} "
        "or <LossOrMiner>.<parameter>"
    )
