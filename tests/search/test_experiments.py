"""Finding a search again for --resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from minesearch.search import _state as experiments


def test_nothing_to_resume_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(experiments.NothingToResume, match="no search of 'quick' to resume"):
        experiments.latest(str(tmp_path), "quick")


def test_a_changed_space_file_is_refused(tmp_path: Path) -> None:
    experiments.save_state(tmp_path / "quick-1", experiments.SearchState("run1", {"a": 1}))
    assert experiments.load_state(tmp_path / "quick-1", {"a": 1}).parent_run_id == "run1"
    with pytest.raises(experiments.NothingToResume, match="space file changed"):
        experiments.load_state(tmp_path / "quick-1", {"a": 2})


def test_names_sort_by_time(tmp_path: Path) -> None:
    name = experiments.new_name("quick")
    assert name.startswith("quick-") and len(name) == len("quick-20260101-000000")
