"""Warm start reads back the searched trials of earlier searches: their Optuna params (a tag the
child run got from the trial's config), how they ended and their selected-score curve."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from minesearch.recipe import SAMPLER_PARAMS_KEY, Recipe, TrialConfig
from minesearch.tracking import ChildRuns, ParentRun, StoreError, known_trials, names

METRIC = "mean_average_precision_at_r"
KEY = f"selected.{METRIC}"


def search(
    uri: str, experiment: str, runs: dict[str, tuple[str, list[float]]], spec: dict[str, object]
) -> str:
    """A parent run and one child per entry: trial id -> (how it ended, selected scores)."""
    parent = ParentRun.start(uri, experiment, "s", spec, None, {})
    children = ChildRuns(uri, parent.run_id, "trial", {})
    for trial_id, (ending, scores) in runs.items():
        lr = 0.001 * (1 + len(trial_id))
        config = {
            **TrialConfig(Recipe("TripletMarginLoss", lr=lr)).to_config(),
            SAMPLER_PARAMS_KEY: {"loss": "TripletMarginLoss", "lr": lr, "trial": trial_id},
        }
        if ending == "no-params":
            config.pop(SAMPLER_PARAMS_KEY)
        run_id = children.create(trial_id, TrialConfig.from_config(config), config)
        for epoch, score in enumerate(scores):
            children.log_epoch(run_id, epoch, {KEY: score}, None)
        if ending == "failed":
            children.fail(run_id, "boom")
        elif ending != "running":
            children.finish(run_id, stopped_early=ending == "pruned")
    return parent.run_id


@pytest.fixture
def store(tmp_path: Path, parent_spec: Callable[..., dict[str, object]]) -> tuple[str, str, str]:
    uri = f"sqlite:///{tmp_path}/m.db"
    spec = parent_spec(trials=4, epochs=3)
    first = search(
        uri,
        "exp",
        {
            "done": ("finished", [0.2, 0.5, 0.4]),
            "cut": ("pruned", [0.2, 0.1]),
            "bad": ("failed", [0.2]),
            "live": ("running", [0.3]),
            "old": ("no-params", [0.2, 0.6, 0.6]),
        },
        spec,
    )
    second = search(uri, "exp", {"more": ("finished", [0.1, 0.3, 0.7])}, spec)
    search(uri, "other", {"elsewhere": ("finished", [0.9, 0.9, 0.9])}, spec)
    return uri, first, second


def test_one_search_gives_its_finished_and_pruned_trials(store: tuple[str, str, str]) -> None:
    uri, first, _ = store
    known = {k.params["trial"]: k for k in known_trials(uri, first, METRIC)}
    assert sorted(known) == ["cut", "done"]  # failed, running and untagged runs say nothing
    done, cut = known["done"], known["cut"]
    assert done.state == "COMPLETE" and done.value == pytest.approx(0.4)  # the last selected
    assert done.steps == [(1, 0.2), (2, 0.5), (3, 0.4)]  # Tune's iterations: epoch + 1
    assert cut.state == "PRUNED" and cut.value is None and cut.steps == [(1, 0.2), (2, 0.1)]
    assert done.params["lr"] == pytest.approx(0.005)


def test_an_experiment_gives_every_search_in_it(store: tuple[str, str, str]) -> None:
    uri, _, _ = store
    assert sorted(k.params["trial"] for k in known_trials(uri, "exp", METRIC)) == [
        "cut",
        "done",
        "more",
    ]


def test_another_metric_finds_nothing(store: tuple[str, str, str]) -> None:
    uri, first, _ = store
    assert known_trials(uri, first, "precision_at_1") == []


def test_bad_references_are_store_errors(store: tuple[str, str, str], tmp_path: Path) -> None:
    uri, first, _ = store
    child = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("exp").experiment_id],  # type: ignore[union-attr]
        filter_string=f"tags.`{names.ROLE_TAG}` = 'trial'",
    )[0]
    with pytest.raises(StoreError, match="neither an experiment nor a run"):
        known_trials(uri, "nosuch", METRIC)
    with pytest.raises(StoreError, match="not a search's parent run"):
        known_trials(uri, child.info.run_id, METRIC)
    with pytest.raises(StoreError, match="not an experiment name"):
        known_trials(uri, "x' or '1", METRIC)
    with pytest.raises(StoreError, match="no MLflow store"):
        known_trials(f"sqlite:///{tmp_path}/none.db", first, METRIC)
