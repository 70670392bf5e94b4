"""The search's model as an MLflow Model, logged through one client on an explicit store: MLflow's
process-wide state (tracking URI, active run) is never touched and the finished run stays as it
was. The embedding here is a stand-in (the export's real one: tests/export/test_export.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.tracking import MlflowClient

from minesearch.tracking import StoreError, log_model, names

WIDTH = 2  # the stand-in embedding: the first WIDTH features


def first_features(rows: Any) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32)[:, :WIDTH]


def stand_in_loader(export_dir: str) -> Callable[[Any], np.ndarray]:
    """What `minesearch.export.load_embedder` is to the real model: export dir -> embed."""
    assert os.path.isdir(export_dir)
    return first_features


@dataclass(frozen=True)
class Finished:
    """A finished run in a fresh SQLite store, and an export directory to log as its model."""

    uri: str
    client: MlflowClient
    run_id: str
    export: str


@pytest.fixture
def finished(tmp_path: Path) -> Finished:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("m", artifact_location=(tmp_path / "art").as_uri())
    run_id = client.create_run(experiment).info.run_id
    client.log_param(run_id, "loss", "NTXentLoss")
    client.set_terminated(run_id, "FINISHED", end_time=1_700_000_000_000)
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.pt").write_bytes(b"weights")
    return Finished(uri, client, run_id, str(export))


def test_logging_touches_no_global_state_and_the_model_loads(
    finished: Finished, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, client, run_id = finished.uri, finished.client, finished.run_id
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert not mlflow.is_tracking_uri_set()  # conftest: no inherited tracking settings

    logged = log_model(uri, run_id, finished.export, stand_in_loader, rows)

    assert not mlflow.is_tracking_uri_set(), "log_model set MLflow's global tracking URI"
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert mlflow.active_run() is None
    run = client.get_run(run_id)
    assert (run.info.status, run.info.end_time) == ("FINISHED", 1_700_000_000_000)
    model = client.get_logged_model(logged.model_id)
    assert model.status == LoggedModelStatus.READY
    assert (model.name, model.source_run_id) == (names.MODEL_NAME, run_id)
    assert model.params == {"loss": "NTXentLoss"}  # the run's params, as the fluent call copies
    assert run.outputs is not None
    assert [m.model_id for m in run.outputs.model_outputs] == [logged.model_id]
    assert logged.uri == f"models:/{logged.model_id}" and logged.registered is None

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # where a user's models:/ and runs:/ resolve
    for model_uri in (logged.uri, logged.run_uri):
        pyfunc = mlflow.pyfunc.load_model(model_uri)
        np.testing.assert_array_equal(pyfunc.predict(rows), first_features(rows))
        assert pyfunc.metadata.model_id == logged.model_id
        assert pyfunc.metadata.run_id == run_id
        assert pyfunc.metadata.saved_input_example_info is not None


def test_registering_makes_a_version_per_call(finished: Finished) -> None:
    uri, run_id = finished.uri, finished.run_id
    rows = np.ones((2, 3), dtype=np.float32)
    first = log_model(uri, run_id, finished.export, stand_in_loader, rows, "emb")
    again = log_model(uri, run_id, finished.export, stand_in_loader, rows, "emb")
    assert (first.registered, again.registered) == ("emb version 1", "emb version 2")
    version = MlflowClient(uri, registry_uri=uri).get_model_version("emb", "2")
    assert (version.run_id, version.source) == (run_id, again.uri)


def test_a_model_that_cannot_be_written_is_marked_failed(
    finished: Finished, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, client, run_id = finished.uri, finished.client, finished.run_id

    def no_upload(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(MlflowClient, "log_model_artifacts", no_upload)
    with pytest.raises(StoreError, match="disk full"):
        log_model(uri, run_id, finished.export, stand_in_loader, np.ones((2, 3)))
    (model,) = client.search_logged_models([client.get_run(run_id).info.experiment_id])
    assert model.status == LoggedModelStatus.FAILED  # not left PENDING, as if still being written


def test_logging_draws_no_progress_bar(
    finished: Finished, capfd: pytest.CaptureFixture[str]
) -> None:
    """save_model copies the export through MLflow's download path, whose tqdm bar would land
    (with carriage returns) between the search's last lines."""
    (Path(finished.export) / "preprocessing.json").write_text("{}")
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    log_model(finished.uri, finished.run_id, finished.export, stand_in_loader, rows)
    captured = capfd.readouterr()
    assert "Downloading" not in captured.err + captured.out
    assert "\r" not in captured.err + captured.out
