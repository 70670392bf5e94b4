"""A search makes its fresh SQLite store while other processes poll it (a user's script listing
runs, `mlflow ui` opened as the search starts): MLflow migrates a store it finds half-made, and two
migrations of one file kill one of them ("Online migration expected to match one row")."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from minesearch.recipe import Recipe, TrialConfig
from minesearch.tracking import ChildRuns, ParentRun, read_search

ROUNDS = 6  # fresh stores; unfixed, 2 to 6 of 6 rounds failed here
READERS = 4
STAGGER_S = 0.25  # reader i starts polling i * STAGGER_S after the store file appears


def _poll(uri: str, stop: Connection, delay_s: float | None) -> None:
    """List experiments and their runs until told to stop; errors are the reader's own. With a
    delay, the reader waits for the store file and then `delay_s`; without, it opens (and so
    makes) the store at once, as `mlflow ui` started before the search does."""
    from mlflow.tracking import MlflowClient

    path = Path(uri.removeprefix("sqlite:///"))
    if delay_s is not None:
        while not path.exists() and not stop.poll(0.005):
            pass
        time.sleep(delay_s)
    while not stop.poll(0.02):
        try:
            client = MlflowClient(uri)
            for experiment in client.search_experiments():
                client.search_runs([experiment.experiment_id])
        except Exception:  # a reader that loses the race tries again
            time.sleep(0.05)


def reader(commands: Connection) -> None:
    """One reader process for every round: (a store's URI, delay), then poll it until stopped."""
    while (round_ := commands.recv()) is not None:
        commands.send("ready")
        uri, delay_s = round_
        _poll(uri, commands, delay_s)
        commands.recv()  # the stop message poll() saw


class Readers:
    """Reader processes (spawned once: each costs seconds of imports), told a store per round."""

    def __init__(self) -> None:
        context = mp.get_context("spawn")
        self.pipes = [context.Pipe() for _ in range(READERS)]
        self.procs = [context.Process(target=reader, args=(end,)) for _, end in self.pipes]
        for proc in self.procs:
            proc.start()
        self.polling: list[Connection] = []

    def poll(self, uri: str, delays: list[float | None]) -> None:
        """The first len(delays) readers poll `uri`, once each is listening."""
        self.polling = [pipe for pipe, _ in self.pipes[: len(delays)]]
        for pipe, delay in zip(self.polling, delays, strict=True):
            pipe.send((uri, delay))
        for pipe in self.polling:
            assert pipe.recv() == "ready"

    def stop(self) -> None:
        for pipe in self.polling:
            pipe.send("stop")
        self.polling = []

    def close(self) -> None:
        self.stop()
        for pipe, _ in self.pipes:
            pipe.send(None)
        for proc in self.procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()


@pytest.fixture(scope="module")
def readers() -> Iterator[Readers]:
    pool = Readers()
    yield pool
    pool.close()


def search(uri: str, spec: dict[str, object]) -> None:
    """What a search does to its store first: the parent run, child runs, a read-back."""
    parent = ParentRun.start(uri, "race", "search", spec, None, {})
    children = ChildRuns(uri, parent.run_id, "trial", {})
    config = TrialConfig(Recipe("TripletMarginLoss", lr=1e-3)).to_config()
    for trial in ("a", "b"):
        run_id = children.create(trial, TrialConfig.from_config(config), config)
        children.log_epoch(run_id, 0, {"selected.m": 0.5}, None)
        children.finish(run_id, stopped_early=False)
    assert len(read_search(uri, parent.run_id).trials) == 2
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as db:
        assert db.execute("select count(*) from runs").fetchone() == (3,)


def failed(round_: int, exc: Exception) -> str:
    return f"round {round_}: {type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.mark.slow
def test_a_search_makes_its_store_beside_processes_polling_it(
    tmp_path: Path, parent_spec: Callable[..., dict[str, object]], readers: Readers
) -> None:
    failures: list[str] = []
    for round_ in range(ROUNDS):
        uri = f"sqlite:///{tmp_path}/round{round_}/mlflow.db"
        readers.poll(uri, [i * STAGGER_S for i in range(READERS)])
        try:
            search(uri, parent_spec())
        except Exception as exc:  # counted, then asserted on
            failures.append(failed(round_, exc))
        readers.stop()
    assert not failures, f"{len(failures)} of {ROUNDS} rounds failed:\n" + "\n".join(failures)
    assert not [p.name for p in tmp_path.glob("round*/.*")]  # no temporary store left behind


@pytest.mark.slow
def test_a_search_waits_for_a_store_another_process_is_making(
    tmp_path: Path, parent_spec: Callable[..., dict[str, object]], readers: Readers
) -> None:
    """`mlflow ui` started just before the search makes the store: the search waits for it."""
    failures: list[str] = []
    for round_ in range(ROUNDS // 2):
        path = tmp_path / f"round{round_}" / "mlflow.db"
        path.parent.mkdir()
        readers.poll(f"sqlite:///{path}", [None])
        while not path.exists():
            time.sleep(0.005)
        try:
            search(f"sqlite:///{path}", parent_spec())
        except Exception as exc:  # counted, then asserted on
            failures.append(failed(round_, exc))
        readers.stop()
    assert not failures, f"{len(failures)} of {ROUNDS // 2} rounds failed:\n" + "\n".join(failures)
