"""What minesearch knows about pytorch-metric-learning losses and miners.

PML converts miner output silently (pairs <-> triplets) and does not check `type_of_triplets`
(a typo behaves like ``all``), so the catalog is where names, tuple kinds, parameter defaults and
valid values are checked before any compute is spent. It is an explicit registry by name: an unknown
name raises an error that lists the valid ones.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pytorch_metric_learning import losses, miners

TupleKind = Literal["pairs", "triplets"]
Compatibility = Literal["native", "converted", "invalid"]

NO_MINER = "none"


@dataclass(frozen=True)
class ParamInfo:
    """One searchable constructor argument, with PML's default and the values that make sense."""

    default: float | str
    low: float | None = None  # inclusive lower bound for numbers
    high: float | None = None  # inclusive upper bound for numbers
    choices: tuple[str, ...] | None = None  # closed set for strings

    def check(self, value: Any) -> str | None:
        """Return why `value` is not allowed, or None when it is."""
        if self.choices is not None:
            if value not in self.choices:
                return f"must be one of {list(self.choices)}{did_you_mean(value, self.choices)}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if self.low is not None and value < self.low:
            return f"must be >= {self.low}"
        if self.high is not None and value > self.high:
            return f"must be <= {self.high}"
        return None


@dataclass(frozen=True)
class LossInfo:
    cls: type[torch.nn.Module]
    consumes: TupleKind
    params: Mapping[str, ParamInfo] = field(default_factory=dict)


@dataclass(frozen=True)
class MinerInfo:
    cls: type[torch.nn.Module]
    emits: TupleKind
    params: Mapping[str, ParamInfo] = field(default_factory=dict)


_NONNEG = 0.0

LOSSES: Mapping[str, LossInfo] = {
    "TripletMarginLoss": LossInfo(
        losses.TripletMarginLoss, "triplets", {"margin": ParamInfo(0.05, low=_NONNEG)}
    ),
    "ContrastiveLoss": LossInfo(
        losses.ContrastiveLoss,
        "pairs",
        {"pos_margin": ParamInfo(0.0, low=_NONNEG), "neg_margin": ParamInfo(1.0, low=_NONNEG)},
    ),
    "MultiSimilarityLoss": LossInfo(
        losses.MultiSimilarityLoss,
        "pairs",
        {
            "alpha": ParamInfo(2.0, low=_NONNEG),
            "beta": ParamInfo(50.0, low=_NONNEG),
            "base": ParamInfo(0.5, low=-1.0, high=1.0),
        },
    ),
}

TRIPLET_TYPES = ("all", "hard", "semihard", "easy")

MINERS: Mapping[str, MinerInfo] = {
    "TripletMarginMiner": MinerInfo(
        miners.TripletMarginMiner,
        "triplets",
        {
            "margin": ParamInfo(0.2, low=_NONNEG),
            "type_of_triplets": ParamInfo("all", choices=TRIPLET_TYPES),
        },
    ),
    "BatchHardMiner": MinerInfo(miners.BatchHardMiner, "triplets"),
    "MultiSimilarityMiner": MinerInfo(
        miners.MultiSimilarityMiner, "pairs", {"epsilon": ParamInfo(0.1, low=_NONNEG)}
    ),
}

MINER_NAMES: tuple[str, ...] = (NO_MINER, *MINERS)


class UnknownNameError(ValueError):
    """A loss or miner name that the catalog does not know; the message lists the valid ones."""


def did_you_mean(given: Any, valid: tuple[str, ...] | list[str]) -> str:
    """A ' (did you mean X?)' suffix for near-miss names, or an empty string."""
    if not isinstance(given, str):
        return ""
    close = difflib.get_close_matches(given, list(valid), n=1, cutoff=0.6)
    if not close:
        lowered = {v.lower().replace("-", "").replace("_", ""): v for v in valid}
        key = given.lower().replace("-", "").replace("_", "")
        close = [lowered[key]] if key in lowered else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def loss_info(name: str) -> LossInfo:
    if name not in LOSSES:
        raise UnknownNameError(
            f"unknown loss {name!r}{did_you_mean(name, list(LOSSES))}; valid: {sorted(LOSSES)}"
        )
    return LOSSES[name]


def miner_info(name: str) -> MinerInfo | None:
    """None for the 'none' miner (all pairs/triplets of the batch)."""
    if name == NO_MINER:
        return None
    if name not in MINERS:
        raise UnknownNameError(
            f"unknown miner {name!r}{did_you_mean(name, MINER_NAMES)}; valid: {list(MINER_NAMES)}"
        )
    return MINERS[name]


def compatibility(loss: str, miner: str) -> Compatibility:
    """native: miner output is what the loss consumes; converted: PML converts it (recorded)."""
    consumes = loss_info(loss).consumes  # checked first: an unknown loss is never "native"
    m = miner_info(miner)
    if m is None or m.emits == consumes:
        return "native"
    return "converted"


def build_loss(name: str, params: Mapping[str, Any]) -> torch.nn.Module:
    return loss_info(name).cls(**params)


def build_miner(name: str, params: Mapping[str, Any]) -> torch.nn.Module | None:
    info = miner_info(name)
    return None if info is None else info.cls(**params)
