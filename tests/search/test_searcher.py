"""Trials the scheduler stopped early are PRUNED for Optuna, not COMPLETE with a partial score."""

from __future__ import annotations

import optuna

from minesearch.search._searcher import RecipeSearch, stopped_early
from minesearch.space import build_space


def searcher() -> RecipeSearch:
    return RecipeSearch(
        space=build_space({"lr": [1e-3, 1e-2]}),
        metric="mean_average_precision_at_r",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        epochs=4,
    )


def test_stopped_early_is_pruned_full_budget_is_complete_error_is_fail() -> None:
    search = searcher()
    for trial_id in ("full", "early", "broken"):
        search.suggest(trial_id)
    for epoch in range(3):
        search.on_trial_result(
            "early",
            {"mean_average_precision_at_r": 0.1, "epoch": epoch, "training_iteration": epoch + 1},
        )
    search.on_trial_complete("full", {"mean_average_precision_at_r": 0.5, "epoch": 4})
    search.on_trial_complete("early", {"mean_average_precision_at_r": 0.1, "epoch": 2})
    search.on_trial_complete("broken", None, error=True)
    states = [t.state for t in search._ot_study.trials]
    assert states == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
    ]
    assert search._ot_study.trials[0].value == 0.5
    assert search._ot_study.trials[1].intermediate_values  # TPE reads these for pruned trials


def test_stopped_early() -> None:
    assert stopped_early({"epoch": 2}, 4)
    assert not stopped_early({"epoch": 4}, 4)
    assert not stopped_early({}, 4)
