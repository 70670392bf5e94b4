"""A local SQLite store made once and whole, before anything else opens it.

MLflow makes a missing SQLite store on first open and migrates it in place (alembic, some 70
steps, seconds). A second process that opens the file meanwhile (a script listing runs, `mlflow
ui` or `minesearch ui` opened as a search starts) finds a half-made schema, migrates it too, and
one of the two dies ("Online migration expected to match one row", "table ... already exists").

Retrying on those errors would not be enough: a retry migrates the half-made store again, racing
anew, and the other process dies instead. So the race is removed where it starts: a new store is
migrated in a temporary file beside it and linked into place whole, so a reader finds no file or a
complete one. A lock on the store's directory makes minesearch's own processes do this once; a
store found half-made by someone else is left to them until it stops changing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from mlflow.tracking import MlflowClient

from minesearch.tracking._mlflow_internals import latest_schema_revision

SETTLE_S = 5.0  # a store that has not changed for this long is nobody's work in progress
WAIT_S = 300.0  # at most this long for another process to finish making a store
POLL_S = 0.1


def sqlite_file(tracking_uri: str) -> Path | None:
    """The file of a local SQLite store URI (absolute, as `resolve_tracking_uri` makes it)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///"))
    return None


def open_sqlite(tracking_uri: str, path: Path, artifact_root: str) -> MlflowClient:
    """A client on the store at `path`, made first if it is new, or waited for if another
    process is making it. MLflow caches the store per process, so only a process's first open of
    a store that is not yet whole takes the lock."""
    if _revision(path) == head_revision():
        return MlflowClient(tracking_uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent):
        if not path.exists():
            _create(path, artifact_root)
        _settle(path)
        return MlflowClient(tracking_uri)  # migrates in place only a store nobody else is making


def head_revision() -> str:
    """The schema revision this MLflow writes (a private name of MLflow's, kept in
    `_mlflow_internals`; tests/tracking/test_sqlite.py fails loudly when it moves)."""
    return latest_schema_revision()


def _revision(path: Path) -> str | None:
    """The store's schema revision; None when it has none yet (missing, empty, being made)."""
    if not path.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the store's directory (flock on the directory itself: no lock file is
    left beside the user's store); released when the process exits, however it exits."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _create(path: Path, artifact_root: str) -> None:
    """Migrate a new store in a temporary file, then link it into place whole; should another
    process have made the file meanwhile, theirs stays and `_settle` waits for it."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    temporary.unlink(missing_ok=True)
    try:
        store = SqlAlchemyStore(f"sqlite:///{temporary}", artifact_root)
        store.engine.dispose()  # every connection closed: the file is whole on disk
        try:
            os.link(temporary, path)  # unlike a rename, never replaces a file made meanwhile
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: a rename, checked just before
            if not path.exists():
                temporary.rename(path)
    finally:
        temporary.unlink(missing_ok=True)


def _settle(path: Path) -> None:
    """Wait while another process makes the store: until its schema is MLflow's, or until it
    has not changed for SETTLE_S (an older store, or an empty file: MLflow says what to do)."""
    head = head_revision()
    deadline = time.monotonic() + WAIT_S
    seen, since = _state(path), time.monotonic()
    while _revision(path) != head and time.monotonic() < deadline:
        time.sleep(POLL_S)
        if (now := _state(path)) != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since > SETTLE_S:
            return


def _state(path: Path) -> tuple[str | None, int, int]:
    """What changes while a store is being migrated: its revision, size and modification time."""
    try:
        stat = path.stat()
    except OSError:
        return None, -1, -1
    return _revision(path), stat.st_size, stat.st_mtime_ns
