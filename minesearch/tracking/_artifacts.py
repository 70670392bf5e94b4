"""Files attached to a run after the fact: the report's plots, an export's model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from minesearch.tracking._store import StoreError, no_progress_bar


def log_files(
    tracking_uri: str,
    run_id: str,
    paths: Sequence[Path],
    artifact_path: str,
    texts: dict[str, str] | None = None,
) -> None:
    """`paths` under `artifact_path/` of the run, and each text at its artifact file name."""
    client = MlflowClient(tracking_uri)
    try:
        with no_progress_bar():
            for path in paths:
                client.log_artifact(run_id, str(path), artifact_path)
            for name, text in (texts or {}).items():
                client.log_text(run_id, text, name)
    except (MlflowException, OSError) as err:
        raise StoreError(f"logging to MLflow run {run_id} failed: {err}") from None


def log_directory(tracking_uri: str, run_id: str, directory: Path, artifact_path: str) -> None:
    """Every file of `directory` under `artifact_path/` of the run."""
    try:
        with no_progress_bar():
            MlflowClient(tracking_uri).log_artifacts(run_id, str(directory), artifact_path)
    except (MlflowException, OSError) as err:
        raise StoreError(f"logging to MLflow run {run_id} failed: {err}") from None
