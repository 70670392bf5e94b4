"""A trial's model as an MLflow Model (pyfunc), logged to its run and optionally registered.

The model is the TorchScript export (`minesearch export`'s directory: model.pt + preprocess.json,
and the tokenizer for text) carried as the pyfunc's artifact, and a `PythonModel` that hands it to
an embedding function given by reference (`minesearch.export.load_embedder`): tracking imports no
room above it, and `predict` runs exactly what `minesearch embed` runs.

MLflow's `log_model` works on the fluent API's active run and global tracking URI, while
minesearch keeps both explicit; so the run is resumed for the call under a temporarily set
tracking URI, and its status and end time are put back afterwards (a finished trial stays
finished, at the time it finished). Requirements are given, pinned to what is installed, not
inferred: inference reloads the model in a subprocess to watch what it imports (seconds more per
search), and nothing at the end of a search may depend on reaching a package index.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.tracking import MlflowClient

from minesearch import __version__
from minesearch.tracking import names
from minesearch.tracking._store import StoreError, no_progress_bar

Embed = Callable[[Any], np.ndarray]  # what predict receives -> float32 embeddings [B, E]
TRACKING_ENV = "MLFLOW_TRACKING_URI"
# What loading the model imports: minesearch (the pickled model names its classes) and its stack.
REQUIREMENTS = ("torch", "numpy", "pandas", "pyarrow", "pillow", "pydantic", "pyyaml")


class EmbeddingModel(PythonModel):
    """The pyfunc: inputs -> embeddings, through the function `loader` builds from the export.

    `predict` has no type hints: MLflow would read them as the signature (and warns on each
    import when there are none, which `_skip_type_hint_validation` turns off), while this model's
    signature is inferred from real rows at logging time."""

    _skip_type_hint_validation = True  # MLflow's own switch (its ChatModel classes set it)

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
    model = EmbeddingModel(loader)
    output = loader(export_dir)(example)
    signature = infer_signature(example, output)
    client = MlflowClient(tracking_uri)
    try:
        info = client.get_run(run_id).info
        with _tracking_uri(tracking_uri), no_progress_bar(), _quiet():
            try:
                with mlflow.start_run(run_id=run_id, log_system_metrics=False):
                    logged = mlflow.pyfunc.log_model(
                        name=names.MODEL_NAME,
                        python_model=model,
                        artifacts={names.MODEL_EXPORT_KEY: export_dir},
                        signature=signature,
                        input_example=example,
                        pip_requirements=requirements(),
                    )
            finally:  # start_run made the run RUNNING and end_run FINISHED: as it was, again
                client.set_terminated(run_id, info.status, end_time=info.end_time)
        registered = None
        if register_as:
            registry = MlflowClient(tracking_uri, registry_uri=tracking_uri)
            model_id = str(logged.model_id)
            registered = _register(registry, register_as, logged.model_uri, run_id, model_id)
    except (MlflowException, OSError) as err:
        raise StoreError(f"logging the MLflow Model to run {run_id} failed: {err}") from None
    return LoggedModel(
        uri=logged.model_uri,
        run_uri=f"runs:/{run_id}/{names.MODEL_NAME}",
        model_id=str(logged.model_id),
        registered=registered,
        seconds=time.monotonic() - started,
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's per-call notes off the CLI (the CloudPickle caution: the model is pickled by
    reference to minesearch's own classes; "validating input example"); errors still raise."""
    logger = logging.getLogger("mlflow.pyfunc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's global tracking URI set to `uri` for the block only; what was set before (or not
    set: the module global is None then) and the environment variable are restored."""
    from mlflow.tracking._tracking_service import utils  # no public way to read "not set"

    old, old_env = utils._tracking_uri, os.environ.get(TRACKING_ENV)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old)  # type: ignore[arg-type]  # None unsets, as before
        if old_env is not None:
            os.environ[TRACKING_ENV] = old_env


def _register(client: MlflowClient, name: str, source: str, run_id: str, model_id: str) -> str:
    """A new version of registered model `name` (created on first use), as
    `mlflow.register_model` makes it, through this client's store (SQLite or a server)."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    version = client.create_model_version(name, source, run_id=run_id, model_id=model_id)
    return f"{name} version {version.version}"
