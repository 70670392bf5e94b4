"""PML's module global behind `minesearch.train._pml_internals` still works as it says: each test
names the symbol and the installed pytorch-metric-learning when it does not (a loud upgrade)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytorch_metric_learning
import torch
from pytorch_metric_learning import losses, miners
from pytorch_metric_learning.utils import common_functions

from minesearch.train._pml_internals import collect_stats
from minesearch.train._telemetry import nonzero_loss_share

CHECKED_ON = "2.9.0"
SYMBOL = "pytorch_metric_learning.utils.common_functions.COLLECT_STATS"


def upgraded(what: str) -> str:
    return (
        f"pytorch-metric-learning {pytorch_metric_learning.__version__} (checked on "
        f"{CHECKED_ON}): {what}; re-check minesearch/train/_pml_internals.py"
    )


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    """The global as it was before each test (other tests build PML modules too)."""
    before = getattr(common_functions, "COLLECT_STATS", None)
    yield
    if before is not None:
        common_functions.COLLECT_STATS = before


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    emb = torch.nn.functional.normalize(
        torch.tensor([[0.0, 1.0], [0.0, 0.9], [1.0, 0.0], [0.9, 0.1]]), dim=1
    )
    return emb, torch.tensor([0, 0, 1, 1])


def test_the_global_exists_and_is_a_bool() -> None:
    value = getattr(common_functions, "COLLECT_STATS", None)
    assert isinstance(value, bool), upgraded(f"{SYMBOL} is gone or no longer a bool ({value!r})")


def test_collect_stats_sets_the_global() -> None:
    collect_stats(True)
    assert common_functions.COLLECT_STATS is True
    collect_stats(False)
    assert common_functions.COLLECT_STATS is False


@pytest.mark.parametrize("on", [True, False])
def test_modules_built_after_it_follow_it(on: bool) -> None:
    """What the switch is for: a loss's own default reducer and distance, and a miner, follow
    it; and the telemetry reads the reducer's statistics only when it is on."""
    collect_stats(on)
    loss = losses.TripletMarginLoss(margin=5.0)
    miner = miners.TripletMarginMiner(margin=0.2)
    built = {
        "loss": loss.collect_stats,
        "its default reducer": loss.reducer.collect_stats,
        "its default distance": loss.distance.collect_stats,
        "miner": miner.collect_stats,
    }
    wrong = [name for name, value in built.items() if value is not on]
    assert not wrong, upgraded(f"{SYMBOL} = {on} no longer reaches the {wrong} built after it")
    emb, labels = batch()
    loss(emb, labels)
    share = nonzero_loss_share(loss)
    expected = 1.0 if on else None  # margin 5: every triplet has a loss
    assert share == expected, upgraded(
        f"with {SYMBOL} = {on}, the reducer's num_past_filter gives {share}, not {expected}"
    )
