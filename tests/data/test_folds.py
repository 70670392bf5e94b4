"""K class-disjoint folds over the non-test classes (`split_folds`, `load_parts(fold=, folds=)`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from minesearch.config import SpaceSpec, parse_spec
from minesearch.data import DataError, Split, load_parts, split_by_class, split_folds


def _labels(n_classes: int = 12, per_class: int = 3) -> np.ndarray:
    return np.repeat(np.arange(n_classes), per_class)


def _classes(labels: np.ndarray, rows: np.ndarray) -> set[int]:
    return {int(c) for c in np.unique(labels[rows])}


def _same(a: Split, b: Split) -> bool:
    return all(np.array_equal(getattr(a, p), getattr(b, p)) for p in ("train", "val", "test"))


@pytest.mark.parametrize(("n_classes", "test", "folds"), [(12, 0.2, 3), (10, 0.0, 3), (13, 0.2, 4)])
def test_folds_are_class_disjoint_and_validate_every_non_test_class_once(
    n_classes: int, test: float, folds: int
) -> None:
    labels = _labels(n_classes)
    split = split_by_class(labels, 0.3, test, seed=7)
    test_classes = _classes(labels, split.test)
    non_test = set(range(n_classes)) - test_classes
    got = split_folds(labels, 0.3, test, seed=7, folds=folds)
    assert len(got) == folds
    seen: list[int] = []
    for fold in got:
        train, val = _classes(labels, fold.train), _classes(labels, fold.val)
        assert not train & val
        assert train | val == non_test  # every non-test class trains or validates
        assert not (train | val) & test_classes  # test classes never train or validate
        assert np.array_equal(fold.test, split.test)  # test rows as split_by_class picks them
        assert len(fold.train) + len(fold.val) + len(fold.test) == len(labels)
        seen += sorted(val)
    assert sorted(seen) == sorted(non_test)  # each non-test class is val in exactly one fold
    sizes = [len(_classes(labels, f.val)) for f in got]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_one_fold_is_split_by_class(seed: int) -> None:
    labels = _labels(10)
    (only,) = split_folds(labels, 0.3, 0.2, seed, folds=1)
    assert _same(only, split_by_class(labels, 0.3, 0.2, seed))


def test_folds_follow_the_seed() -> None:
    labels = _labels(12)
    again = split_folds(labels, 0.3, 0.2, 3, 3)
    assert all(_same(a, b) for a, b in zip(split_folds(labels, 0.3, 0.2, 3, 3), again, strict=True))
    other = split_folds(labels, 0.3, 0.2, 4, 3)
    assert not all(_same(a, b) for a, b in zip(again, other, strict=True))


@pytest.mark.parametrize(
    ("n_classes", "test", "folds"),
    [
        (10, 0.0, 0),  # K < 1
        (10, 0.0, -2),
        (10, 0.0, 11),  # more folds than non-test classes
        (10, 0.2, 9),
        (10, 0.0, 6),  # val groups of 1 class
    ],
)
def test_bad_fold_counts_name_search_folds(n_classes: int, test: float, folds: int) -> None:
    with pytest.raises(DataError, match=r"^search\.folds: ") as info:
        split_folds(_labels(n_classes), 0.3, test, seed=0, folds=folds)
    assert info.value.field == "search.folds"


def test_folds_at_the_edge_of_two_classes_a_part() -> None:
    """4 non-test classes: 2 folds give val 2 / train 2 (allowed); 3 folds a val of 1 (not)."""
    labels = _labels(6)  # test 0.3 of 6 -> 2 test classes, 4 non-test
    assert len(split_folds(labels, 0.3, 0.3, 0, 2)) == 2
    with pytest.raises(DataError, match=r"3 folds over 4 non-test classes .* 1 to 2 folds"):
        split_folds(labels, 0.3, 0.3, 0, 3)


def _space(tmp_path: Path, **data: object) -> SpaceSpec:
    labels = _labels(10, 4)
    table = pa.table(
        {
            "label": labels,
            "features": pa.array([[float(x), 1.0] for x in labels], pa.list_(pa.float32())),
            "split": pa.array(["train"] * 20 + ["val"] * 12 + ["test"] * 8),
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    raw = {
        "name": "folds",
        "data": {
            "source": "parquet",
            "path": str(tmp_path / "d.parquet"),
            "label_column": "label",
            "input_column": "features",
            "split": {"by": "class", "val": 0.3, "test": 0.2, "seed": 2},
            **data,
        },
    }
    return parse_spec(raw)


def test_load_parts_gives_each_fold(tmp_path: Path) -> None:
    spec = _space(tmp_path)
    labels = _labels(10, 4)
    folds = split_folds(labels, 0.3, 0.2, 2, 3)
    for k in range(3):
        assert _same(load_parts(spec, fold=k, folds=3).split, folds[k])
    default = load_parts(spec).split
    assert _same(default, split_by_class(labels, 0.3, 0.2, 2))
    assert _same(load_parts(spec, fold=0, folds=1).split, default)
    with pytest.raises(ValueError, match="fold 3 of 3"):
        load_parts(spec, fold=3, folds=3)


def test_load_parts_folds_with_the_datas_own_split_is_bad_input(tmp_path: Path) -> None:
    spec = _space(tmp_path, split_column="split")
    assert len(load_parts(spec).split.val) == 12
    with pytest.raises(DataError, match=r"^search\.folds: 2 class folds need a class split"):
        load_parts(spec, fold=0, folds=2)
