"""Every shipped space file validates (file and data) and starts with the command that runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from minesearch import catalog
from minesearch.cli import validated
from minesearch.config import Range

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))


def test_spaces_are_shipped() -> None:
    assert SPACES, "search_spaces/ holds no *.yaml"
    assert (ROOT / "search_spaces" / "quickstart.yaml") in SPACES


@pytest.mark.parametrize("path", SPACES, ids=[p.name for p in SPACES])
def test_space_validates(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the run command is given from the repo root: data paths resolve there
    spec = validated(path.relative_to(ROOT))
    assert spec.name
    assert spec.search.params, "a shipped space should search something"


@pytest.mark.parametrize("path", SPACES, ids=[p.name for p in SPACES])
def test_space_starts_with_its_run_command(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first == f"# Run: minesearch run search_spaces/{path.name}"


def test_issue_spaces_are_shipped() -> None:
    names = {p.name for p in SPACES}
    assert {"negative_mining.yaml", "pairs_vs_triplets.yaml", "full.yaml"} <= names


def test_full_space_holds_the_whole_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    params = validated("search_spaces/full.yaml").search.params
    assert params["loss"] == list(catalog.LOSSES)
    assert params["miner"] == list(catalog.MINER_NAMES)


def test_negative_mining_space_is_the_classic_study(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    params = validated("search_spaces/negative_mining.yaml").search.params
    assert params["loss"] == "TripletMarginLoss"
    assert params["miner"] == ["none", "TripletMarginMiner"]  # the miner, and no miner as control
    assert params["type_of_triplets"] == ["all", "hard", "semihard", "easy"]
    assert isinstance(params["margin"], Range)
