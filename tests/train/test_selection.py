"""Best-epoch selection: which epoch a trial is scored at, and which checkpoint Ray keeps."""

from __future__ import annotations

import numpy as np
import pytest

from minesearch.train import CHECKPOINT_RANK, Selected

MAP = "mean_average_precision_at_r"


def curve(selected: Selected, values: list[float]) -> list[dict[str, float]]:
    """Reports of a trial whose metric follows `values` from epoch 0."""
    reports = []
    for epoch, value in enumerate(values):
        selected.update(epoch, {MAP: value, "precision_at_1": value + 0.1, "train_loss": 9.0})
        reports.append(selected.report(epoch))
    return reports


def test_best_epoch_is_kept_past_a_decline() -> None:
    reports = curve(Selected(MAP, "max", "best_epoch"), [0.30, 0.50, 0.40, 0.45])
    assert [r["selected_epoch"] for r in reports] == [0, 1, 1, 1]
    assert reports[-1][f"selected.{MAP}"] == 0.50
    assert reports[-1]["selected.precision_at_1"] == pytest.approx(0.60)
    assert "selected.train_loss" not in reports[-1]  # only retrieval metrics


def test_epoch_0_can_win_and_ties_keep_the_earlier_epoch() -> None:
    reports = curve(Selected(MAP, "max", "best_epoch"), [0.31, 0.20, 0.31, 0.25])
    assert [r["selected_epoch"] for r in reports] == [0, 0, 0, 0]


def test_mode_min_and_rule_last() -> None:
    low = curve(Selected(MAP, "min", "best_epoch"), [0.5, 0.2, 0.3])
    assert low[-1]["selected_epoch"] == 1
    last = curve(Selected(MAP, "max", "last"), [0.5, 0.9, 0.1])
    assert [r["selected_epoch"] for r in last] == [0, 1, 2]
    assert last[-1][f"selected.{MAP}"] == 0.1


@pytest.mark.parametrize("seed", range(20))
def test_the_highest_checkpoint_rank_is_the_selected_epoch(seed: int) -> None:
    """Ray Train keeps the top checkpoint by CHECKPOINT_RANK (and the latest): it must be the
    selected epoch's, whatever the curve."""
    values = list(np.random.default_rng(seed).integers(0, 4, size=8) / 10)  # ties are common
    selected = Selected(MAP, "max", "best_epoch")
    reports = curve(selected, values)
    kept = max(range(len(reports)), key=lambda e: reports[e][CHECKPOINT_RANK])
    assert kept == selected.epoch == values.index(max(values))


def test_a_restarted_worker_continues_the_selection() -> None:
    first = Selected(MAP, "max", "best_epoch")
    curve(first, [0.3, 0.6, 0.5])
    again = Selected(MAP, "max", "best_epoch")
    again.restore(first.to_dict())
    assert not again.update(3, {MAP: 0.55})
    assert again.epoch == 1 and again.scores[MAP] == 0.6


def test_the_objective_sees_a_decline_the_selection_hides() -> None:
    """Selection floors a trial at epoch 0; what the scheduler and sampler compare does not: a
    trial that only lost ground reads below its start, one that held reads at it."""
    declined = curve(Selected(MAP, "max", "best_epoch"), [0.30, 0.20, 0.10])
    held = curve(Selected(MAP, "max", "best_epoch"), [0.30, 0.30, 0.29])
    assert declined[-1][f"selected.{MAP}"] == held[-1][f"selected.{MAP}"] == 0.30
    assert declined[-1][f"trained.{MAP}"] == 0.20
    assert held[-1][f"trained.{MAP}"] == 0.30
    assert declined[-1][f"start.{MAP}"] == held[-1][f"start.{MAP}"] == 0.30
    # before any epoch trained the objective is the start (Tune needs it in every report)
    assert declined[0][f"trained.{MAP}"] == 0.30


def test_objective_under_mode_min_and_rule_last() -> None:
    low = curve(Selected(MAP, "min", "best_epoch"), [0.1, 0.4, 0.3])
    assert low[-1][f"trained.{MAP}"] == 0.3 and low[-1]["selected_epoch"] == 0
    last = curve(Selected(MAP, "max", "last"), [0.5, 0.9, 0.1])
    assert last[-1][f"trained.{MAP}"] == 0.1


def test_a_restarted_worker_continues_the_objective() -> None:
    first = Selected(MAP, "max", "best_epoch")
    curve(first, [0.3, 0.25, 0.2])
    again = Selected(MAP, "max", "best_epoch")
    again.restore(first.to_dict())
    again.update(3, {MAP: 0.22})
    assert again.report(3)[f"trained.{MAP}"] == 0.25
    assert again.report(3)[f"start.{MAP}"] == 0.3
