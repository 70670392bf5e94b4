"""The class-disjoint split of a labelled data set into train, val and test rows.

Metric learning is judged on retrieval among classes the model never saw in training (Musgrave et
al., "A Metric Learning Reality Check", 2020), so the split here is by *class*, not by sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minesearch.config.vocab import SPLIT_PARTS
from minesearch.data._errors import DataError


@dataclass(frozen=True, eq=False)
class Split:
    """Row indices of the three parts; their classes are disjoint (see `split_by_class`)."""

    train: np.ndarray  # int64 row indices, ascending
    val: np.ndarray
    test: np.ndarray

    def classes(self, labels: np.ndarray) -> dict[str, list[int]]:
        """Which classes landed in each part: logged with the trial so a split can be audited."""
        return {
            part: sorted(int(c) for c in np.unique(labels[idx]))
            for part, idx in (("train", self.train), ("val", self.val), ("test", self.test))
        }


def split_by_class(labels: np.ndarray, val: float, test: float, seed: int) -> Split:
    """Give whole classes to train, val and test, so retrieval is scored on unseen classes.

    The sorted classes are shuffled with `np.random.default_rng(seed)`; the first round(val·C) go
    to val (at least 1 when val > 0), the next round(test·C) to test (at least 1 when test > 0),
    the rest to train. Each non-empty part needs at least 2 classes: retrieval within a single
    class is trivially perfect and says nothing. `test=0` leaves test empty.
    """
    labels = np.asarray(labels)
    val_cls, test_cls, train_cls = _classes_by_part(labels, val, test, seed)
    return Split(_rows_of(labels, train_cls), _rows_of(labels, val_cls), _rows_of(labels, test_cls))


def split_folds(labels: np.ndarray, val: float, test: float, seed: int, folds: int) -> list[Split]:
    """K class-disjoint folds over the non-test classes, for a score that is not one split's luck.

    The test classes are `split_by_class`'s for the same seed, so no fold trains or validates on
    them. With K = 1 the one fold *is* `split_by_class` (val the `val` fraction). With K >= 2
    `val` is unused: the non-test classes, in the seed's shuffled order, are cut into K groups
    (sizes differ by at most one); fold k validates on group k and trains on the others, so every
    non-test class is validated on exactly once.
    """
    labels = np.asarray(labels)
    if folds < 1:
        raise DataError("search.folds", f"must be at least 1, got {folds}")
    if folds == 1:
        return [split_by_class(labels, val, test, seed)]
    val_cls, test_cls, train_cls = _classes_by_part(labels, val, test, seed)
    non_test = np.concatenate([val_cls, train_cls])  # the shuffled order, test classes taken out
    _check_fold_sizes(len(non_test), folds)
    groups = np.array_split(non_test, folds)
    test_rows = _rows_of(labels, test_cls)
    return [
        Split(
            _rows_of(labels, np.concatenate(groups[:k] + groups[k + 1 :])),
            _rows_of(labels, g),
            test_rows,
        )
        for k, g in enumerate(groups)
    ]


def _classes_by_part(
    labels: np.ndarray, val: float, test: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(val, test, train) classes: the sorted classes shuffled with the seed, cut in that order."""
    _check_fraction("val", val)
    _check_fraction("test", test)
    classes = np.unique(labels)
    n_val, n_test = _class_count(val, len(classes)), _class_count(test, len(classes))
    _check_part_sizes(len(classes), len(classes) - n_val - n_test, n_val, n_test)
    shuffled = np.random.default_rng(seed).permutation(classes)
    return shuffled[:n_val], shuffled[n_val : n_val + n_test], shuffled[n_val + n_test :]


def split_by_column(splits: np.ndarray, labels: np.ndarray) -> Split:
    """The data's own split (a `train`/`val`/`test` column): used as given, classes may overlap.

    Train and val each need at least 2 classes, as in `split_by_class`.
    """
    parts = {name: np.flatnonzero(splits == name).astype(np.int64) for name in SPLIT_PARTS}
    counts = {name: len(np.unique(labels[rows])) for name, rows in parts.items()}
    if counts["train"] < 2 or counts["val"] < 2 or counts["test"] == 1:
        raise DataError(
            "data.split_column",
            f"the split column gives classes train {counts['train']}, val {counts['val']}, test "
            f"{counts['test']}; train and val need at least 2 classes each, test 0 or at least 2",
        )
    return Split(parts["train"], parts["val"], parts["test"])


def _check_fraction(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise DataError(
            "data.split", f"{name} must be a fraction of the classes in [0, 1), got {value}"
        )


def _class_count(fraction: float, n_classes: int) -> int:
    """round(fraction·C), but never rounding a requested part down to nothing."""
    if fraction <= 0.0:
        return 0
    return max(1, round(fraction * n_classes))


def _check_part_sizes(n_classes: int, n_train: int, n_val: int, n_test: int) -> None:
    sizes = f"{n_classes} classes give train {n_train}, val {n_val}, test {n_test}"
    if n_train < 2 or n_val < 2 or 0 < n_test < 2:
        raise DataError(
            "data.split",
            f"{sizes}; train and val need at least 2 classes each, and test either 0 or at "
            "least 2 (retrieval within one class measures nothing): change val/test or use a "
            "dataset with more classes",
        )


def _check_fold_sizes(n_classes: int, folds: int) -> None:
    """Each fold's val group and train part need 2 classes, as any split's parts do."""
    smallest_val = n_classes // folds
    smallest_train = n_classes - -(-n_classes // folds)  # all but the largest group
    if smallest_val < 2 or smallest_train < 2:
        raise DataError(
            "search.folds",
            f"{folds} folds over {n_classes} non-test classes leave a fold {smallest_val} val and "
            f"{smallest_train} train classes; each needs at least 2: use 1 to "
            f"{max(1, n_classes // 2)} folds (1 keeps data.split's val fraction)",
        )


def _rows_of(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(labels, classes)).astype(np.int64)
