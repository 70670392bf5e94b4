"""Shared fixtures: every test works in its own temp dir with no inherited tracking settings."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MLflow's default store and Ray's storage resolve against the cwd: keep them in tmp_path."""
    monkeypatch.chdir(tmp_path)
    for var in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
        "RAY_ADDRESS",
    ):
        monkeypatch.delenv(var, raising=False)
    return tmp_path
