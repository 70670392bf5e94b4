"""Datasets and the class-disjoint split.

Metric learning is judged on retrieval among classes the model never saw in training (Musgrave et
al., "A Metric Learning Reality Check", 2020), so the split here is by *class*, not by sample. A
loaded dataset is a plain pair of arrays: workers under Ray receive it (or the arguments to load it)
explicitly, never through module state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from minesearch.inputs import InputKind

__all__ = [
    "SOURCES",
    "DataError",
    "Dataset",
    "Split",
    "load_digits_dataset",
    "split_by_class",
    "split_by_column",
]

SourceName = Literal["digits", "parquet", "image_folder", "text_topics"]
SOURCES: tuple[SourceName, ...] = ("digits", "parquet", "image_folder", "text_topics")


class DataError(ValueError):
    """Bad data or data settings, reported against the space-file field that caused it.

    A ValueError so that callers validating a whole config can treat it like any other bad value;
    `field` lets them attach the message to the right key (e.g. ``data.split``).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, eq=False)
class Dataset:
    """Inputs and their class labels, in memory, in the dtypes the model and the losses expect.

    The `Source` of small data sets (digits): `take` is plain indexing.

    `labels` keep the original class ids (not remapped per split) so that a class can be traced from
    the split back to the file; `class_names[i]` is the original name of class id `i` when the file
    stored labels as strings.
    """

    inputs: np.ndarray  # float32; [N, D] feature vectors or [N, C, H, W] images
    labels: np.ndarray  # int64 [N]
    name: str
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.labels.ndim != 1 or len(self.labels) != len(self.inputs):
            raise DataError(
                "data",
                f"dataset {self.name!r}: labels must be 1-D with one entry per input "
                f"(inputs {self.inputs.shape}, labels {self.labels.shape})",
            )

    @property
    def kind(self) -> InputKind:
        return "tensor"

    @property
    def splits(self) -> np.ndarray | None:
        return None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.inputs[rows]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample: what the model's first layer has to accept."""
        return tuple(int(d) for d in self.inputs.shape[1:])

    def subset(self, idx: np.ndarray) -> Dataset:
        """Rows `idx` (copied), keeping the original class ids and names."""
        return Dataset(self.inputs[idx], self.labels[idx], self.name, self.class_names)


def load_digits_dataset() -> Dataset:
    """scikit-learn's 8x8 digits: bundled with sklearn, so tests and quickstart need no download."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float32) / 16.0  # [N, 8, 8], pixel values 0..16
    inputs = images[:, None, :, :]  # [N, 1, 8, 8]
    return Dataset(inputs, np.asarray(digits.target, dtype=np.int64), "digits")


SPLIT_NAMES = ("train", "val", "test")


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
    _check_fraction("val", val)
    _check_fraction("test", test)
    classes = np.unique(labels)
    n_val, n_test = _class_count(val, len(classes)), _class_count(test, len(classes))
    _check_part_sizes(len(classes), len(classes) - n_val - n_test, n_val, n_test)
    shuffled = np.random.default_rng(seed).permutation(classes)
    val_cls, test_cls = shuffled[:n_val], shuffled[n_val : n_val + n_test]
    train_cls = shuffled[n_val + n_test :]
    return Split(_rows_of(labels, train_cls), _rows_of(labels, val_cls), _rows_of(labels, test_cls))


def split_by_column(splits: np.ndarray, labels: np.ndarray) -> Split:
    """The data's own split (a `train`/`val`/`test` column): used as given, classes may overlap.

    Train and val each need at least 2 classes, as in `split_by_class`.
    """
    parts = {name: np.flatnonzero(splits == name).astype(np.int64) for name in SPLIT_NAMES}
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


def _rows_of(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(labels, classes)).astype(np.int64)
