"""A trial's model as an MLflow Model (pyfunc), logged to its run and optionally registered.

The model is the TorchScript export (`minesearch export`'s directory: model.pt + preprocess.json,
and the tokenizer for text) carried as the pyfunc's artifact, and a `PythonModel` that hands it to
an embedding function given by reference (`minesearch.export.load_embedder`): tracking imports no
room above it, and `predict` runs exactly what `minesearch embed` runs.

The model is logged through one `MlflowClient` on the given store, step by step as MLflow's
fluent `log_model` does it (a LoggedModel of the run's experiment, linked to the run as its
output; the pyfunc saved locally; its files uploaded; the model marked READY): the fluent call
works on the process's global tracking URI and active run, which minesearch never sets, and
would make a finished run RUNNING again. Requirements are given, pinned to what is installed, not
inferred: inference reloads the model in a subprocess to watch what it imports (seconds more per
search), and nothing at the end of a search may depend on reaching a package index.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import Model, infer_signature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.tracking import MlflowClient

from minesearch import __version__
from minesearch.tracking import names
from minesearch.tracking._mlflow_internals import UntypedPredict
from minesearch.tracking._store import StoreError, no_progress_bar

Embed = Callable[[Any], np.ndarray]  # what predict receives -> float32 embeddings [B, E]
# What loading the model imports: minesearch (the pickled model names its classes) and its stack.
REQUIREMENTS = ("torch", "numpy", "pandas", "pyarrow", "pillow", "pydantic", "pyyaml")


class EmbeddingModel(UntypedPredict, PythonModel):
    """The pyfunc: inputs -> embeddings, through the function `loader` builds from the export.

    `predict` has no type hints: MLflow would read them as the signature, while this model's
    signature is inferred from real rows at logging time (`UntypedPredict`: no warning for it)."""

    def __init__(self, loader: Callable[[str], Embed]) -> None:
        self.loader = loader  # pickled by reference (a module-level function of minesearch)
        self._embed: Embed | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_embed": None}  # the loaded network is rebuilt from artifacts

    def load_context(self, context: PythonModelContext) -> None:
        self._embed = self.loader(context.artifacts[names.MODEL_EXPORT_KEY])

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """`model_input`: see `minesearch.export._pyfunc` for what it may be."""
        if self._embed is None:
            self.load_context(context)
        assert self._embed is not None
        return self._embed(model_input)


@dataclass(frozen=True)
class LoggedModel:
    """Where the model went: `uri` loads it (`mlflow.pyfunc.load_model`)."""

    uri: str  # models:/<model id>
    run_uri: str  # runs:/<run id>/<name>
    model_id: str
    registered: str | None  # "NAME version N"
    seconds: float  # time to log (and register) it


def requirements() -> list[str]:
    """Pinned to what is installed (no resolution at log time); minesearch at its version."""
    pins = [f"minesearch=={__version__}", f"mlflow=={mlflow.__version__}"]
    for name in REQUIREMENTS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            pins.append(f"{name}=={metadata.version(name)}")
    return pins


def log_model(
    tracking_uri: str,
    run_id: str,
    export_dir: str,
    loader: Callable[[str], Embed],
    example: Any,
    register_as: str | None = None,
) -> LoggedModel:
    """The export at `export_dir` as the pyfunc model `names.MODEL_NAME` of run `run_id`, with
    the signature of `example` (a few inputs) and its embeddings; a new version of `register_as`
    in the Model Registry when given."""
    started = time.monotonic()
    output = loader(export_dir)(example)
    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
        logged = client.create_logged_model(
            run.info.experiment_id,
            name=names.MODEL_NAME,
            source_run_id=run_id,
            params=run.data.params,  # as the fluent log_model copies them
        )
        with _finalized(client, logged.model_id), tempfile.TemporaryDirectory() as local:
            client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
            path = os.path.join(local, names.MODEL_NAME)
            with _quiet(), no_progress_bar():  # it copies `artifacts` through a download
                mlflow.pyfunc.save_model(
                    path,
                    python_model=EmbeddingModel(loader),
                    artifacts={names.MODEL_EXPORT_KEY: export_dir},
                    signature=infer_signature(example, output),
                    input_example=example,
                    pip_requirements=requirements(),
                    mlflow_model=Model(
                        artifact_path=logged.artifact_location,
                        run_id=run_id,
                        model_uuid=logged.model_id,
                        model_id=logged.model_id,
                    ),
                )
            with no_progress_bar():
                client.log_model_artifacts(logged.model_id, path)
        uri = f"models:/{logged.model_id}"
        registered = None
        if register_as:
            registry = MlflowClient(tracking_uri, registry_uri=tracking_uri)
            registered = _register(registry, register_as, uri, run_id, logged.model_id)
    except (MlflowException, OSError) as err:
        raise StoreError(f"logging the MLflow Model to run {run_id} failed: {err}") from None
    return LoggedModel(
        uri=uri,
        run_uri=f"runs:/{run_id}/{names.MODEL_NAME}",
        model_id=logged.model_id,
        registered=registered,
        seconds=time.monotonic() - started,
    )


@contextlib.contextmanager
def _finalized(client: MlflowClient, model_id: str) -> Iterator[None]:
    """The LoggedModel READY when the block completes, FAILED when it raises (it is PENDING
    until then, and the UI would show it as still being written)."""
    try:
        yield
    except BaseException:
        client.finalize_logged_model(model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(model_id, LoggedModelStatus.READY)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's per-call notes off the CLI (the CloudPickle caution: the model is pickled by
    reference to minesearch's own classes); errors still raise."""
    logger = logging.getLogger("mlflow.pyfunc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _register(client: MlflowClient, name: str, source: str, run_id: str, model_id: str) -> str:
    """A new version of registered model `name` (created on first use), as
    `mlflow.register_model` makes it, through this client's store (SQLite or a server)."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    version = client.create_model_version(name, source, run_id=run_id, model_id=model_id)
    return f"{name} version {version.version}"
