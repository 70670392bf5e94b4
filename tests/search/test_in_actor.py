"""What a trial process keeps between the trials it runs (Tune's actor reuse): the space's data,
by data spec, one at a time."""

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
    first = process_data(spec())
    assert process_data(spec(lr=5e-3)) is first  # another recipe, the same data
    assert len(_in_actor._DATA) == 1


def test_another_data_spec_replaces_it() -> None:
    first = process_data(spec(split_seed=0))
    other = process_data(spec(split_seed=1))
    assert other is not first
    assert list(other.rows("val")) != list(first.rows("val"))  # its own split
    assert len(_in_actor._DATA) == 1  # one entry: the old copy is gone
    assert process_data(spec(split_seed=1)) is other
