"""`minesearch catalog`: every entry, the legend and the matrix cells, readable at 100 columns."""

from __future__ import annotations

import re

import pytest

from minesearch import catalog
from minesearch.catalog._view import WIDTH, catalog_text


@pytest.fixture(scope="module", params=[False, True], ids=["strict", "weight_miners"])
def text(request: pytest.FixtureRequest) -> str:
    return catalog_text(weight_miners=request.param)


def _cell(text: str, loss: str, miner: str) -> str:
    """The matrix cell of `loss` x `miner`, read from the text as a user would."""
    column = catalog.MINER_NAMES.index(miner)
    assert f"{column}={miner}" in text  # the column key
    row = next(line for line in text.splitlines() if re.fullmatch(rf"  {loss} +[NC\- ]+", line))
    return row.split()[1 + column]


def test_lists_every_loss_miner_and_parameter(text: str) -> None:
    for name in [*catalog.LOSSES, *catalog.MINERS]:
        assert re.search(rf"^  {name} ", text, re.MULTILINE), name
    params = {p for info in catalog.LOSSES.values() for p in info.params}
    params |= {p for info in catalog.MINERS.values() for p in info.params}
    for param in params:
        assert re.search(rf"^      {param} ", text, re.MULTILINE), param
    assert "0=none" in text


def test_has_the_legend(text: str) -> None:
    flat = " ".join(text.split())
    assert "N native" in flat and "C converted" in flat and "- invalid" in flat
    assert "weights: turns a miner's output into sample weights" in flat


def test_fits_the_terminal(text: str) -> None:
    assert max(len(line) for line in text.splitlines()) <= WIDTH


def test_shows_ranges_defaults_and_kinds() -> None:
    text = catalog_text()
    assert re.search(r"^  ArcFaceLoss +weights +yes +cosine$", text, re.MULTILINE)
    assert re.search(r"^  TripletMarginMiner +triplets +lp$", text, re.MULTILINE)
    assert re.search(r"^      type_of_triplets +all +one of all, hard, semihard, easy$", text, re.M)
    assert re.search(r"^      temperature +0\.07 +\(0, inf\)$", text, re.MULTILINE)
    assert re.search(r"^      centers_per_class +10 +\[1, inf\) integer$", text, re.MULTILINE)
    assert "default: PML: required" in text  # RankedListLoss's margin and Tn


def test_known_cells() -> None:
    strict, relaxed = catalog_text(), catalog_text(weight_miners=True)
    assert _cell(strict, "TripletMarginLoss", "MultiSimilarityMiner") == "C"
    assert _cell(strict, "TripletMarginLoss", "TripletMarginMiner") == "N"
    assert _cell(strict, "ContrastiveLoss", "none") == "N"
    assert _cell(strict, "ArcFaceLoss", "TripletMarginMiner") == "-"
    assert _cell(relaxed, "ArcFaceLoss", "TripletMarginMiner") == "C"
    assert _cell(relaxed, "RankedListLoss", "BatchHardMiner") == "-"


def test_matrix_agrees_with_compatibility() -> None:
    symbols = {"native": "N", "converted": "C", "invalid": "-"}
    for weight_miners in (False, True):
        text = catalog_text(weight_miners)
        for loss in catalog.LOSSES:
            for miner in catalog.MINER_NAMES:
                expected = symbols[catalog.compatibility(loss, miner, weight_miners)]
                assert _cell(text, loss, miner) == expected, (loss, miner, weight_miners)
