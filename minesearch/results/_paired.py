"""Which recipes are indistinguishable from the best, on common random numbers.

When every recipe is trained on the same units (a unit: one (seed, fold) run, the same initial
weights, batch order and classes for every recipe), the luck of a unit moves all recipes alike, so
the unit-wise *differences* between two recipes are far less noisy than their scores. The test is
therefore **paired**: a one-sided Student t-test of each recipe against the best-mean recipe on the
unit-wise differences. **One-sided**, because the only question is "is this recipe worse than the
best?" (the best mean is at least as good by construction). The comparisons are corrected with
**Holm's** step-down procedure: it controls the family-wise error (the chance of calling any
recipe worse when none is) at alpha without assuming the comparisons independent (they share the
best recipe's scores), and it rejects everything Bonferroni rejects and sometimes more.
Alpha is 0.05.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

ALPHA = 0.05


@dataclass(frozen=True)
class PairedComparison:
    """Recipes (rows of the scores) against the best mean, unit by unit."""

    means: list[float]  # per recipe, over units
    best: int  # the row with the best mean (the first of ties)
    p_values: list[float]  # one-sided paired t-test against `best`; nan for `best` itself
    worse: list[bool]  # rejected by Holm at alpha: distinguishably worse than `best`
    units: int
    alpha: float
    note: str  # why nothing could be told apart, when that is so; else ""

    @property
    def indistinguishable(self) -> list[int]:
        """Rows not shown worse than the best (the best included), in row order."""
        return [i for i, worse in enumerate(self.worse) if not worse]

    @property
    def choice(self) -> int:
        """The best mean in the indistinguishable set: the best row itself."""
        return self.best


def compare_to_best(
    scores: np.ndarray | list[list[float]],
    mode: Literal["max", "min"] = "max",
    alpha: float = ALPHA,
) -> PairedComparison:
    """The paired comparison of `scores` [recipes, units]: every recipe scored on the same units.

    Scores must be finite: leave out a recipe whose run failed on some unit. With one unit
    nothing can be told apart (a difference has no variance to judge it by): every recipe is in
    the set, and `note` says so. Differences with zero variance are exact: a constant positive
    difference is certainly worse (p = 0), none at all is not worse (p = 1).
    """
    x = np.asarray(scores, dtype=float)  # [R, U]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"scores must be a recipes x units matrix, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores must be finite: leave out the recipes whose runs failed")
    sign = 1.0 if mode == "max" else -1.0
    means = [float(m) for m in x.mean(axis=1)]
    best = int(np.argmax(sign * x.mean(axis=1)))
    recipes, units = x.shape
    if units == 1:
        note = "one unit: differences have no variance, nothing can be told apart"
        return PairedComparison(
            means, best, [math.nan] * recipes, [False] * recipes, 1, alpha, note
        )
    diffs = sign * (x[best] - x)  # [R, U]: > 0 where a recipe did worse than the best
    others = [i for i in range(recipes) if i != best]
    p_values = [math.nan] * recipes
    for i in others:
        p_values[i] = one_sided_p(diffs[i])
    worse = [False] * recipes
    for i, rejected in zip(others, holm([p_values[i] for i in others], alpha), strict=True):
        worse[i] = rejected
    return PairedComparison(means, best, p_values, worse, units, alpha, "")


def one_sided_p(diffs: np.ndarray) -> float:
    """P(T >= t) for t = mean / (sd / sqrt(n)) of the differences, T ~ Student t(n - 1)."""
    from scipy import stats  # only where a test is computed: its import is slow

    n = len(diffs)
    mean, sd = float(np.mean(diffs)), float(np.std(diffs, ddof=1))
    if sd == 0.0 or not math.isfinite(mean / sd):  # exact: no noise to weigh the mean against
        return 0.0 if mean > 0 else 1.0
    t = mean / (sd / math.sqrt(n))
    return float(stats.t.sf(t, n - 1))


def holm(p_values: list[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down rejections: the i-th smallest p (from 0) is rejected while every smaller
    one was and it is at most alpha / (m - i)."""
    m = len(p_values)
    rejected = [False] * m
    for rank, i in enumerate(sorted(range(m), key=lambda j: p_values[j])):
        if not p_values[i] <= alpha / (m - rank):
            break
        rejected[i] = True
    return rejected
