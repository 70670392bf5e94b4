"""`minesearch.run` from Python: a tiny real search that prints nothing and returns what MLflow
holds; bad input as one exception naming the field, before any compute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

import minesearch
from minesearch.tracking.names import BEST_TAG, ROLE_TAG, VERDICT_TAG

TRIALS = 2


def tiny_space(tmp_path: Path) -> dict[str, Any]:
    """Two one-epoch trials and the control on digits, a test split scored once, no re-training."""
    return {
        "name": "api",
        "data": {"source": "digits", "split": {"val": 0.3, "test": 0.2, "seed": 0}},
        "model": {"backbone": "convnet", "embedding_dim": 16, "hidden_dim": 32},
        "train": {"epochs": 1, "batch": {"classes": 4, "per_class": 6}, "workers": 1},
        "storage_path": str(tmp_path / "ray"),
        "search": {
            "trials": TRIALS,
            "test_seeds": 0,
            "sampler": {"name": "random", "seed": 3},
            "scheduler": {"name": "fifo"},
            "params": {"loss": ["ContrastiveLoss", "MultiSimilarityLoss"], "miner": ["none"]},
        },
        "tracking": {"uri": "sqlite:///store/mlflow.db", "experiment": "api"},  # relative: cwd
    }


@pytest.fixture
def no_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input is found before the search starts: starting it fails the test."""
    from minesearch import search

    def must_not_run(*args: object) -> None:
        raise AssertionError("the search started on bad input")

    monkeypatch.setattr(search, "run_search", must_not_run)


def test_a_bad_space_raises_input_error_naming_the_field(no_search: None) -> None:
    space = {"name": "bad", "data": {"source": "digits"}, "search": {"trials": 0}}
    with pytest.raises(minesearch.InputError) as raised:
        minesearch.run(space)
    assert any(p.startswith("search.trials") for p in raised.value.problems), raised.value.problems
    assert "search.trials" in str(raised.value)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"view": "fancy"}, "view: one of 'live', 'plain' or None"),
        ({"confirm": (1, 1)}, "--confirm: K >= 1 recipes and S >= 2 seeds"),
    ],
)
def test_a_bad_option_raises_input_error_naming_it(
    no_search: None, options: dict[str, Any], named: str
) -> None:
    space = {"name": "ok", "data": {"source": "digits", "split": {"test": 0.2}}}
    with pytest.raises(minesearch.InputError, match=named):
        minesearch.run(space, **options)


def test_importing_minesearch_loads_nothing_heavy() -> None:
    import subprocess
    import sys

    probe = "import minesearch, sys; minesearch.InputError; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert "minesearch.api" in loaded  # the probe sees what it should
    assert not loaded & {"ray", "mlflow", "torch", "optuna"}


@pytest.mark.slow
def test_run_prints_nothing_and_returns_the_search_mlflow_holds(
    ray_instance: None, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "store").mkdir()
    outcome = minesearch.run(tiny_space(tmp_path))
    out, _ = capfd.readouterr()
    assert out == ""  # no view asked: the driver and Ray's workers print nothing on stdout

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"  # the dict's relative path, resolved
    assert outcome.tracking_uri == uri
    client = MlflowClient(uri)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert outcome.best is not None and outcome.best.status == "finished"
    assert parent.data.tags[BEST_TAG] == outcome.best.trial_id
    assert outcome.verdict is not None and parent.data.tags[VERDICT_TAG] == outcome.verdict.name
    experiment = client.get_experiment_by_name("api")
    assert experiment is not None
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{outcome.parent_run_id}'"
    )
    assert {r.info.run_id for r in children} == {t.run_id for t in outcome.result.trials}
    assert sum(r.data.tags[ROLE_TAG] == "trial" for r in children) == TRIALS
    best_run = client.get_run(outcome.best.run_id)
    assert "test.mean_average_precision_at_r" in best_run.data.metrics  # the test split, once
    assert outcome.exported is not None and outcome.exported.path.is_file()
    assert outcome.directory is not None and outcome.directory.parent == tmp_path / "ray"
    assert "verdict:" in outcome.text and outcome.best.trial_id in outcome.text
