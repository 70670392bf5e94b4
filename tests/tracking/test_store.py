"""Which MLflow store: URI resolution and the command that opens its UI."""

from __future__ import annotations

from pathlib import Path

import pytest

from minesearch.tracking import (
    StoreError,
    open_ui_command,
    refused_store,
    resolve_tracking_uri,
    ui_command,
    unreachable_server,
)
from minesearch.tracking._store import open_store


def test_relative_sqlite_uri_becomes_absolute(tmp_path: Path) -> None:
    assert (
        resolve_tracking_uri("sqlite:///runs/m.db", tmp_path) == f"sqlite:///{tmp_path}/runs/m.db"
    )
    assert resolve_tracking_uri("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"


def test_default_is_sqlite_in_cwd_and_env_wins_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri(None, tmp_path) == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("sqlite:///x.db", tmp_path) == f"sqlite:///{tmp_path}/x.db"


def test_file_store_paths_become_file_uris(tmp_path: Path) -> None:
    assert resolve_tracking_uri("mlruns", tmp_path) == (tmp_path / "mlruns").as_uri()
    assert resolve_tracking_uri("file:./mlruns", tmp_path) == (tmp_path / "mlruns").as_uri()


def test_a_file_store_is_refused_with_what_to_use_unless_mlflow_is_told_to_open_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    store = (tmp_path / "mlruns").as_uri()
    why = refused_store(store, "tracking.uri")
    assert why is not None and why.startswith(f"tracking.uri: {store} is an MLflow file store")
    assert "sqlite:///" in why and "MLFLOW_ALLOW_FILE_STORE=true" in why
    for usable in (f"sqlite:///{tmp_path}/m.db", "http://127.0.0.1:5000", "databricks"):
        assert refused_store(usable) is None, usable
    with pytest.raises(StoreError, match="is an MLflow file store"):
        open_store(store)
    assert not (tmp_path / "mlruns").exists()  # nothing made
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's own way to open one
    assert refused_store(store) is None
    open_store(store).search_experiments()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_server_that_does_not_answer_is_found_with_one_request() -> None:
    """MLflow would retry a refused connection for minutes; one request says so at once. Any
    HTTP answer, even 404, is a server's: what it serves is MLflow's to judge."""
    import http.server
    import threading
    import time

    started = time.monotonic()
    why = unreachable_server(f"http://127.0.0.1:{closed_port()}")
    assert why is not None and why.startswith("no server answers at http://127.0.0.1:")
    assert time.monotonic() - started < 5
    assert unreachable_server("sqlite:////x/m.db") is None
    assert unreachable_server("databricks") is None
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:  # BaseHTTPRequestHandler answers every GET with 501
        assert unreachable_server(f"http://127.0.0.1:{server.server_port}") is None
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_whose_certificate_urllib_does_not_trust_still_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MLflow trusts what requests trusts (REQUESTS_CA_BUNDLE) or is told to skip the check; a
    TLS handshake that urllib rejects is a server answering, not a missing one."""
    import ssl
    import urllib.error
    import urllib.request

    def rejects(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(ssl.SSLCertVerificationError("self-signed certificate"))

    monkeypatch.setattr(urllib.request, "urlopen", rejects)
    assert unreachable_server("https://mlflow.internal") is None

    def refuses(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(urllib.request, "urlopen", refuses)
    assert "Connection refused" in (unreachable_server("https://mlflow.internal") or "")


def test_ui_command_names_the_store_and_binds_loopback(tmp_path: Path) -> None:
    command = ui_command(f"sqlite:///{tmp_path}/m.db")
    assert f"--backend-store-uri 'sqlite:///{tmp_path}/m.db'" in command
    assert "--host 127.0.0.1" in command
    assert f"--default-artifact-root '{(tmp_path / 'mlartifacts').as_uri()}'" in command


def test_open_ui_command_names_the_store_only_when_it_is_not_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert open_ui_command(f"sqlite:///{tmp_path}/mlflow.db", tmp_path) == "minesearch ui"
    other = f"sqlite:///{tmp_path}/other/m.db"
    assert open_ui_command(other, tmp_path) == f"minesearch ui --tracking-uri '{other}'"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)  # minesearch ui finds it by itself
    assert open_ui_command(other, tmp_path) == "minesearch ui"


def test_a_store_opened_meanwhile_is_whole_when_waited_for(tmp_path: Path) -> None:
    from minesearch.tracking import StoreOpening
    from minesearch.tracking._sqlite import _revision, head_revision

    store = tmp_path / "runs" / "mlflow.db"
    StoreOpening(f"sqlite:///{store}").wait()
    assert _revision(store) == head_revision()


def test_what_opening_meanwhile_raised_is_raised_when_waited_for(tmp_path: Path) -> None:
    from minesearch.tracking import StoreOpening

    (tmp_path / "a-file").write_text("not a directory")
    opening = StoreOpening(f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}")
    opening.join()  # quietly: another error is on its way
    with pytest.raises(OSError):
        opening.wait()
