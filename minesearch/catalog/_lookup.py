"""Lookups in the registry: a name's entry, loss x miner compatibility, checked constructors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from minesearch.catalog._entries import LOSSES, MINER_NAMES, MINERS
from minesearch.catalog._types import (
    NO_MINER,
    Compatibility,
    LossInfo,
    MinerInfo,
    ParamConstraint,
    ParamInfo,
    Size,
    UnknownNameError,
    did_you_mean,
)

if TYPE_CHECKING:
    from torch import nn


def loss_info(name: str) -> LossInfo:
    if name not in LOSSES:
        raise UnknownNameError(
            f"unknown loss {name!r}{did_you_mean(name, list(LOSSES))}; valid: {sorted(LOSSES)}"
        )
    return LOSSES[name]


def miner_info(name: str) -> MinerInfo | None:
    """None for the 'none' miner (the loss uses all pairs/triplets of the batch)."""
    if name == NO_MINER:
        return None
    if name not in MINERS:
        raise UnknownNameError(
            f"unknown miner {name!r}{did_you_mean(name, MINER_NAMES)}; valid: {list(MINER_NAMES)}"
        )
    return MINERS[name]


def compatibility(loss: str, miner: str, weight_miners: bool = False) -> Compatibility:
    """native: the miner emits what the loss consumes; converted: PML converts it (recorded).

    A "weights" loss only counts how often each sample was mined, which is rarely what a search
    means by "this miner", so it takes a miner only when the space opts in (`weight_miners`).
    """
    consumes = loss_info(loss).consumes  # checked first: an unknown loss is never "native"
    info = miner_info(miner)
    if info is None:
        return "native"
    if consumes in ("pairs", "triplets"):
        return "native" if info.emits == consumes else "converted"
    return "converted" if consumes == "weights" and weight_miners else "invalid"


def constructor_errors(
    owner: str,
    declared: Mapping[str, ParamInfo],
    params: Mapping[str, Any],
    constraint: ParamConstraint | None = None,
) -> list[str]:
    """Every problem of a constructor's `params`: unknown names, bad values, bad combinations."""
    problems = [
        f"{owner}: unknown parameter {name!r}{did_you_mean(name, list(declared))}; "
        f"it has: {list(declared)}"
        for name in params
        if name not in declared
    ]
    problems += [
        f"{owner}.{name}: {value!r} {why}"
        for name, value in params.items()
        if name in declared and (why := declared[name].check(value)) is not None
    ]
    if not problems and constraint is not None and (why := constraint(params)) is not None:
        problems.append(f"{owner}: {why}")
    return problems


def batch_error(loss: str, classes: int, per_class: int) -> str | None:
    """Why `loss` cannot train on batches of `classes` x `per_class` (class-contiguous), or None.

    Pass the batch the loss actually sees: each worker's own batch under data-parallel training,
    unless the losses are wrapped to all-gather embeddings.
    """
    rule = loss_info(loss).batch_rule
    return None if rule is None else rule(classes, per_class)


def build_loss(
    name: str,
    params: Mapping[str, Any],
    num_classes: int | None = None,
    embedding_size: int | None = None,
) -> nn.Module:
    """The PML loss; a trainable one also gets the training classes and embedding width."""
    info = loss_info(name)
    given: dict[Size, int | None] = {"num_classes": num_classes, "embedding_size": embedding_size}
    missing = [size for size in dict.fromkeys(info.sizes.values()) if given[size] is None]
    if missing:
        raise ValueError(
            f"{name} owns trainable parameters and needs {' and '.join(missing)} to be built"
        )
    sized = {arg: given[size] for arg, size in info.sizes.items()}
    return info.cls(**info.fixed, **sized, **_checked(name, info.params, params))


def build_miner(name: str, params: Mapping[str, Any]) -> nn.Module | None:
    info = miner_info(name)
    if info is None:
        return None
    return info.cls(**_checked(name, info.params, params, info.constraint))


def _checked(
    owner: str,
    declared: Mapping[str, ParamInfo],
    params: Mapping[str, Any],
    constraint: ParamConstraint | None = None,
) -> dict[str, Any]:
    """`params` ready for the constructor: validated, integers as int (YAML may say 10.0)."""
    problems = constructor_errors(owner, declared, params, constraint)
    if problems:
        raise ValueError("; ".join(problems))
    return {k: int(v) if declared[k].integer else v for k, v in params.items()}
