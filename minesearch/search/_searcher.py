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
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from minesearch.config.vocab import EPOCH
from minesearch.recipe import SAMPLER_PARAMS_KEY, TrialConfig
from minesearch.results import recipe_key
from minesearch.space import SearchSpace, enumerate_choices
from minesearch.tracking import KnownTrial

logger = logging.getLogger(__name__)
MAX_REPEATS = 50  # proposals in a row that repeat known recipes before an unseen one is enqueued
Outcome = tuple[TrialState, float | None, list[tuple[int, float]]]  # state, value, intermediates


def distinct_recipes(space: SearchSpace) -> list[dict[str, Any]] | None:
    """The Optuna params of every distinct recipe of a finite space; None when it has ranges."""
    try:
        return [params for params, _ in enumerate_choices(space)]
    except ValueError:
        return None


class RecipeSearch(OptunaSearch):
    """OptunaSearch that reports early-stopped trials as PRUNED (`epochs`: the full budget) and
    reuses the outcome of a recipe already proposed (`choices`: a finite space's distinct
    recipes, to fall back on when the sampler repeats itself)."""

    def __init__(
        self,
        *args: Any,
        epochs: int,
        choices: list[dict[str, Any]] | None = None,
        known: Sequence[KnownTrial] = (),
        control: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.epochs = epochs
        self.choices = choices or []
        self.trainer_of: dict[str, str] = {}  # recipe key -> the Tune trial that trains it
        self.key_of: dict[str, str] = {}  # Tune trial id -> its recipe key
        self.steps: dict[str, list[tuple[int, float]]] = {}  # Tune trial id -> intermediates
        self.outcomes: dict[str, Outcome] = {}  # recipe key -> how its trial ended
        self.waiting: dict[str, list[optuna.Trial]] = {}  # recipe key -> repeats to tell
        self.repeats = 0  # proposals answered without training
        self.warmed = self._warm_start(known) if known else 0  # earlier trials told to Optuna
        self.control_key = self._enqueue_control(control) if control is not None else None

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        for _ in range(MAX_REPEATS):
            config = super().suggest(trial_id)
            if config is None:
                return None
            key = recipe_key(TrialConfig.from_config(config).recipe)
            if key not in self.trainer_of:
                return self._accept(trial_id, key, config)
            self._reuse(self._ot_trials.pop(trial_id), key)
        # The sampler keeps repeating itself: propose an unseen recipe of a finite space, or (an
        # infinite space, which repeats itself only by accident) train the repeat.
        self._enqueue_unseen()
        config = super().suggest(trial_id)
        if config is None:
            return None
        return self._accept(trial_id, recipe_key(TrialConfig.from_config(config).recipe), config)

    def _accept(self, trial_id: str, key: str, config: dict[str, Any]) -> dict[str, Any]:
        self.trainer_of.setdefault(key, trial_id)
        self.key_of[trial_id] = key
        if key == self.control_key:  # the control recipe: trained in full, read as the control
            trial = replace(TrialConfig.from_config(config), control=True)
            config = {**config, **trial.to_config()}
        return {**config, SAMPLER_PARAMS_KEY: dict(self._ot_trials[trial_id].params)}

    def _enqueue_control(self, params: dict[str, Any]) -> str | None:
        """Have the control (the space's params for it) proposed first; its recipe's key, or
        None when an earlier search (warm start) already trained it."""
        space = self._space
        assert isinstance(space, SearchSpace)  # a grid proposes by index: no control enqueued
        key = recipe_key(space.recipe(optuna.trial.FixedTrial(params)))  # type: ignore[arg-type]
        if key in self.trainer_of:
            return None
        self.study.enqueue_trial(params)
        return key

    def _warm_start(self, known: Sequence[KnownTrial]) -> int:
        """Tell Optuna the earlier trials; return how many it took. A trial that does not fit this
        space (a choice it no longer has) is told as failed, which samplers ignore."""
        told = 0
        for earlier in known:
            self.study.enqueue_trial(earlier.params, skip_if_exists=False)
            trial = self.study.ask()
            try:
                space = self._space
                assert isinstance(space, SearchSpace)  # grid searches take no warm start
                key = recipe_key(TrialConfig.from_config(space(trial)).recipe)
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning(
                    "warm start: run %s does not fit this space: %s", earlier.run_id, exc
                )
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            outcome: Outcome = (TrialState[earlier.state], earlier.value, list(earlier.steps))
            self.trainer_of.setdefault(key, f"warm:{earlier.run_id}")
            self.outcomes.setdefault(key, outcome)
            self._tell(trial, outcome)
            told += 1
        return told

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        super().on_trial_result(trial_id, result)
        if self.metric in result and trial_id not in self._completed_trials:
            self.steps.setdefault(trial_id, []).append(
                (int(result["training_iteration"]), float(result[self.metric]))
            )

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if not error and result is not None and stopped_early(result, self.epochs):
            result = {k: v for k, v in result.items() if k != self.metric}  # no value: PRUNED
        super().on_trial_complete(trial_id, result, error)
        key = self.key_of.get(trial_id)
        if key is None or self.trainer_of.get(key) != trial_id:
            return
        value = None if result is None else result.get(self.metric)
        state = TrialState.FAIL if error else TrialState.PRUNED if value is None else None
        self.outcomes[key] = (state or TrialState.COMPLETE, value, self.steps.get(trial_id, []))
        for repeat in self.waiting.pop(key, []):
            self._tell(repeat, self.outcomes[key])

    def _reuse(self, trial: optuna.Trial, key: str) -> None:
        """A repeated recipe: Optuna learns its known outcome, now or when its trainer ends."""
        self.repeats += 1
        trainer = self.trainer_of[key]
        logger.info("a proposal repeats the recipe of trial %s: reused, not trained", trainer)
        if key in self.outcomes:
            self._tell(trial, self.outcomes[key])
        else:
            self.waiting.setdefault(key, []).append(trial)

    @property
    def study(self) -> optuna.Study:
        assert self._ot_study is not None  # set up by Tune before the first suggestion
        return self._ot_study

    def _tell(self, trial: optuna.Trial, outcome: Outcome) -> None:
        state, value, steps = outcome
        for step, intermediate in steps:  # a pruned repeat is read by its curve, as its trainer
            trial.report(intermediate, step)
        try:
            self.study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        except Exception as exc:  # e.g. a NaN value: Optuna refuses it, the search goes on
            logger.warning(exc)

    def _enqueue_unseen(self) -> bool:
        """Have Optuna propose a recipe not yet proposed (finite spaces)."""
        if not self.choices:
            return False
        space = self._space
        assert isinstance(space, SearchSpace)
        for params in self.choices:
            recipe = space.recipe(optuna.trial.FixedTrial(params))  # type: ignore[arg-type]
            if recipe_key(recipe) not in self.trainer_of:
                self.study.enqueue_trial(params)
                return True
        return False


def stopped_early(result: dict[str, Any], epochs: int) -> bool:
    """A trial that ended without error before its last epoch was stopped by the scheduler."""
    return int(result.get(EPOCH, epochs)) < epochs
