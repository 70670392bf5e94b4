"""Loading (digits, Parquet through ParquetSource), its error messages, and the class-disjoint
split."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from minesearch.data import DataError, Split, split_by_class
from minesearch.data.sources import Dataset, ParquetSource, load_digits_dataset


def load_parquet_dataset(path: Path, label: str, features: str) -> Dataset:
    """The whole file through the lazy source, as arrays (the source's own tests cover laziness)."""
    source = ParquetSource.open(str(path), label, features, cache_dir=str(path.parent / "cache"))
    inputs = source.take(np.arange(len(source)))
    assert isinstance(inputs, np.ndarray)
    return Dataset(inputs, source.labels, source.name, source.class_names)


def _write(path: Path, columns: dict[str, pa.Array]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


# --- digits -----------------------------------------------------------------------------------


def test_digits_shapes_and_range() -> None:
    ds = load_digits_dataset()
    assert ds.inputs.shape == (1797, 1, 8, 8)
    assert ds.inputs.dtype == np.float32 and ds.labels.dtype == np.int64
    assert ds.input_shape == (1, 8, 8)
    assert ds.inputs.min() >= 0.0 and ds.inputs.max() <= 1.0 and ds.inputs.max() == 1.0
    assert sorted(np.unique(ds.labels)) == list(range(10))
    assert ds.name == "digits" and ds.class_names is None


def test_digits_are_sklearns_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read from sklearn's CSV without importing sklearn: the same arrays as `load_digits`, and
    sklearn's own loader when the file cannot be found."""
    from sklearn.datasets import load_digits

    from minesearch.data.sources import _digits

    reference = load_digits()
    expected = (np.asarray(reference.images, dtype=np.float32) / 16.0)[:, None]
    for ds in (load_digits_dataset(), _without_the_csv(monkeypatch, _digits)):
        np.testing.assert_array_equal(ds.inputs, expected)
        np.testing.assert_array_equal(ds.labels, reference.target)


def _without_the_csv(monkeypatch: pytest.MonkeyPatch, module: Any) -> Dataset:
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda name: None)
    return load_digits_dataset()


def test_digits_subset_and_take() -> None:
    ds = load_digits_dataset()
    np.testing.assert_array_equal(ds.take(np.array([5, 0])), ds.inputs[[5, 0]])
    sub = ds.subset(np.array([0, 5, 7]))
    assert sub.inputs.shape == (3, 1, 8, 8)
    np.testing.assert_array_equal(sub.labels, ds.labels[[0, 5, 7]])
    assert sub.name == ds.name


def test_dataset_rejects_mismatched_lengths() -> None:
    with pytest.raises(DataError, match="labels"):
        Dataset(np.zeros((3, 2), np.float32), np.zeros(2, np.int64), "x")


# --- parquet: round trips -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "features_type", [pa.list_(pa.float32()), pa.list_(pa.float64(), 3), pa.large_list(pa.int32())]
)
def test_parquet_round_trip_int_labels(tmp_path: Path, features_type: pa.DataType) -> None:
    rows = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [0, 0, 1]]
    path = _write(
        tmp_path / "vecs.parquet",
        {"label": pa.array([3, 1, 3, 2]), "features": pa.array(rows, type=features_type)},
    )
    ds = load_parquet_dataset(path, "label", "features")
    np.testing.assert_array_equal(ds.inputs, np.array(rows, np.float32))
    assert ds.inputs.dtype == np.float32 and ds.input_shape == (3,)
    np.testing.assert_array_equal(ds.labels, [3, 1, 3, 2])
    assert ds.labels.dtype == np.int64
    assert ds.class_names is None and ds.name == "vecs"


def test_parquet_string_labels_map_to_sorted_ids(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "s.parquet",
        {
            "species": pa.array(["cat", "ant", "cat", "bee"]),
            "emb": pa.array([[0.5, 1.0]] * 4, type=pa.list_(pa.float32(), 2)),
        },
    )
    ds = load_parquet_dataset(path, "species", "emb")
    assert ds.class_names == ("ant", "bee", "cat")
    np.testing.assert_array_equal(ds.labels, [2, 0, 2, 1])


def test_parquet_dictionary_labels(tmp_path: Path) -> None:
    labels = pa.array(["b", "a", "b"]).dictionary_encode()
    path = _write(tmp_path / "d.parquet", {"label": labels, "features": pa.array([[1.0]] * 3)})
    ds = load_parquet_dataset(path, "label", "features")
    assert ds.class_names == ("a", "b")
    np.testing.assert_array_equal(ds.labels, [1, 0, 1])


# --- parquet: errors ------------------------------------------------------------------------------


def test_parquet_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.parquet"
    with pytest.raises(DataError, match=r"nope\.parquet") as err:
        load_parquet_dataset(path, "label", "features")
    assert err.value.field == "data.path"


def test_parquet_not_parquet(tmp_path: Path) -> None:
    path = tmp_path / "fake.parquet"
    path.write_text("label,features\n1,2\n")
    with pytest.raises(DataError, match=r"fake\.parquet.*not a readable Parquet"):
        load_parquet_dataset(path, "label", "features")


@pytest.mark.parametrize(
    ("label_column", "features_column", "field", "missing"),
    [("y", "features", "data.label_column", "'y'"), ("label", "x", "data.input_column", "'x'")],
)
def test_parquet_missing_column(
    tmp_path: Path, label_column: str, features_column: str, field: str, missing: str
) -> None:
    path = _write(tmp_path / "m.parquet", {"label": [1, 2], "features": [[1.0], [2.0]]})
    with pytest.raises(
        DataError, match=re.escape(f"m.parquet: no column {missing}; columns: label")
    ) as err:
        load_parquet_dataset(path, label_column, features_column)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (pa.array([["a"], ["b"]]), "must hold numbers"),
        (pa.array([1.0, 2.0]), "list of numbers"),
        (pa.array([[1.0, 2.0], [3.0]]), r"row 1 \(global row 1\) has 1 values"),
        (pa.array([[1.0], None]), r"row 1 \(global row 1\) is null"),
        (
            pa.array([[1.0], [None]], type=pa.list_(pa.float32())),
            r"row 1 \(global row 1\) contains a null",
        ),
        (pa.array([[1.0], [float("nan")]]), r"row 1 \(global row 1\) has a NaN"),
        (pa.array([[], []], type=pa.list_(pa.float32())), "empty"),
    ],
)
def test_parquet_bad_features(tmp_path: Path, features: pa.Array, message: str) -> None:
    path = _write(tmp_path / "f.parquet", {"label": [1, 2], "vec": features})
    with pytest.raises(DataError, match=message) as err:
        load_parquet_dataset(path, "label", "vec")
    assert err.value.field == "data.input_column"
    assert "f.parquet" in str(err.value) and "'vec'" in str(err.value)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (pa.array([1, None]), r"row 1 \(global row 1\) is null"),
        (pa.array([1.5, 2.0]), "integers or strings"),
    ],
)
def test_parquet_bad_labels(tmp_path: Path, labels: pa.Array, message: str) -> None:
    path = _write(tmp_path / "l.parquet", {"cls": labels, "features": [[1.0], [2.0]]})
    with pytest.raises(DataError, match=message) as err:
        load_parquet_dataset(path, "cls", "features")
    assert err.value.field == "data.label_column"
    assert "l.parquet" in str(err.value) and "'cls'" in str(err.value)


def test_parquet_empty_file(tmp_path: Path) -> None:
    features = pa.array([], pa.list_(pa.float32()))
    empty = pa.table({"label": pa.array([], pa.int64()), "features": features})
    pq.write_table(empty, tmp_path / "e.parquet")
    with pytest.raises(DataError, match="no rows"):
        load_parquet_dataset(tmp_path / "e.parquet", "label", "features")


# --- split -------------------------------------------------------------------------------------


def _labels(n_classes: int = 20, per_class: int = 5) -> np.ndarray:
    return np.repeat(np.arange(n_classes), per_class)[::-1].copy()  # not sorted by row


def test_split_is_class_disjoint_and_covers_all_rows() -> None:
    labels = _labels()
    split = split_by_class(labels, val=0.3, test=0.2, seed=0)
    classes = split.classes(labels)
    assert [len(classes[p]) for p in ("train", "val", "test")] == [10, 6, 4]
    assert not set(classes["train"]) & set(classes["val"])
    assert not set(classes["train"]) & set(classes["test"])
    assert not set(classes["val"]) & set(classes["test"])
    rows = np.concatenate([split.train, split.val, split.test])
    np.testing.assert_array_equal(np.sort(rows), np.arange(len(labels)))
    assert all(a.dtype == np.int64 for a in (split.train, split.val, split.test))


def _same(a: Split, b: Split) -> bool:
    pairs = zip((a.train, a.val, a.test), (b.train, b.val, b.test), strict=True)
    return all(np.array_equal(x, y) for x, y in pairs)


def test_split_deterministic_per_seed() -> None:
    labels = _labels()
    assert _same(split_by_class(labels, 0.3, 0.2, seed=1), split_by_class(labels, 0.3, 0.2, seed=1))
    assert not _same(split_by_class(labels, 0.3, 0.2, seed=1), split_by_class(labels, 0.3, 0.2, 2))


def test_split_without_test() -> None:
    labels = _labels()
    split = split_by_class(labels, val=0.5, test=0.0, seed=0)
    assert split.test.size == 0 and split.test.dtype == np.int64
    assert split.classes(labels)["test"] == []
    assert len(split.classes(labels)["val"]) == 10


@pytest.mark.parametrize(
    ("n_classes", "val", "test"),
    [
        (10, 0.1, 0.2),  # val gets 1 class
        (10, 0.0, 0.2),  # no val at all
        (10, 0.3, 0.01),  # test > 0 rounds up to 1 class, still too few
        (4, 0.5, 0.25),  # train gets 1 class
        (5, 0.5, 0.5),  # train gets none
    ],
)
def test_split_too_few_classes(n_classes: int, val: float, test: float) -> None:
    with pytest.raises(DataError, match=r"^data\.split: ") as err:
        split_by_class(np.arange(n_classes), val, test, seed=0)
    assert err.value.field == "data.split"


@pytest.mark.parametrize(("val", "test"), [(1.0, 0.0), (-0.1, 0.2), (0.3, float("nan"))])
def test_split_rejects_bad_fractions(val: float, test: float) -> None:
    with pytest.raises(DataError, match=r"^data\.split: .*fraction"):
        split_by_class(_labels(), val, test, seed=0)


def test_split_nonzero_fraction_gets_at_least_one_class() -> None:
    # 0.01 · 10 rounds to 0, but a requested part is never silently dropped: it gets 1 class,
    # which the error then reports.
    with pytest.raises(DataError, match="train 6, val 3, test 1"):
        split_by_class(np.arange(10), val=0.3, test=0.01, seed=0)
