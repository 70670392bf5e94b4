"""The searcher: trials the scheduler stopped early are PRUNED for Optuna (not COMPLETE with a
partial score), and a recipe already proposed is never trained again."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from minesearch.recipe import SAMPLER_PARAMS_KEY, TrialConfig
from minesearch.results import recipe_key
from minesearch.search._recipe_search import RecipeSearch, stopped_early
from minesearch.search._tuner import planned_trials
from minesearch.space import build_space
from minesearch.tracking import KnownTrial


def searcher() -> RecipeSearch:
    return RecipeSearch(
        space=build_space({"lr": [1e-3, 1e-2, 1e-1]}),
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
    full, early, broken = (search.optuna_trial(t) for t in ("full", "early", "broken"))
    assert full.state == optuna.trial.TrialState.COMPLETE and full.value == 0.5
    assert early.state == optuna.trial.TrialState.PRUNED
    assert early.intermediate_values  # TPE reads these for pruned trials
    assert broken.state == optuna.trial.TrialState.FAIL


def test_stopped_early() -> None:
    assert stopped_early({"epoch": 2}, 4)
    assert not stopped_early({"epoch": 4}, 4)
    assert not stopped_early({}, 4)


# --- a recipe is never trained twice ------------------------------------------------------------

SIX = {  # 3 losses x 2 miners, every pair allowed: 6 distinct recipes
    "loss": ["TripletMarginLoss", "ContrastiveLoss", "MultiSimilarityLoss"],
    "miner": ["none", "BatchHardMiner"],
    "lr": 1e-3,
}
METRIC = "selected.mean_average_precision_at_r"


def six_recipe_search(seed: int) -> RecipeSearch:
    space = build_space(SIX)
    trials, choices = planned_trials(12, space, None)
    assert trials == 6 and choices is not None and len(choices) == 6  # 12 asked, 6 exist
    return RecipeSearch(
        space=space,
        metric=METRIC,
        mode="max",
        sampler=optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed),
        epochs=2,
        choices=choices,
    )


def recipe_of(config: dict[str, Any]) -> str:
    return recipe_key(TrialConfig.from_config(config).recipe)


@pytest.mark.parametrize("seed", range(5))
def test_a_six_recipe_space_trains_each_recipe_once(seed: int) -> None:
    search = six_recipe_search(seed)
    proposed = []
    for i in range(6):
        config = search.suggest(f"t{i}")
        assert config is not None
        proposed.append(recipe_of(config))
        search.on_trial_complete(f"t{i}", {METRIC: 0.1 * i, "epoch": 2})
    assert len(set(proposed)) == 6
    # every proposal Optuna made is accounted for: trained, or told its recipe's known value
    study = search.study
    assert len(study.trials) == 6 + search.repeats
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)


def test_a_repeat_is_told_the_known_outcome_now_or_when_its_trainer_ends() -> None:
    search = six_recipe_search(0)
    first = search.suggest("a")
    assert first is not None
    key = recipe_of(first)
    # Optuna proposes the running recipe again: it is not trained, but waits for its value
    search.study.enqueue_trial(search.optuna_trial("a").params)
    second = search.suggest("b")
    assert second is not None and recipe_of(second) != key
    assert search.repeats == 1 and len(search.waiting[key]) == 1
    search.on_trial_complete("a", {METRIC: 0.42, "epoch": 2})
    repeat = next(
        t
        for t in search.study.trials
        if t.params == search.optuna_trial("a").params
        and t.number != search.optuna_trial("a").number
    )
    assert repeat.state == optuna.trial.TrialState.COMPLETE and repeat.value == 0.42
    # once known, a repeat is answered at once
    search.study.enqueue_trial(search.optuna_trial("a").params)
    third = search.suggest("c")
    assert third is not None and recipe_of(third) not in (key, recipe_of(second))
    assert search.repeats == 2 and not search.waiting.get(key)


def test_a_repeat_of_a_pruned_trial_is_pruned_with_its_curve() -> None:
    search = six_recipe_search(1)
    assert search.suggest("a") is not None
    for step in (1, 2):
        search.on_trial_result(
            "a", {METRIC: 0.1 * step, "epoch": step - 1, "training_iteration": step}
        )
    search.on_trial_complete("a", {METRIC: 0.2, "epoch": 1})  # stopped before its 2 epochs
    search.study.enqueue_trial(search.optuna_trial("a").params)
    assert search.suggest("b") is not None
    repeats = [t for t in search.study.trials if t.params == search.optuna_trial("a").params]
    assert [t.state for t in repeats] == [optuna.trial.TrialState.PRUNED] * 2
    assert repeats[1].intermediate_values == repeats[0].intermediate_values


# --- warm start ----------------------------------------------------------------------------------


def earlier_search() -> tuple[list[KnownTrial], list[str]]:
    """Three trials of an earlier search of the six-recipe space, as MLflow gives them back."""
    search = six_recipe_search(3)
    known, keys = [], []
    for i, (state, value) in enumerate([("COMPLETE", 0.9), ("COMPLETE", 0.2), ("PRUNED", None)]):
        config = search.suggest(f"t{i}")
        assert config is not None
        params = config[SAMPLER_PARAMS_KEY]
        assert params == search.optuna_trial(f"t{i}").params  # what the child run's tag keeps
        steps = [(1, 0.1), (2, value if value is not None else 0.05)]
        known.append(KnownTrial(params, state, value, steps, f"run{i}"))  # type: ignore[arg-type]
        keys.append(recipe_of(config))
    return known, keys


def test_warm_start_tells_the_sampler_and_never_trains_a_known_recipe() -> None:
    known, keys = earlier_search()
    stray = KnownTrial({"loss": "ArcFaceLoss", "miner": "none"}, "COMPLETE", 1.0, [], "gone")
    space = build_space(SIX)
    search = RecipeSearch(
        space=space,
        metric=METRIC,
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=2),
        epochs=2,
        choices=planned_trials(12, space, None)[1],
        known=[*known, stray],
    )
    assert search.warmed == 3  # the stray recipe is not in this space: told as failed
    states = [t.state for t in search.study.trials]
    assert states == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
    ]
    assert search.study.best_value == 0.9
    assert search.study.trials[2].intermediate_values == {1: 0.1, 2: 0.05}
    proposed = []
    for i in range(3):  # the space has 3 recipes the earlier search did not train
        config = search.suggest(f"n{i}")
        assert config is not None
        proposed.append(recipe_of(config))
    assert not set(proposed) & set(keys) and len(set(proposed)) == 3


# --- the control is proposed first -------------------------------------------------------------


TEXT = {
    "loss": ["NTXentLoss", "MultiSimilarityLoss", "TripletMarginLoss"],
    "miner": ["none", "MultiSimilarityMiner"],
    "temperature": {"low": 0.03, "high": 0.2, "log": True},
    "lr": {"low": 1.0e-5, "high": 1.0e-4, "log": True},
    "backbone_lr_factor": 1.0,
    "weight_decay": 0.01,
    "warmup_epochs": 0.3,
    "head": ["none", "linear"],
    "optimizer": "adamw",
}


@pytest.mark.parametrize("seed", range(3))
def test_the_enqueued_control_recipe_is_the_first_proposal(seed: int) -> None:
    from minesearch.config import parse_spec
    from minesearch.recipe import control_recipe
    from minesearch.space import locate

    spec = parse_spec({"name": "t", "train": {"epochs": 3}, "search": {"params": TEXT}})
    space = build_space(spec.search.params)
    control = control_recipe(spec, "text")
    params = locate(space, control, spec)
    assert params is not None
    search = RecipeSearch(
        space=space,
        metric=METRIC,
        mode="max",
        sampler=optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed),
        epochs=3,
        control=params,
    )
    first = search.suggest("t0")
    assert first is not None
    trial = TrialConfig.from_config(first)
    assert trial.control, "the first proposal is marked as the search's control"
    recipe = trial.recipe.resolved(spec)
    assert (
        recipe.loss == "NTXentLoss" and recipe.head == "none" and recipe.lr == pytest.approx(2e-5)
    )
    assert recipe.optimizer == "adamw" and recipe.weight_decay == 0.01
    search.on_trial_complete("t0", {METRIC: 0.5, "epoch": 3})
    later = [search.suggest(f"t{i}") for i in range(1, 4)]
    assert all(c is not None and not TrialConfig.from_config(c).control for c in later)
