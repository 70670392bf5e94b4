"""A search makes its fresh SQLite store while other processes poll it (a user's script listing
runs, `mlflow ui` opened as the search starts): MLflow migrates a store it finds half-made, and two
migrations of one file kill one of them ("Online migration expected to match one row")."""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from minesearch.recipe import Recipe, TrialConfig
from minesearch.tracking import ChildRuns, ParentRun, read_search

ROUNDS = 6  # fresh stores; unfixed, 2 to 6 of 6 rounds failed here
READERS = 4
STAGGER_S = 0.25  # reader i starts polling i * STAGGER_S after the store file appears


def _poll(uri: str, stop: Connection, delay_s: float) -> None:
    """List experiments and their runs until told to stop; errors are the reader's own."""
    from mlflow.tracking import MlflowClient

    path = Path(uri.removeprefix("sqlite:///"))
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


def reader(commands: Connection, index: int) -> None:
    """One reader process for every round: a store's URI, then poll it until the next message."""
    while (uri := commands.recv()) is not None:
        commands.send("ready")
        _poll(uri, commands, index * STAGGER_S)
        commands.recv()  # the stop message poll() saw


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


@pytest.mark.slow
def test_a_search_makes_its_store_beside_processes_polling_it(
    tmp_path: Path, parent_spec: Callable[..., dict[str, object]]
) -> None:
    context = mp.get_context("spawn")
    pipes = [context.Pipe() for _ in range(READERS)]
    procs = [context.Process(target=reader, args=(child, i)) for i, (_, child) in enumerate(pipes)]
    for proc in procs:
        proc.start()
    failures: list[str] = []
    try:
        for round_ in range(ROUNDS):
            uri = f"sqlite:///{tmp_path}/round{round_}/mlflow.db"
            for pipe, _ in pipes:
                pipe.send(uri)
            for pipe, _ in pipes:
                assert pipe.recv() == "ready"
            try:
                search(uri, parent_spec())
                with sqlite3.connect(tmp_path / f"round{round_}" / "mlflow.db") as db:
                    assert db.execute("select count(*) from runs").fetchone() == (3,)
            except Exception as exc:  # counted, then asserted on
                failures.append(f"round {round_}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            for pipe, _ in pipes:
                pipe.send("stop")
    finally:
        for pipe, _ in pipes:
            pipe.send(None)
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                os.kill(proc.pid, 9)  # type: ignore[arg-type]
    assert not failures, f"{len(failures)} of {ROUNDS} rounds failed:\n" + "\n".join(failures)
