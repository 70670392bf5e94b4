"""K class folds trained in lockstep in one trial are exactly K separate single-fold trainings.

In process, no Ray: the loop through a recording session. The recipe mines with
DistanceWeightedMiner, which samples its negatives from torch's global generator
(torch.multinomial), so the folds' generators must be kept apart for the equality to hold; a run
with that switched off shows that the test can fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from recording_session import RecordingSession

from minesearch.config import SpaceSpec, parse_spec
from minesearch.data import Parts, load_folds, load_parts
from minesearch.recipe import Recipe, TrialConfig
from minesearch.train import TrainingState, fold_metric, run_in_process
from minesearch.train._folds import GlobalRng
from minesearch.train._untrained import forget_untrained

FOLDS, EPOCHS = 3, 2
RECIPE = Recipe("TripletMarginLoss", "DistanceWeightedMiner", {}, {}, lr=3e-3)
# what the retrieval evaluation reports (RetrievalScores.as_metrics)
RETRIEVAL = (
    "precision_at_1",
    "r_precision",
    "mean_average_precision_at_r",
    "recall_at_1",
    "recall_at_8",
    "num_queries",
)


@pytest.fixture(autouse=True)
def threads() -> Iterator[None]:
    kept = torch.get_num_threads()
    yield
    torch.set_num_threads(kept)


@pytest.fixture(scope="module")
def spec() -> SpaceSpec:
    return parse_spec(
        {
            "name": "folds",
            "data": {"source": "digits", "split": {"val": 0.3, "test": 0.2, "seed": 0}},
            "model": {"backbone": "convnet", "embedding_dim": 16, "hidden_dim": 32},
            "train": {"epochs": EPOCHS, "batch": {"classes": 2, "per_class": 8}},
            "search": {"folds": FOLDS},
        }
    )


def run(
    spec: SpaceSpec, root: Path, trial: TrialConfig, resume_from: Path | None = None
) -> RecordingSession:
    session = RecordingSession(root, resume_from)
    run_in_process({"spec": spec, "trial": trial}, session, load_folds)
    return session


def separately(spec: SpaceSpec, root: Path, fold: int) -> RecordingSession:
    """Fold `fold` trained alone, as a single-split trial whose split is that fold."""

    def only_this_fold(spec: SpaceSpec, folds: int) -> list[Parts]:
        assert folds == 1
        return [load_parts(spec, fold=fold, folds=FOLDS)]

    session = RecordingSession(root)
    trial = TrialConfig(RECIPE, folds=1)
    forget_untrained()  # its epoch 0 evaluated here, not the lockstep run's scores kept
    run_in_process({"spec": spec, "trial": trial}, session, only_this_fold)
    return session


@pytest.fixture(scope="module")
def separate(spec: SpaceSpec, tmp_path_factory: pytest.TempPathFactory) -> list[RecordingSession]:
    return [separately(spec, tmp_path_factory.mktemp(f"fold{k}"), k) for k in range(FOLDS)]


@pytest.fixture(scope="module")
def lockstep(spec: SpaceSpec, tmp_path_factory: pytest.TempPathFactory) -> RecordingSession:
    return run(spec, tmp_path_factory.mktemp("lockstep"), TrialConfig(RECIPE))


def test_each_folds_metrics_are_its_separate_trainings(
    lockstep: RecordingSession, separate: list[RecordingSession]
) -> None:
    assert [r["epoch"] for r in lockstep.reports] == list(range(EPOCHS + 1))
    for epoch, report in enumerate(lockstep.reports):
        for k, alone in enumerate(separate):
            for name in RETRIEVAL:
                assert report[fold_metric(k, name)] == pytest.approx(
                    alone.reports[epoch][name], abs=1e-6
                ), (epoch, k, name)


def test_the_reported_metric_is_the_mean_over_folds(
    lockstep: RecordingSession, separate: list[RecordingSession]
) -> None:
    for epoch, report in enumerate(lockstep.reports):
        for name in RETRIEVAL:
            mean = np.mean([alone.reports[epoch][name] for alone in separate])
            assert report[name] == pytest.approx(mean, abs=1e-9), (epoch, name)
    metric = "mean_average_precision_at_r"
    curve = [r[metric] for r in lockstep.reports]
    best = int(np.argmax(curve))
    last = lockstep.reports[-1]
    assert last["selected_epoch"] == best and last[f"selected.{metric}"] == curve[best]
    assert last[f"start.{metric}"] == curve[0] and last[f"trained.{metric}"] == max(curve[1:])
    assert not any(k.startswith("fold") and "selected" in k for k in last)


def test_the_checkpoint_holds_every_fold_with_fold_0_as_the_model(
    lockstep: RecordingSession, separate: list[RecordingSession]
) -> None:
    saved = TrainingState.load(lockstep.checkpoints[-1])
    assert saved.fold_count == FOLDS
    for k, alone in enumerate(separate):
        own = TrainingState.load(alone.checkpoints[-1])
        for name, tensor in own.model.items():
            assert torch.equal(saved.fold(k)["model"][name], tensor), (k, name)
    assert saved.model is saved.fold(0)["model"]  # what scoring and export load


def test_a_restarted_trial_continues_every_fold(spec: SpaceSpec, tmp_path: Path) -> None:
    """A deterministic miner: the checkpoint keeps weights, not the global generators, so a
    random miner's restart (with K folds as with one) draws other samples than the first run."""
    trial = TrialConfig(Recipe("ContrastiveLoss", "BatchHardMiner", {}, {}, lr=3e-3))
    first = run(spec, tmp_path / "first", trial)
    resumed = run(spec, tmp_path / "resumed", trial, resume_from=first.checkpoints[1])
    assert [r["epoch"] for r in resumed.reports] == [2]
    for k in range(FOLDS):
        name = fold_metric(k, "mean_average_precision_at_r")
        assert resumed.reports[0][name] == pytest.approx(first.reports[2][name], abs=1e-6)


def test_a_checkpoint_of_another_fold_count_is_refused(
    spec: SpaceSpec, tmp_path: Path, lockstep: RecordingSession
) -> None:
    with pytest.raises(ValueError, match=r"search\.folds: the checkpoint holds 3 folds"):
        run(spec, tmp_path, TrialConfig(RECIPE, folds=2), resume_from=lockstep.checkpoints[1])


def test_without_their_own_generators_the_folds_drift(
    spec: SpaceSpec,
    tmp_path: Path,
    separate: list[RecordingSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The equality above depends on the swap: with one shared generator, fold 1 samples other
    negatives than it does alone (the test could fail)."""

    @contextmanager
    def shared(self: GlobalRng, device: torch.device) -> Iterator[None]:
        yield

    monkeypatch.setattr(GlobalRng, "active", shared)
    drifted = run(spec, tmp_path, TrialConfig(RECIPE))
    name = "mean_average_precision_at_r"
    assert drifted.reports[-1][fold_metric(1, name)] != pytest.approx(
        separate[1].reports[-1][name], abs=1e-6
    )
