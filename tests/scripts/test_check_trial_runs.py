"""scripts/check_trial_runs.py on hand-made MLflow stores: a clean search passes, and each way a
fault could show (a lost trial, a duplicated one, an epoch logged twice or never) is named."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from conftest import load_script
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from minesearch.tracking import names

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_trial_runs.py"
EXPERIMENT = "faults"


@pytest.fixture(scope="module")
def checker() -> ModuleType:
    return load_script(SCRIPT)


class Store:
    """A search as minesearch writes it: one parent, child runs tagged with their trial id."""

    def __init__(self, tmp_path: Path) -> None:
        self.uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        self.experiment_id = self.client.create_experiment(EXPERIMENT)
        self.parent = self.client.create_run(self.experiment_id).info.run_id
        self.client.set_terminated(self.parent, "FINISHED")

    def trial(
        self,
        trial_id: str,
        steps: list[int],
        status: str = "FINISHED",
        role: str = "trial",
        tags: dict[str, str] | None = None,
    ) -> str:
        run = self.client.create_run(
            self.experiment_id,
            tags={
                MLFLOW_PARENT_RUN_ID: self.parent,
                names.TRIAL_TAG: trial_id,
                names.ROLE_TAG: role,
                **(tags or {}),
            },
        ).info.run_id
        for step in steps:
            self.client.log_metric(run, "epoch", step, step=step)
            self.client.log_metric(run, "precision_at_1", 0.5, step=step)
        self.client.set_terminated(run, status)
        return run


def violations(checker: ModuleType, store: Store, trials: int, epochs: int = 2) -> list[str]:
    found = checker.check_store(store.client, EXPERIMENT, trials, epochs)
    return list(found.violations)


def test_a_clean_search_passes_and_main_exits_0(
    checker: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path)
    store.trial("t1", [0, 1, 2])
    store.trial("t2", [0, 1], tags={names.STOPPED_TAG: "asha"})  # stopped early: fine
    store.trial("c1", [0, 1, 2], role="control")  # not a trial: counted apart
    assert violations(checker, store, trials=2) == []
    code = checker.main([store.uri, EXPERIMENT, "--trials", "2", "--epochs", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "OK: 1 parent + 2 trial runs" in out and "1 control" in out


def test_a_lost_and_a_duplicated_trial_are_named(checker: ModuleType, tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.trial("t1", [0, 1, 2])
    store.trial("t1", [0, 1, 2])
    found = violations(checker, store, trials=3)
    assert "2 trial runs, expected 3 (trials asked)" in found
    assert "trial t1 has 2 runs" in found


def test_an_epoch_logged_twice_or_never_is_named(checker: ModuleType, tmp_path: Path) -> None:
    store = Store(tmp_path)
    twice = store.trial("t1", [0, 1, 1, 2])
    gap = store.trial("t2", [0, 2])
    found = violations(checker, store, trials=2)
    assert f"trial t1 ({twice}): epochs [1] logged more than once" in found
    metric = "metric 'precision_at_1' logged more than once at steps [1]"
    assert f"trial t1 ({twice}): {metric}" in found
    assert f"trial t2 ({gap}): epochs [1] never logged" in found


def test_an_unfinished_or_failed_trial_is_named(
    checker: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path)
    short = store.trial("t1", [0, 1])  # not stopped early: epochs are missing
    failed = store.trial(
        "t2", [0, 1, 2], status="FAILED", tags={names.ERROR_TAG: "Traceback\nActorDiedError"}
    )
    found = violations(checker, store, trials=2)
    assert (
        f"trial t1 ({short}): last epoch logged is 1 of 2, and the trial was not stopped early"
        in found
    )
    assert f"trial t2 ({failed}) is FAILED, expected FINISHED ActorDiedError" in found
    assert checker.main([store.uri, EXPERIMENT, "--trials", "2", "--epochs", "2"]) == 1
    assert "FAILED: 2 violations" in capsys.readouterr().err


def test_a_missing_experiment_or_parent_is_named(checker: ModuleType, tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert checker.check_store(store.client, "other", 1, 2).violations == [
        "no MLflow experiment named 'other'"
    ]
    store.client.create_run(store.experiment_id)  # a second search in the same experiment
    assert "2 parent runs, expected 1 (one search)" in violations(checker, store, trials=0)
