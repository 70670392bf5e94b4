"""Which MLflow store, made absolute in the driver; a client on it (`open_store`, the one way
minesearch opens a store); the command that opens its UI.

MLflow's default store is `sqlite:///mlflow.db` relative to the *current directory*, and Tune and
Train change directory: every URI is resolved to an absolute one (or a server URL) before Ray
starts, and passed down explicitly.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE
from mlflow.tracking import MlflowClient

from minesearch.config import is_uri
from minesearch.tracking._sqlite import open_sqlite, sqlite_file

DEFAULT_STORE = "mlflow.db"
SERVER_PROBE_S = 5.0  # seconds a tracking server gets to answer before a search starts


class StoreError(LookupError):
    """The store, experiment or run asked for does not exist, or the store cannot be used; the
    message says which."""


def refused_store(tracking_uri: str, named_by: str = "the MLflow store") -> str | None:
    """Why MLflow will not open this store, said before a search starts rather than as MLflow's
    traceback seconds into it; None when it will. MLflow 3.17 opens a file store (./mlruns) only
    with MLFLOW_ALLOW_FILE_STORE=true: it is in maintenance mode. `named_by`: where the URI came
    from (tracking.uri, MLFLOW_TRACKING_URI, --tracking-uri)."""
    if not tracking_uri.startswith("file:") or MLFLOW_ALLOW_FILE_STORE.get():
        return None
    return (
        f"{named_by}: {tracking_uri} is an MLflow file store, which MLflow opens only with "
        f"{MLFLOW_ALLOW_FILE_STORE.name}=true (file stores are in maintenance mode); use a "
        f"SQLite store (sqlite:///<file>.db; the default is sqlite:///{DEFAULT_STORE} in the "
        "current directory) or a tracking server (http://...). `mlflow migrate-filestore` "
        "copies an existing file store into SQLite"
    )


def unreachable_server(tracking_uri: str, timeout: float = SERVER_PROBE_S) -> str | None:
    """Why no tracking server answers at an http(s) URI, found with one request; None when one
    answers (any HTTP status: authentication and routes are MLflow's to judge) or the URI is not
    a server's. MLflow itself retries a refused connection with backoff for minutes, before the
    search has printed anything."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout):
            return None
    except urllib.error.HTTPError:  # it answered
        return None
    except OSError as exc:  # URLError (refused, timed out, no such host) is one
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLError):  # something answered in TLS: its certificate is
            return None  # MLflow's to judge (REQUESTS_CA_BUNDLE, MLFLOW_TRACKING_INSECURE_TLS)
        return f"no server answers at {tracking_uri} ({reason})"


def store_problem(tracking_uri: str, named_by: str) -> str | None:
    """What stops a search from using its store, said before Ray starts; None when nothing does."""
    if (refused := refused_store(tracking_uri, named_by)) is not None:
        return refused
    if (unreachable := unreachable_server(tracking_uri)) is not None:
        return (
            f"{named_by}: {unreachable}; start the server (mlflow server --backend-store-uri "
            "sqlite:///mlflow.db ...) or use a SQLite store (sqlite:///<file>.db)"
        )
    return None


def tracking_source(configured: str | None, field: str = "tracking.uri") -> str:
    """What named the store `resolve_tracking_uri` picks: `field`, else the environment."""
    if configured:
        return field
    return "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "the default store"


def resolve_tracking_uri(configured: str | None, cwd: Path | None = None) -> str:
    """Space file URI, else $MLFLOW_TRACKING_URI, else ./mlflow.db; local stores made absolute."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_STORE}"
    base = cwd or Path.cwd()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{(base / uri.removeprefix('sqlite:///')).resolve()}"
    if uri.startswith("file:"):
        return (base / uri.removeprefix("file://").removeprefix("file:")).resolve().as_uri()
    if not is_uri(uri):  # a bare path means a file store directory
        return (base / uri).resolve().as_uri()
    return uri


def local_artifact_root(tracking_uri: str) -> str | None:
    """Artifacts next to a local SQLite store (MLflow would otherwise use ./mlruns of the cwd)."""
    path = sqlite_file(tracking_uri)
    return _sqlite_artifact_root(path) if path is not None else None


def _sqlite_artifact_root(path: Path) -> str:
    return (path.parent / "mlartifacts").as_uri()


def ui_command(tracking_uri: str) -> str:
    """The exact command that opens the MLflow UI on this store."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
    store = (
        tracking_uri.removeprefix("file://") if tracking_uri.startswith("file:") else tracking_uri
    )
    root = local_artifact_root(tracking_uri)
    artifacts = f" --default-artifact-root '{root}'" if root else ""
    return f"mlflow ui --backend-store-uri '{store}'{artifacts} --host 127.0.0.1 --port 5000"


def open_ui_command(tracking_uri: str, cwd: Path | None = None) -> str:
    """The short command that opens the UI on this store at its newest search (`minesearch
    ui`): the store is named only when `minesearch ui` would not find it by itself."""
    if tracking_uri == resolve_tracking_uri(None, cwd):
        return "minesearch ui"
    return f"minesearch ui --tracking-uri '{tracking_uri}'"


def missing_store(tracking_uri: str) -> Path | None:
    """The SQLite file a tracking URI names when it does not exist: reading commands check it,
    since MLflow would silently create an empty store there."""
    path = sqlite_file(tracking_uri)
    return path if path is not None and not path.is_file() else None


def open_store(tracking_uri: str) -> MlflowClient:
    """A client on the store; every opening of a store in minesearch goes through here, so that a
    new local SQLite store is made once and whole before anything opens it (`_sqlite`)."""
    if (path := sqlite_file(tracking_uri)) is not None:
        return open_sqlite(tracking_uri, path, _sqlite_artifact_root(path))
    if (refused := refused_store(tracking_uri)) is not None:
        raise StoreError(refused)
    return MlflowClient(tracking_uri)


class StoreOpening:
    """The store being opened (and, when new, made) in a thread, from its construction on.

    A search starts Ray meanwhile: a new SQLite store's migrations are seconds of Python, and
    ray.init mostly waits on the processes it starts. The thread is not a daemon, so an exiting
    interpreter waits for it rather than leave a half-made store beside the user's; as a context
    manager it is joined on the way out, whatever ends the block (`wait` raises what opening
    raised, where the caller needs the store)."""

    def __init__(self, tracking_uri: str) -> None:
        self._failed: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._open, args=(tracking_uri,), name="minesearch-open-store"
        )
        self._thread.start()

    def _open(self, tracking_uri: str) -> None:
        try:
            open_store(tracking_uri)
        except BaseException as exc:  # re-raised by `wait`, in the caller's thread
            self._failed.append(exc)

    def join(self) -> None:
        """Wait for the thread; what opening raised is left unsaid (another error is on its way)."""
        self._thread.join()

    def wait(self) -> None:
        """Wait for the thread and raise what opening raised."""
        self._thread.join()
        if self._failed:
            raise self._failed[0]

    def __enter__(self) -> StoreOpening:
        return self

    def __exit__(self, *exc: object) -> None:
        self.join()


def existing_store(tracking_uri: str, hint: str = "give --tracking-uri") -> MlflowClient:
    """A client on a store that exists (for commands that only read)."""
    if (path := missing_store(tracking_uri)) is not None:
        raise StoreError(f"no MLflow store at {path} ({hint})")
    if (unreachable := unreachable_server(tracking_uri)) is not None:
        raise StoreError(f"{unreachable} ({hint})")
    return open_store(tracking_uri)


def experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The experiment called `name`, created (artifacts beside a local store) if it is new."""
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    root = local_artifact_root(tracking_uri)
    location = f"{root}/{name}" if root else None
    return str(client.create_experiment(name, artifact_location=location))


def no_progress_bar() -> contextlib.AbstractContextManager[None]:
    """MLflow draws a tqdm bar per artifact transfer on stderr, ahead of our messages."""
    return environment({"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Environment variables set while inside, and put back as they were (unset ones unset)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
