"""The vocabulary of the catalog: parameter, loss and miner descriptions, and name suggestions.

Kept apart from the registry data (`_entries`) and the lookups (`_lookup`) so that each reads on its
own. Nothing here imports torch: a loss or miner is described by its PML class *name* (and, for a
miner the catalog reimplements, its module), resolved to the class only when one is built
(`LossInfo.cls`, `MinerInfo.cls`).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from torch import nn

TupleKind = Literal["pairs", "triplets"]
# What a loss consumes from a miner. pairs/triplets: tuples (PML converts the other kind);
# weights: the loss only turns a miner's output into per-sample weights (lmu.convert_to_weights);
# none: the loss raises ValueError on any miner output.
LossKind = Literal["pairs", "triplets", "weights", "none"]
Compatibility = Literal["native", "converted", "invalid"]
# The distance PML builds by default (get_default_distance); every one L2-normalises embeddings
# first, so "dot" equals cosine similarity. "squared_lp" is LpDistance(power=2).
Distance = Literal["lp", "squared_lp", "cosine", "dot", "snr"]
# What a trainable loss's constructor argument receives: the training classes or embedding width.
Size = Literal["num_classes", "embedding_size"]

NO_MINER = "none"


@dataclass(frozen=True)
class ParamInfo:
    """One searchable constructor argument, with PML's default and the values that make sense."""

    default: float | str
    low: float | None = None  # lower bound for numbers (inclusive unless low_open)
    high: float | None = None  # upper bound for numbers (inclusive unless high_open)
    choices: tuple[str, ...] | None = None  # closed set for strings
    integer: bool = False  # PML truncates or sizes tensors with it: search with suggest_int
    low_open: bool = False  # e.g. a temperature or scale must be > 0, not >= 0
    high_open: bool = False
    # Set only where PML's signature has no usable default (a required argument, or None meaning
    # "derived"): where the catalog's default comes from.
    default_note: str | None = None

    def check(self, value: Any) -> str | None:
        """Return why `value` is not allowed, or None when it is."""
        if self.choices is not None:
            if value not in self.choices:
                return f"must be one of {list(self.choices)}{did_you_mean(value, self.choices)}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if not math.isfinite(value):
            return "must be a finite number"
        if self.integer and not float(value).is_integer():
            return "must be an integer"
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return f"must be {'>' if self.low_open else '>='} {self.low}"
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return f"must be {'<' if self.high_open else '<='} {self.high}"
        return None


ParamConstraint = Callable[[Mapping[str, Any]], str | None]
BatchRule = Callable[[int, int], str | None]


def pml_class(module: Literal["losses", "miners"], name: str) -> type[nn.Module]:
    """The PML class `name` of `pytorch_metric_learning.<module>`, imported on first use."""
    return import_class(f"pytorch_metric_learning.{module}", name)


def import_class(module: str, name: str) -> type[nn.Module]:
    """The class `name` of `module`, imported on first use."""
    import importlib

    found: type[nn.Module] = getattr(importlib.import_module(module), name)
    return found


@dataclass(frozen=True)
class LossInfo:
    class_name: str  # in pytorch_metric_learning.losses
    consumes: LossKind
    params: Mapping[str, ParamInfo] = field(default_factory=dict)
    # Owns parameters (proxies, class weights): needs the training classes and embedding width,
    # and its own optimiser param group.
    trainable: bool = False
    distance: Distance = "lp"
    # Constructor argument -> what it receives; filled in by build_loss for trainable losses.
    sizes: Mapping[str, Size] = field(default_factory=dict)
    # Constructor arguments the entry pins (not searched), e.g. MarginLoss's learn_beta.
    fixed: Mapping[str, Any] = field(default_factory=dict)
    # What (classes, per_class) batch the loss computes correctly on, if it is picky.
    batch_rule: BatchRule | None = None
    note: str = ""  # a caveat worth reading before searching it

    @property
    def cls(self) -> type[nn.Module]:
        return pml_class("losses", self.class_name)


@dataclass(frozen=True)
class MinerInfo:
    class_name: str  # in pytorch_metric_learning.miners (or in `module`)
    emits: TupleKind
    params: Mapping[str, ParamInfo] = field(default_factory=dict)
    distance: Distance = "lp"
    constraint: ParamConstraint | None = None  # checks between parameters, as PML's __init__ does
    # The module of a drop-in subclass the catalog builds instead of PML's class (same name, same
    # arguments and output), e.g. TripletMarginMiner in bounded memory; None: PML's own.
    module: str | None = None

    @property
    def cls(self) -> type[nn.Module]:
        if self.module is not None:
            return import_class(self.module, self.class_name)
        return pml_class("miners", self.class_name)


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
