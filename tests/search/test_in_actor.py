"""What a trial process keeps between the trials it runs (Tune's actor reuse): the space's data,
by data spec and fold count, one at a time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from minesearch.config import SpaceSpec, parse_spec
from minesearch.search import _in_actor
from minesearch.search._in_actor import process_data


def spec(split_seed: int = 0, lr: float = 1e-3) -> SpaceSpec:
    return parse_spec(
        {
            "name": "x",
            "data": {"source": "digits", "split": {"val": 0.3, "test": 0.0, "seed": split_seed}},
            "search": {"params": {"lr": lr}},
        }
    )


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    _in_actor._DATA.clear()
    yield
    _in_actor._DATA.clear()


def test_trials_of_one_data_spec_share_the_process_copy() -> None:
    first = process_data(spec(), 1)
    assert process_data(spec(lr=5e-3), 1) is first  # another recipe, the same data
    assert len(_in_actor._DATA) == 1


def test_another_data_spec_replaces_it() -> None:
    (first,) = process_data(spec(split_seed=0), 1)
    (other,) = process_data(spec(split_seed=1), 1)
    assert other is not first
    assert list(other.rows("val")) != list(first.rows("val"))  # its own split
    assert len(_in_actor._DATA) == 1  # one entry: the old copy is gone
    assert process_data(spec(split_seed=1), 1)[0] is other


def test_the_fold_count_is_part_of_the_key() -> None:
    """A search's trials train its K folds, its test estimate the one split: each gets its own."""
    three = process_data(spec(), 3)
    assert len(three) == 3 and len({id(p.source) for p in three}) == 1  # one source, 3 splits
    (one,) = process_data(spec(), 1)
    assert list(one.rows("val")) != list(three[0].rows("val"))
    assert process_data(spec(), 3) is not three and len(_in_actor._DATA) == 1
