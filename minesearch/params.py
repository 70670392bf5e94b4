"""The value forms of `search.params` and their checks against the catalog.

A list is a categorical choice, ``{low, high[, log]}`` a range, a scalar a constant. Parameter names
are the recipe's own (``loss``, ``miner``, ``lr``), the margin knobs (``margin`` ties the loss and
miner margins; ``loss_margin`` / ``miner_margin`` search them separately) and any constructor
argument that the catalog declares for a loss or miner (``type_of_triplets``, ``pos_margin`` ...).
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

RECIPE_KEYS = ("loss", "miner", "lr")
MARGIN_KEYS = ("margin", "loss_margin", "miner_margin")
DEFAULT_LR = 1.0e-3


def catalog_param_names() -> set[str]:
    """Every constructor argument the catalog declares, on any loss or miner."""
    declared = [info.params for info in catalog.LOSSES.values()]
    declared += [info.params for info in catalog.MINERS.values()]
    return {name for params in declared for name in params}


def allowed_param_names() -> list[str]:
    return sorted({*RECIPE_KEYS, *MARGIN_KEYS, *catalog_param_names()})


def as_choices(value: ParamValue | None, default: Sequence[str]) -> list[str]:
    """The categorical options a name-valued parameter (loss, miner) may take."""
    if value is None:
        return list(default)
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def param_errors(params: Mapping[str, ParamValue]) -> list[str]:
    """Every problem of `search.params`, each naming its field, the value and what is allowed."""
    where = "search.params"
    allowed = allowed_param_names()
    problems = [
        f"{where}.{key}: unknown parameter{catalog.did_you_mean(key, allowed)}; allowed: {allowed}"
        for key in params
        if key not in allowed
    ]
    losses = as_choices(params.get("loss"), ["TripletMarginLoss"])
    miners = as_choices(params.get("miner"), [catalog.NO_MINER])
    problems += _name_errors(f"{where}.loss", losses, list(catalog.LOSSES))
    problems += _name_errors(f"{where}.miner", miners, list(catalog.MINER_NAMES))
    if "margin" in params and ("loss_margin" in params or "miner_margin" in params):
        problems.append(
            f"{where}.margin: give either `margin` (loss and miner margins tied) or "
            "`loss_margin`/`miner_margin` (searched separately), not both"
        )
    if "lr" in params:
        problems += _bound_errors(f"{where}.lr", params["lr"], catalog.ParamInfo(DEFAULT_LR, 1e-12))
    if problems:
        return problems
    return problems + _applicability_errors(params, losses, miners)


def _name_errors(field: str, names: list[str], valid: list[str]) -> list[str]:
    return [
        f"{field}: unknown name {n!r}{catalog.did_you_mean(n, valid)}; allowed: {valid}"
        for n in names
        if n not in valid
    ]


def _applicability_errors(
    params: Mapping[str, ParamValue], losses: list[str], miners: list[str]
) -> list[str]:
    """A catalog parameter must apply to some chosen loss or miner, and its values must be valid."""
    infos: dict[str, list[catalog.ParamInfo]] = {}
    for loss in losses:
        for name, info in catalog.loss_info(loss).params.items():
            infos.setdefault("loss_margin" if name == "margin" else name, []).append(info)
    for miner in miners:
        m = catalog.miner_info(miner)
        for name, info in (m.params if m else {}).items():
            infos.setdefault("miner_margin" if name == "margin" else name, []).append(info)
    if "loss_margin" in infos or "miner_margin" in infos:
        infos["margin"] = infos.get("loss_margin", []) + infos.get("miner_margin", [])
    problems = []
    for key, value in params.items():
        if key in RECIPE_KEYS:
            continue
        if key not in infos:
            problems.append(
                f"search.params.{key}: applies to none of the chosen losses {losses} "
                f"or miners {miners}"
            )
            continue
        problems += _bound_errors(f"search.params.{key}", value, infos[key][0])
    return problems


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
