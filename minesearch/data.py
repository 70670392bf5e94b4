"""Datasets and the class-disjoint split.

Metric learning is judged on retrieval among classes the model never saw in training (Musgrave et
al., "A Metric Learning Reality Check", 2020), so the split here is by *class*, not by sample. A
loaded dataset is a plain pair of arrays: workers under Ray receive it (or the arguments to load it)
explicitly, never through module state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "DataError",
    "Dataset",
    "Split",
    "load_dataset",
    "load_digits_dataset",
    "load_parquet_dataset",
    "split_by_class",
]

Source = Literal["digits", "parquet"]
SOURCES: tuple[Source, ...] = ("digits", "parquet")


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
    """Inputs and their class labels, already in the dtypes the model and the losses expect.

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

    def __len__(self) -> int:
        return len(self.labels)

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


def load_parquet_dataset(path: str | Path, label_column: str, features_column: str) -> Dataset:
    """One row per sample: an int or string label and a list of numbers of the same length.

    Every problem is raised as a DataError naming the file, the column and (where it applies) the
    first offending row, because a bad row found mid-search would otherwise fail every trial.
    """
    path = Path(path)
    table = _read_columns(path, label_column, features_column)
    if table.num_rows == 0:
        raise DataError("data.path", f"{path}: the file has no rows")
    where = f"{path}, column {features_column!r}"
    inputs = _features_to_array(table.column(features_column).combine_chunks(), where)
    where = f"{path}, column {label_column!r}"
    labels, class_names = _labels_to_array(table.column(label_column).combine_chunks(), where)
    return Dataset(inputs, labels, path.stem, class_names)


def load_dataset(
    source: Source,
    path: str | None = None,
    label_column: str = "label",
    features_column: str = "features",
) -> Dataset:
    """Load the dataset a space file's `data` section names."""
    if source == "digits":
        if path is not None:
            raise DataError("data.path", "is only used with source 'parquet'")
        return load_digits_dataset()
    if source == "parquet":
        if path is None:
            raise DataError("data.path", "source 'parquet' needs the path of a Parquet file")
        return load_parquet_dataset(path, label_column, features_column)
    raise DataError("data.source", f"unknown source {source!r}; valid: {', '.join(SOURCES)}")


def _read_columns(path: Path, label_column: str, features_column: str) -> pa.Table:
    """Read just the two columns we need, after checking they exist (listing those that do)."""
    if not path.is_file():
        raise DataError("data.path", f"{path}: no such file")
    if label_column == features_column:
        raise DataError(
            "data.label_column", f"{path}: label and features column are both {label_column!r}"
        )
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as err:
        raise DataError("data.path", f"{path}: not a readable Parquet file ({err})") from err
    for field, column in (
        ("data.label_column", label_column),
        ("data.features_column", features_column),
    ):
        if column not in names:
            raise DataError(field, f"{path}: no column {column!r}; columns: {', '.join(names)}")
    try:
        return pq.read_table(path, columns=[label_column, features_column])
    except (pa.ArrowException, OSError) as err:
        raise DataError("data.path", f"{path}: could not read Parquet data ({err})") from err


def _is_list_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def _first_true(mask: pa.Array) -> int:
    """Index of the first true entry: used to name the row a problem starts at."""
    return int(np.flatnonzero(mask.to_numpy(zero_copy_only=False))[0])


def _features_to_array(arr: pa.Array, where: str) -> np.ndarray:
    """list<number> column → float32 [N, D]; rejects nulls, ragged rows and non-finite values."""
    field = "data.features_column"
    t = arr.type
    if not _is_list_type(t) or not (
        pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)
    ):
        raise DataError(field, f"{where}: expected a list of numbers per row, found type {t}")
    if arr.null_count:
        raise DataError(field, f"{where}: row {_first_true(arr.is_null())} is null")
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)  # [N]
    ragged = lengths != lengths[0]
    if ragged.any():
        row = int(np.flatnonzero(ragged)[0])
        raise DataError(
            field,
            f"{where}: rows must all have the same length; row 0 has {lengths[0]}, "
            f"row {row} has {lengths[row]}",
        )
    if lengths[0] == 0:
        raise DataError(field, f"{where}: feature lists are empty")
    values = arr.flatten()  # [N * D]
    if values.null_count:
        row = pc.list_parent_indices(arr)[_first_true(values.is_null())].as_py()
        raise DataError(field, f"{where}: row {row} contains a null value")
    inputs = values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(arr), -1)
    bad = ~np.isfinite(inputs).all(axis=1)
    if bad.any():
        raise DataError(field, f"{where}: row {int(np.flatnonzero(bad)[0])} has a NaN or infinity")
    return inputs


def _labels_to_array(arr: pa.Array, where: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """int or string column → int64 [N]; strings become indices into their sorted unique names."""
    field = "data.label_column"
    if pa.types.is_dictionary(arr.type):  # e.g. a pandas categorical
        arr = arr.dictionary_decode()
    if arr.null_count:
        raise DataError(field, f"{where}: row {_first_true(arr.is_null())} has no label")
    t = arr.type
    if pa.types.is_integer(t):
        return arr.to_numpy(zero_copy_only=False).astype(np.int64), None
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        names, labels = np.unique(np.asarray(arr.to_pylist(), dtype=object), return_inverse=True)
        return labels.astype(np.int64).reshape(-1), tuple(str(n) for n in names)
    raise DataError(field, f"{where}: labels must be integers or strings, found type {t}")


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
