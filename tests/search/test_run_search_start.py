"""How `run_search` starts, up to Ray (no Ray started here): the local Ray it asks for, and the
MLflow store it opens meanwhile, whole even when starting fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from minesearch.config import parse_spec
from minesearch.search import SearchOptions, _run_search
from minesearch.tracking._sqlite import _revision, head_revision


class RayDidNotStart(Exception):
    pass


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_train_settings_only_for_multi_worker_trials_and_the_store_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    asked: list[bool] = []

    def start_ray(address: str | None, extra: dict[str, Any], ray_train: bool = True) -> bool:
        asked.append(ray_train)
        raise RayDidNotStart

    monkeypatch.setattr(_run_search, "start_ray", start_ray)
    store = tmp_path / "store" / "mlflow.db"
    spec = parse_spec(
        {
            "name": "start",
            "data": {"source": "digits", "split": {"val": 0.3, "test": 0.0}},
            "model": {"backbone": "mlp"},
            "train": {"workers": workers, "cpus_per_worker": 1},
            "tracking": {"uri": f"sqlite:///{store}"},
        }
    )
    options = SearchOptions(storage_path=str(tmp_path / "ray"))
    with pytest.raises(RayDidNotStart):
        _run_search.run_search(spec, None, options)
    assert asked == [workers > 1]
    assert _revision(store) == head_revision()  # made whole before the error left run_search
