"""What `RecipeSearch` takes on trust from Ray Tune's OptunaSearch, checked on a real one: each test
names the behaviour and the installed Ray and Optuna when an upgrade changes it.

RecipeSearch reads none of OptunaSearch's private attributes; it relies on these public
behaviours instead (minesearch/search/_recipe_search.py says how it uses each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import ray
from ray.tune.search.optuna import OptunaSearch

from minesearch.search._recipe_search import STUDY_NAME, RecipeSearch
from minesearch.space import build_space

CHECKED_ON = "ray 2.60.0, optuna 5.1.0"
METRIC = "score"


def upgraded(behaviour: str) -> str:
    return (
        f"ray {ray.__version__}, optuna {optuna.__version__} (checked on {CHECKED_ON}): "
        f"OptunaSearch {behaviour}; re-check minesearch/search/_recipe_search.py"
    )


def optuna_search(space: Any, storage: optuna.storages.BaseStorage) -> OptunaSearch:
    return OptunaSearch(
        space=space,
        metric=METRIC,
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        storage=storage,
        study_name=STUDY_NAME,
    )


def recipe_search() -> RecipeSearch:
    return RecipeSearch(
        space=build_space({"lr": [1e-3, 1e-2, 1e-1], "loss": ["NTXentLoss", "ContrastiveLoss"]}),
        metric=METRIC,
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        epochs=2,
    )


def test_its_study_lives_in_the_storage_and_name_given() -> None:
    """RecipeSearch loads the same study with `optuna.load_study` to enqueue and read trials."""
    storage = optuna.storages.InMemoryStorage()
    search = optuna_search(lambda trial: {"x": trial.suggest_float("x", 0, 1)}, storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    assert names == [STUDY_NAME], upgraded(
        f"no longer creates its study in the `storage` under the `study_name` given ({names})"
    )
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    study.enqueue_trial({"x": 0.25})
    config = search.suggest("a")
    assert config is not None and config["x"] == 0.25, upgraded(
        "no longer asks its study in the `storage` under the `study_name` given to it"
    )
    search.on_trial_complete("a", {METRIC: 0.5})
    (trial,) = study.trials
    assert (trial.state, trial.value) == (optuna.trial.TrialState.COMPLETE, 0.5), upgraded(
        "no longer tells its study in the given storage"
    )


def test_each_new_trial_id_asks_a_new_trial_and_the_space_sees_its_number() -> None:
    """RecipeSearch asks each proposal under an id of its own and learns its trial's number from
    the define-by-run function's argument (`trial.number`)."""
    seen: list[int] = []

    def space(trial: optuna.Trial) -> dict[str, Any]:
        seen.append(trial.number)
        return {"x": trial.suggest_float("x", 0, 1)}

    storage = optuna.storages.InMemoryStorage()
    search = optuna_search(space, storage)
    for trial_id in ("a", "b"):
        search.suggest(trial_id)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    assert [t.number for t in study.trials] == seen == [0, 1], upgraded(
        f"no longer asks one new trial per new trial id, numbered as its space sees it ({seen})"
    )


def test_told_without_a_value_it_is_pruned_with_an_error_failed() -> None:
    """How RecipeSearch tells a repeat its known outcome: through on_trial_result and
    on_trial_complete, as Tune does."""
    storage = optuna.storages.InMemoryStorage()
    search = optuna_search(lambda trial: {"x": trial.suggest_float("x", 0, 1)}, storage)
    for trial_id in ("done", "stopped", "broken"):
        search.suggest(trial_id)
    search.on_trial_result("stopped", {METRIC: 0.1, "training_iteration": 1})
    search.on_trial_complete("done", {METRIC: 0.5})
    search.on_trial_complete("stopped", None)
    search.on_trial_complete("broken", None, error=True)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "PRUNED", "FAIL"], upgraded(f"now tells these states: {states}")
    assert study.trials[1].intermediate_values == {1: 0.1}, upgraded(
        "no longer reports a result's metric at its training_iteration"
    )


def test_its_checkpoint_carries_the_subclass_state(tmp_path: Path) -> None:
    """`--resume` restores RecipeSearch through OptunaSearch.save/restore: the recipes known, the
    trials it maps, and its own view of the study must come back, on one shared storage."""
    search = recipe_search()
    first = search.suggest("a")
    assert first is not None
    search.on_trial_complete("a", {METRIC: 0.5, "epoch": 2})
    saved = tmp_path / "searcher.pkl"
    search.save(str(saved))

    restored = recipe_search()
    restored.restore(str(saved))
    state = ("trainer_of", "key_of", "proposal_of", "number_of", "outcomes", "asked")
    lost = [name for name in state if getattr(restored, name) != getattr(search, name)]
    assert not lost, upgraded(f"save/restore no longer carries RecipeSearch's {lost}")
    assert restored.optuna_trial("a").value == 0.5
    params = {"lr": 1e-2, "loss": "ContrastiveLoss"}
    if params == search.optuna_trial("a").params:
        params = {"lr": 1e-1, "loss": "NTXentLoss"}
    restored.study.enqueue_trial(params)
    second = restored.suggest("b")
    assert second is not None and restored.optuna_trial("b").params == params, upgraded(
        "restored no longer shares its study's storage with RecipeSearch's own view of it"
    )
