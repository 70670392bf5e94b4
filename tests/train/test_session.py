"""The worker loop through a `Session`, without Ray: what it reports, the checkpoint it hands over,
continuing from one, and that a process running trial after trial (Tune's actor reuse) gives each
the result a fresh process would."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils import common_functions as pml_common
from recording_session import RecordingSession

from minesearch.config import SpaceSpec, parse_spec
from minesearch.data import load_folds
from minesearch.recipe import Recipe, TrialConfig
from minesearch.train import (
    Session,
    TrainingState,
    run_in_process,
    worker_config,
)
from minesearch.train._pml_internals import collect_stats

EPOCHS = 2
# what differs between two runs of the same recipe by design: clocks, memory, the machine
UNSTABLE = ("_s", "_share", "memory.", "system/", "cost.", "samples_per_s")


@pytest.fixture(scope="module")
def spec() -> SpaceSpec:
    return parse_spec(
        {
            "name": "session",
            "data": {"source": "digits", "split": {"val": 0.3, "test": 0.0, "seed": 0}},
            "model": {"backbone": "convnet", "embedding_dim": 16, "hidden_dim": 32},
            "train": {"epochs": EPOCHS, "batch": {"classes": 4, "per_class": 6}},
        }
    )


def config(spec: SpaceSpec) -> dict[str, Any]:
    recipe = Recipe("ContrastiveLoss", "BatchHardMiner", {}, {}, lr=3e-3)
    return worker_config(spec, TrialConfig(recipe))


def stable(report: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in report.items() if not any(part in k for part in UNSTABLE)}


def test_a_session_satisfies_the_protocol(tmp_path: Path) -> None:
    session: Session = RecordingSession(tmp_path)  # mypy checks the protocol here
    assert session.world == 1


def test_the_loop_reports_every_epoch_with_its_checkpoint(tmp_path: Path, spec: SpaceSpec) -> None:
    session = RecordingSession(tmp_path)
    run_in_process(config(spec), session, load_folds)
    assert [r["epoch"] for r in session.reports] == list(range(EPOCHS + 1))
    assert "setup_s" in session.reports[0] and "train_loss" in session.reports[1]
    saved = [TrainingState.load(str(c)).epoch for c in session.checkpoints]
    assert saved == list(range(EPOCHS + 1))


def test_the_loop_continues_after_the_checkpoint_it_is_handed(
    tmp_path: Path, spec: SpaceSpec
) -> None:
    first = RecordingSession(tmp_path / "first")
    run_in_process(config(spec), first, load_folds)
    resumed = RecordingSession(tmp_path / "resumed", resume_from=first.checkpoints[1])
    run_in_process(config(spec), resumed, load_folds)
    assert [r["epoch"] for r in resumed.reports] == [2]  # epoch 1 was in the checkpoint
    # the same weights, optimiser and batches: epoch 2 as the uninterrupted run had it
    assert stable(resumed.reports[0]) == pytest.approx(stable(first.reports[2]))


def test_the_last_checkpoint_leaves_the_optimiser_out_and_restores_to_a_report(
    tmp_path: Path, spec: SpaceSpec
) -> None:
    """Nothing trains from the last epoch's checkpoint, so it holds no optimiser state (AdamW's
    moments are two thirds of one); a run handed it (a trial retried after its last report)
    reports that epoch again, with its scores, and trains nothing."""
    first = RecordingSession(tmp_path / "first")
    run_in_process(config(spec), first, load_folds)
    states = [TrainingState.load(str(c)) for c in first.checkpoints]
    assert [bool(s.optimizer.get("state")) for s in states] == [False, True, False]
    assert states[-1].optimizer == {} and states[1].optimizer["param_groups"]
    again = RecordingSession(tmp_path / "again", resume_from=first.checkpoints[-1])
    run_in_process(config(spec), again, load_folds)
    assert [r["epoch"] for r in again.reports] == [EPOCHS]
    assert "train_loss" not in again.reports[0]  # reported, not trained
    scores = {k: v for k, v in stable(first.reports[-1]).items() if k in again.reports[0]}
    assert "mean_average_precision_at_r" in scores and "selected_epoch" in scores
    assert {k: again.reports[0][k] for k in scores} == pytest.approx(scores)
    assert TrainingState.load(str(again.checkpoints[0])).optimizer == {}


def test_a_reused_process_gives_a_trial_what_a_fresh_one_would(
    tmp_path: Path, spec: SpaceSpec
) -> None:
    """Run the same trial twice in this process, the second time after an earlier 'trial' left
    the process's global state changed: seeds, torch's threads, PML's statistics switch. Every
    score, loss and mining statistic must be the same."""
    first = RecordingSession(tmp_path / "first")
    run_in_process(config(spec), first, load_folds)
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    torch.rand(7)  # the global generator moved on
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads - 1) if threads > 1 else 2)
    collect_stats(False)
    second = RecordingSession(tmp_path / "second")
    try:
        run_in_process(config(spec), second, load_folds)
    finally:
        torch.set_num_threads(threads)
    assert pml_common.COLLECT_STATS is True  # telemetry's nonzero-loss share needs it
    assert torch.get_num_threads() == int(spec.train.cpus_per_worker)
    assert len(second.reports) == len(first.reports)
    for a, b in zip(first.reports, second.reports, strict=True):
        assert stable(b) == stable(a)  # bit for bit: nothing of the first run leaked
