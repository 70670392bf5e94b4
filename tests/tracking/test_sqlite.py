"""A new local SQLite store is made whole before anything opens it; one another process is making
is waited for (the processes themselves: tests/tracking/test_store_race.py)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from minesearch.tracking import _sqlite
from minesearch.tracking._store import open_store


def revision(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("select version_num from alembic_version").fetchone()[0])


def test_head_revision_is_what_mlflow_makes_a_store_at(tmp_path: Path) -> None:
    """The one private MLflow name here: if it moves, this says so before any store is opened."""
    try:
        head = _sqlite.head_revision()
    except ImportError as exc:
        pytest.fail(
            f"MLflow moved _get_latest_schema_revision (tracking/_mlflow_internals.py): {exc}"
        )
    MlflowClient(f"sqlite:///{tmp_path}/plain.db").search_experiments()
    assert revision(tmp_path / "plain.db") == head


def test_a_new_store_is_made_whole_with_its_artifacts_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "m.db"
    client = open_store(f"sqlite:///{path}")
    assert revision(path) == _sqlite.head_revision()
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.db"]  # no temporary file left
    default = client.get_experiment("0")
    assert default.artifact_location == f"{(path.parent / 'mlartifacts').as_uri()}/0"


def test_processes_of_minesearch_make_a_store_once(tmp_path: Path) -> None:
    """Each thread opens the directory lock anew, as another process would."""
    uri = f"sqlite:///{tmp_path}/m.db"
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            open_store(uri).search_experiments()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert revision(tmp_path / "m.db") == _sqlite.head_revision()


def old_store(path: Path, version: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute("create table alembic_version (version_num varchar(32) not null)")
        db.execute("insert into alembic_version values (?)", (version,))


def test_a_store_another_process_is_migrating_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite, "SETTLE_S", 2.0)
    path = tmp_path / "m.db"
    old_store(path, "a")

    def migrate() -> None:  # steps 0.3 s apart, each within SETTLE_S of the last
        for step in ("b", "c", _sqlite.head_revision()):
            time.sleep(0.3)
            with sqlite3.connect(path) as db:
                db.execute("update alembic_version set version_num = ?", (step,))

    other = threading.Thread(target=migrate)
    start = time.monotonic()
    other.start()
    _sqlite._settle(path)
    waited = time.monotonic() - start
    other.join()
    assert 0.9 <= waited < 2.0  # until the last step, not until quiet


def test_a_store_that_stays_unfinished_is_left_to_mlflow_once_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty file, or an older MLflow's store: nobody is making it, so the wait ends."""
    monkeypatch.setattr(_sqlite, "SETTLE_S", 0.3)
    empty = tmp_path / "empty.db"
    empty.touch()
    client = open_store(f"sqlite:///{empty}")  # MLflow makes the store in it, as it would
    assert client.search_experiments() and revision(empty) == _sqlite.head_revision()
    older = tmp_path / "older.db"
    old_store(older, "a")
    start = time.monotonic()
    _sqlite._settle(older)
    assert 0.3 <= time.monotonic() - start < 2.0


def test_without_hard_links_the_new_store_is_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: object, target: object) -> None:
        raise PermissionError("this file system has no hard links")

    monkeypatch.setattr(_sqlite.os, "link", no_links)
    path = tmp_path / "m.db"
    open_store(f"sqlite:///{path}")
    assert revision(path) == _sqlite.head_revision()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.db"]
