"""How a trial's child run ends, and what every reader of the store makes of it: a trial the
scheduler stopped early is a normal outcome (FINISHED in MLflow, whose UI draws KILLED and FAILED
as failures), told from a finished trial by its `minesearch.stopped` tag, and from an interrupted
one, which alone is resumable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from minesearch.recipe import SAMPLER_PARAMS_KEY, Recipe, TrialConfig
from minesearch.tracking import ChildRuns, ParentRun, known_trials, names, read_search
from minesearch.tracking._store import open_store

METRIC = "mean_average_precision_at_r"
KEY = f"selected.{METRIC}"
Ending = Callable[[ChildRuns, str], None]
ENDINGS: dict[str, Ending] = {
    "finished": lambda runs, run_id: runs.finish(run_id, stopped_early=False),
    "stopped": lambda runs, run_id: runs.finish(run_id, stopped_early=True),
    "failed": lambda runs, run_id: runs.fail(run_id, "boom"),
    # last: Tune ends the search with every trial it knows, the others' runs already ended
    "interrupted": lambda runs, run_id: runs.end_interrupted(list(ENDINGS), all_started=True),
}


@pytest.fixture
def search(tmp_path: Path, parent_spec: Callable[..., dict[str, object]]) -> tuple[str, str]:
    """One trial per ending, each with two epochs of the selected score."""
    uri = f"sqlite:///{tmp_path}/m.db"
    parent = ParentRun.start(uri, "exp", "s", parent_spec(epochs=2), None, {})
    children = ChildRuns(uri, parent.run_id, "trial", {})
    for trial_id, end in ENDINGS.items():
        config = {
            **TrialConfig(Recipe("TripletMarginLoss", lr=1e-3)).to_config(),
            SAMPLER_PARAMS_KEY: {"trial": trial_id},
        }
        run_id = children.create(trial_id, TrialConfig.from_config(config), config)
        for epoch, score in enumerate((0.2, 0.4)):
            children.log_epoch(run_id, epoch, {KEY: score}, None)
        end(children, run_id)
    return uri, parent.run_id


def test_a_stopped_trial_ends_finished_with_its_tag(search: tuple[str, str]) -> None:
    uri, parent = search
    runs = {t.trial_id: t for t in read_search(uri, parent).trials}
    client = open_store(uri)
    status = {k: client.get_run(t.run_id).info.status for k, t in runs.items()}
    assert status == {
        "finished": "FINISHED",
        "stopped": "FINISHED",  # not KILLED: the UI would draw it as a failure
        "failed": "FAILED",
        "interrupted": "KILLED",
    }
    stopped = client.get_run(runs["stopped"].run_id).data.tags
    assert "pruned" in stopped[names.STOPPED_TAG]


def test_readers_tell_stopped_from_finished_and_interrupted(search: tuple[str, str]) -> None:
    uri, parent = search
    assert {t.trial_id: t.status for t in read_search(uri, parent).trials} == {
        "finished": "finished",
        "stopped": "pruned",
        "failed": "failed",
        "interrupted": "killed",
    }
    known = {k.params["trial"]: k.state for k in known_trials(uri, parent, METRIC)}
    assert known == {"finished": "COMPLETE", "stopped": "PRUNED"}


def test_only_an_interrupted_trial_runs_again_on_resume(search: tuple[str, str]) -> None:
    uri, parent = search
    children = ChildRuns(uri, parent, "trial", {})
    client = open_store(uri)
    for trial_id in ENDINGS:
        found = children.reopen(trial_id, KEY)
        assert found is not None and found.last_step == 1
        after = client.get_run(found.run_id)
        running = after.info.status == "RUNNING"
        assert running == (trial_id == "interrupted"), trial_id
        assert bool(after.data.tags.get(names.STOPPED_TAG)) == (trial_id == "stopped")


def test_a_store_from_before_reads_killed_and_stopped_as_pruned(
    search: tuple[str, str],
) -> None:
    """Stores written before stopped trials ended FINISHED: their KILLED + tag still reads as
    pruned, by the report and by a later search's warm start."""
    uri, parent = search
    runs = {t.trial_id: t for t in read_search(uri, parent).trials}
    open_store(uri).update_run(runs["stopped"].run_id, status="KILLED")
    assert {t.trial_id: t.status for t in read_search(uri, parent).trials}["stopped"] == "pruned"
    known = {k.params["trial"]: k.state for k in known_trials(uri, parent, METRIC)}
    assert known["stopped"] == "PRUNED"
