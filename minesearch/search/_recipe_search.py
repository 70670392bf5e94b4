"""Ray's OptunaSearch, telling Optuna the truth about early stops, and never training one recipe
twice.

Ray tells Optuna a trial stopped by ASHA as COMPLETE with its partial score, so TPE would learn
from an epoch-2 score as if it were a finished recipe's. Here such a trial is PRUNED: Optuna then
reads its intermediate values (reported every epoch), as it does for its own pruners.

Samplers propose the same recipe again, often in a small categorical space (12 trials of a
6-recipe space once trained NTXent + MultiSimilarityMiner twice, with identical curves). A
proposal whose recipe was already proposed is not trained: Optuna is told the known outcome (at
once, or when the trial that trains it ends) and asked again. No MLflow run is made for it: a run
with no training would be a duplicate row in every comparison, and would cost a trial actor's
start. In a finite space the search asks for at most as many trials as it has distinct recipes
(`distinct_recipes`), and when the sampler keeps repeating itself an unseen recipe is enqueued.

The control first: when the space holds the control recipe (`minesearch.space.locate`), it is
enqueued as the first proposal, so the search starts from a known-good point and explores around
it; its trial carries `TrialConfig.control` (the scheduler never stops it, and it is read back as
the search's control, with no second run beside the search).

Warm start (`search.warm_start`): the trials of earlier searches are told to the sampler before
its first proposal (enqueued, asked through the space function, so that Optuna records their
distributions, and told their outcome), and their recipes count as known: never trained again.
Each proposal's Optuna params travel in the trial's config (`SAMPLER_PARAMS_KEY`), so that its
child run keeps them for a later warm start.

Only Ray's and Optuna's public APIs are used: the study is OptunaSearch's own, loaded from the
storage and name given to it; each proposal is asked of OptunaSearch under an id of its own, so
that a repeat is told its outcome through the Searcher methods Tune itself calls. The one thing
taken on trust, that OptunaSearch's checkpoint (`save`) carries this subclass's state, is checked
by tests/search/test_tune_optuna_contract.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

from minesearch.config.vocab import EPOCH
from minesearch.recipe import SAMPLER_PARAMS_KEY, TrialConfig
from minesearch.results import recipe_key
from minesearch.space import SearchSpace, SpaceFn, enumerate_choices
from minesearch.tracking import KnownTrial

logger = logging.getLogger(__name__)
MAX_REPEATS = 50  # proposals in a row that repeat known recipes before an unseen one is enqueued
STUDY_NAME = "minesearch"  # the study's name in the storage RecipeSearch gives OptunaSearch
Outcome = tuple[TrialState, float | None, list[tuple[int, float]]]  # state, value, intermediates


def distinct_recipes(space: SearchSpace) -> list[dict[str, Any]] | None:
    """The Optuna params of every distinct recipe of a finite space; None when it has ranges."""
    try:
        return [params for params, _ in enumerate_choices(space)]
    except ValueError:
        return None


class _Asking:
    """The space as OptunaSearch calls it, noting which Optuna trial each proposal is (its number,
    read through Optuna's public Trial API)."""

    def __init__(self, space: SpaceFn) -> None:
        self.space = space
        self.number: int | None = None  # the trial of the latest proposal

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        self.number = trial.number
        return self.space(trial)


class RecipeSearch(OptunaSearch):
    """OptunaSearch that reports early-stopped trials as PRUNED (`epochs`: the full budget) and
    reuses the outcome of a recipe already proposed (`choices`: a finite space's distinct
    recipes, to fall back on when the sampler repeats itself)."""

    def __init__(
        self,
        space: SpaceFn,
        *,
        metric: str,
        mode: str,
        sampler: optuna.samplers.BaseSampler,
        epochs: int,
        choices: list[dict[str, Any]] | None = None,
        known: Sequence[KnownTrial] = (),
        control: dict[str, Any] | None = None,
    ) -> None:
        storage = optuna.storages.InMemoryStorage()
        self.asking = _Asking(space)
        super().__init__(
            space=self.asking,
            metric=metric,
            mode=mode,
            sampler=sampler,
            storage=storage,
            study_name=STUDY_NAME,
        )
        # the study OptunaSearch created: the same storage, seen through a Study of our own
        self.study = optuna.load_study(
            study_name=STUDY_NAME,
            storage=storage,
            sampler=sampler,
            pruner=optuna.pruners.NopPruner(),
        )
        self.space = space
        self.epochs = epochs
        self.choices = choices or []
        self.asked = 0  # proposals asked of OptunaSearch, each under an id of its own
        self.number_of: dict[str, int] = {}  # asked id -> its Optuna trial's number
        self.proposal_of: dict[str, str] = {}  # Tune trial id -> the asked id it trains
        self.finished: set[str] = set()  # Tune trials that ended
        self.trainer_of: dict[str, str] = {}  # recipe key -> the Tune trial that trains it
        self.key_of: dict[str, str] = {}  # Tune trial id -> its recipe key
        self.steps: dict[str, list[tuple[int, float]]] = {}  # Tune trial id -> intermediates
        self.outcomes: dict[str, Outcome] = {}  # recipe key -> how its trial ended
        self.waiting: dict[str, list[str]] = {}  # recipe key -> asked ids of repeats to tell
        self.repeats = 0  # proposals answered without training
        self.warmed = self._warm_start(known) if known else 0  # earlier trials told to Optuna
        self.control_key = self._enqueue_control(control) if control is not None else None

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        for _ in range(MAX_REPEATS):
            asked, config = self._ask(trial_id)
            if config is None:
                return None
            key = recipe_key(TrialConfig.from_config(config).recipe)
            if key not in self.trainer_of:
                return self._accept(trial_id, asked, key, config)
            self._reuse(asked, key)
        # The sampler keeps repeating itself: propose an unseen recipe of a finite space, or (an
        # infinite space, which repeats itself only by accident) train the repeat.
        self._enqueue_unseen()
        asked, config = self._ask(trial_id)
        if config is None:
            return None
        key = recipe_key(TrialConfig.from_config(config).recipe)
        return self._accept(trial_id, asked, key, config)

    def optuna_trial(self, trial_id: str) -> FrozenTrial:
        """The Optuna trial that Tune trial `trial_id` trains, as Optuna now records it."""
        return self.study.trials[self.number_of[self.proposal_of[trial_id]]]

    def _ask(self, trial_id: str) -> tuple[str, dict[str, Any] | None]:
        """A new proposal of OptunaSearch, asked under an id of its own (a repeat is then told
        its outcome under that id, apart from the proposal Tune's trial trains)."""
        self.asked += 1
        asked = f"{trial_id}#{self.asked}"
        config = super().suggest(asked)
        assert self.asking.number is not None  # the space was called: the trial is known
        self.number_of[asked] = self.asking.number
        return asked, config

    def _accept(
        self, trial_id: str, asked: str, key: str, config: dict[str, Any]
    ) -> dict[str, Any]:
        self.trainer_of.setdefault(key, trial_id)
        self.key_of[trial_id] = key
        self.proposal_of[trial_id] = asked
        if key == self.control_key:  # the control recipe: trained in full, read as the control
            trial = replace(TrialConfig.from_config(config), control=True)
            config = {**config, **trial.to_config()}
        return {**config, SAMPLER_PARAMS_KEY: dict(self.optuna_trial(trial_id).params)}

    def _enqueue_control(self, params: dict[str, Any]) -> str | None:
        """Have the control (the space's params for it) proposed first; its recipe's key, or
        None when an earlier search (warm start) already trained it."""
        space = self.space
        assert isinstance(space, SearchSpace)  # a grid proposes by index: no control enqueued
        key = recipe_key(space.recipe(optuna.trial.FixedTrial(params)))  # type: ignore[arg-type]
        if key in self.trainer_of:
            return None
        self.study.enqueue_trial(params)
        return key

    def _warm_start(self, known: Sequence[KnownTrial]) -> int:
        """Tell Optuna the earlier trials; return how many it took. A trial that does not fit this
        space (a choice it no longer has) is told as failed, which samplers ignore."""
        assert isinstance(self.space, SearchSpace)  # grid searches take no warm start
        told = 0
        for earlier in known:
            self.study.enqueue_trial(earlier.params, skip_if_exists=False)
            asked = f"warm:{earlier.run_id}"
            try:  # asked through the space, so that Optuna records the params' distributions
                config = super().suggest(asked)
                assert config is not None  # a define-by-run space always proposes
                key = recipe_key(TrialConfig.from_config(config).recipe)
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning(
                    "warm start: run %s does not fit this space: %s", earlier.run_id, exc
                )
                super().on_trial_complete(asked, None, error=True)
                continue
            outcome: Outcome = (TrialState[earlier.state], earlier.value, list(earlier.steps))
            self.trainer_of.setdefault(key, f"warm:{earlier.run_id}")
            self.outcomes.setdefault(key, outcome)
            self._tell(asked, outcome)
            told += 1
        return told

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        super().on_trial_result(self.proposal_of[trial_id], result)
        if self.metric in result and trial_id not in self.finished:
            self.steps.setdefault(trial_id, []).append(
                (int(result[TRAINING_ITERATION]), float(result[self.metric]))
            )

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if not error and result is not None and stopped_early(result, self.epochs):
            result = {k: v for k, v in result.items() if k != self.metric}  # no value: PRUNED
        super().on_trial_complete(self.proposal_of[trial_id], result, error)
        self.finished.add(trial_id)
        key = self.key_of.get(trial_id)
        if key is None or self.trainer_of.get(key) != trial_id:
            return
        value = None if result is None else result.get(self.metric)
        state = TrialState.FAIL if error else TrialState.PRUNED if value is None else None
        self.outcomes[key] = (state or TrialState.COMPLETE, value, self.steps.get(trial_id, []))
        for repeat in self.waiting.pop(key, []):
            self._tell(repeat, self.outcomes[key])

    def _reuse(self, asked: str, key: str) -> None:
        """A repeated recipe: Optuna learns its known outcome, now or when its trainer ends."""
        self.repeats += 1
        trainer = self.trainer_of[key]
        logger.info("a proposal repeats the recipe of trial %s: reused, not trained", trainer)
        if key in self.outcomes:
            self._tell(asked, self.outcomes[key])
        else:
            self.waiting.setdefault(key, []).append(asked)

    def _tell(self, asked: str, outcome: Outcome) -> None:
        """Tell OptunaSearch how the proposal asked as `asked` ended, as Tune tells it a trial:
        its curve (a pruned repeat is read by it, as its trainer), then its value or none."""
        state, value, steps = outcome
        for step, intermediate in steps:
            super().on_trial_result(asked, {self.metric: intermediate, TRAINING_ITERATION: step})
        done = {self.metric: value} if state == TrialState.COMPLETE and value is not None else None
        super().on_trial_complete(asked, done, error=state == TrialState.FAIL)

    def _enqueue_unseen(self) -> bool:
        """Have Optuna propose a recipe not yet proposed (finite spaces)."""
        if not self.choices:
            return False
        space = self.space
        assert isinstance(space, SearchSpace)
        for params in self.choices:
            recipe = space.recipe(optuna.trial.FixedTrial(params))  # type: ignore[arg-type]
            if recipe_key(recipe) not in self.trainer_of:
                self.study.enqueue_trial(params)
                return True
        return False


def budget_of(config: dict[str, Any], epochs: int) -> int:
    """The epochs a Tune trial with this config trains unless stopped early: its own
    `TrialConfig.epochs` (the test estimate's), else `epochs`, the space's."""
    own = TrialConfig.from_config(config).epochs
    return own if own is not None else epochs


def stopped_early(result: dict[str, Any], epochs: int) -> bool:
    """A trial that ended without error before its last epoch was stopped by the scheduler."""
    return int(result.get(EPOCH, epochs)) < epochs
