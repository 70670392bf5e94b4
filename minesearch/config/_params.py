"""The value forms of `search.params` and their checks against the catalog.

A list is a categorical choice, ``{low, high[, log]}`` a range, a scalar a constant. Parameter names
are the recipe's own (``loss``, ``miner``, ``lr``, ``proxy_lr_factor``) and the constructor
arguments the catalog declares, in the spellings of `_keys` (``margin`` ties loss and miner,
``loss_margin`` / ``miner_margin`` keep them apart, ``ArcFaceLoss.margin`` is one class's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)

from minesearch import catalog
from minesearch.config import _keys as paramkeys
from minesearch.config.vocab import HEADS, OPTIMIZERS

# Strict: YAML's `yes`/`on`/`true` must not become the number 1.0.
Scalar = StrictFloat | StrictInt | StrictStr


class Range(BaseModel):
    """A numeric interval for the sampler; `log` samples the exponent uniformly (needs low > 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low must be <= high (given low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (given low={self.low})")
        return self


def _param_form(value: Any) -> str:
    """Which of the three forms a value takes, so errors speak of that form only."""
    if isinstance(value, dict | Range):
        return "range"
    return "choices" if isinstance(value, list) else "constant"


PARAM_FORMS = ("range", "choices", "constant")
ParamValue = Annotated[
    Annotated[Range, Tag("range")]
    | Annotated[list[Scalar], Field(min_length=1), Tag("choices")]
    | Annotated[Scalar, Tag("constant")],
    Discriminator(_param_form),
]

DEFAULT_LR = 1.0e-3
DEFAULT_PROXY_LR_FACTOR = 10.0  # a trainable loss's own parameters (proxies) learn this much faster
RECIPE_INFO = {
    "lr": catalog.ParamInfo(DEFAULT_LR, low=1e-12),
    "proxy_lr_factor": catalog.ParamInfo(DEFAULT_PROXY_LR_FACTOR, low=1e-6),
    "backbone_lr_factor": catalog.ParamInfo(1.0, low=0.0),
    "weight_decay": catalog.ParamInfo(0.0, low=0.0),  # default: train.weight_decay
    "warmup_epochs": catalog.ParamInfo(0.0, low=0.0),  # default: train.warmup_epochs
    "head": catalog.ParamInfo("auto", choices=HEADS),  # default: model.head
    "optimizer": catalog.ParamInfo("adam", choices=OPTIMIZERS),  # default: train.optimizer
}
DEFAULT_LOSS = "TripletMarginLoss"


def as_choices(value: ParamValue | None, default: Sequence[str]) -> list[str]:
    """The categorical options a name-valued parameter (loss, miner) may take."""
    if value is None:
        return list(default)
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def chosen(params: Mapping[str, ParamValue]) -> tuple[list[str], list[str]]:
    """The losses and miners a space may propose (before compatibility)."""
    losses = as_choices(params.get("loss"), [DEFAULT_LOSS])
    return losses, as_choices(params.get("miner"), [catalog.NO_MINER])


def usable_miners(loss: str, miners: list[str], weight_miners: bool) -> list[str]:
    """The chosen miners that can go with `loss` (never an invalid combination)."""
    return [m for m in miners if catalog.compatibility(loss, m, weight_miners) != "invalid"]


def param_errors(params: Mapping[str, ParamValue], weight_miners: bool = False) -> list[str]:
    """Every problem of `search.params`, each naming its field, the value and what is allowed."""
    where = "search.params"
    problems = [f"{where}.{key}: {why}" for key in params if (why := paramkeys.key_error(key))]
    losses, miners = chosen(params)
    problems += _name_errors(f"{where}.loss", losses, list(catalog.LOSSES))
    problems += _name_errors(f"{where}.miner", miners, list(catalog.MINER_NAMES))
    problems += _tie_errors(params)
    for key, info in RECIPE_INFO.items():
        if key in params:
            problems += _bound_errors(f"{where}.{key}", params[key], info)
    if problems:
        return problems
    return _combination_errors(losses, miners, weight_miners) + _applicability_errors(
        params, losses, miners
    )


def _tie_errors(params: Mapping[str, ParamValue]) -> list[str]:
    """`margin` ties loss and miner; with `loss_margin`/`miner_margin` as well it is ambiguous."""
    return [
        f"search.params.{key}: give either `{key}` (loss and miner tied) or "
        f"`loss_{key}`/`miner_{key}` (searched separately), not both"
        for key in params
        if "." not in key
        and key not in paramkeys.RECIPE_KEYS
        and ({f"loss_{key}", f"miner_{key}"} & set(params))
    ]


def _name_errors(field: str, names: list[str], valid: list[str]) -> list[str]:
    return [
        f"{field}: unknown name {n!r}{catalog.did_you_mean(n, valid)}; allowed: {valid}"
        for n in names
        if n not in valid
    ]


def _combination_errors(losses: list[str], miners: list[str], weight_miners: bool) -> list[str]:
    """Every chosen loss needs a miner it can work with, or it could never be proposed."""
    problems = []
    for loss in losses:
        if not usable_miners(loss, miners, weight_miners):
            kind = catalog.loss_info(loss).consumes
            hint = " or set search.weight_miners: true" if kind == "weights" else ""
            problems.append(
                f"search.params.loss: {loss} works with none of the miners {miners} "
                f"(it consumes {kind}); add `none` to search.params.miner{hint}"
            )
    return problems


def _applicability_errors(
    params: Mapping[str, ParamValue], losses: list[str], miners: list[str]
) -> list[str]:
    """A key must set something among the chosen losses/miners, with values valid for each."""
    problems = []
    found = paramkeys.targets(params, losses, miners)
    trainable = [loss for loss in losses if catalog.loss_info(loss).trainable]
    if "proxy_lr_factor" in params and not trainable:
        problems.append(
            f"search.params.proxy_lr_factor: applies only to losses with trainable parameters; "
            f"none of {losses} has any"
        )
    for key, value in params.items():
        if key in paramkeys.RECIPE_KEYS:
            continue
        if not found[key]:
            problems.append(
                f"search.params.{key}: applies to none of the chosen losses {losses} "
                f"or miners {miners}"
            )
        problems += _one_distribution_errors(key, found[key])
        owners: dict[str, list[str]] = {}  # one message per problem, naming every class it hits
        for target in found[key]:
            for why in _bound_errors(f"search.params.{key}", value, target.info):
                owners.setdefault(why, []).append(target.cls_name)
        problems += [f"{why} (for {', '.join(names)})" for why, names in owners.items()]
    return problems


def _one_distribution_errors(key: str, hits: list[paramkeys.Target]) -> list[str]:
    """One key is one Optuna parameter: it cannot be an integer for one class and real for another
    (LargeMarginSoftmax's margin is an integer multiplier, TripletMargin's a distance)."""
    kinds = {
        ("choice" if t.info.choices else "integer" if t.info.integer else "real") for t in hits
    }
    if len(kinds) < 2:
        return []
    detail = ", ".join(
        f"{t.cls_name}.{t.param} ({'integer' if t.info.integer else 'real'})" for t in hits
    )
    return [
        f"search.params.{key}: sets parameters of different kinds: {detail}; "
        f"use class-scoped keys such as `{hits[0].cls_name}.{hits[0].param}`"
    ]


def _bound_errors(field: str, value: ParamValue, info: catalog.ParamInfo) -> list[str]:
    if isinstance(value, Range):
        if info.choices is not None:
            return [f"{field}: a range is not allowed; choose from {list(info.choices)}"]
        ends: list[Scalar] = [value.low, value.high]
    else:
        ends = list(value) if isinstance(value, list) else [value]
    return [f"{field}: {v!r} {why}" for v in ends if (why := info.check(v)) is not None]


def resolve_constant(value: Any) -> Any:
    """A one-element list is a constant, not a choice: no sampler dimension is spent on it."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value
