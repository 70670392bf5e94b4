"""The search's Tune run: the trainable, OptunaSearch over the define-by-run space, the scheduler,
and the MLflow callback."""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from minesearch.config import SpaceSpec
from minesearch.config.vocab import EPOCH, TRAINED_PREFIX
from minesearch.recipe import Recipe
from minesearch.search._callback import MlflowTrialCallback
from minesearch.search._progress import ViewCallback, tell
from minesearch.search._recipe_search import RecipeSearch, distinct_recipes
from minesearch.search._scheduler import SearchASHA
from minesearch.search._trial import TrialSetup, reuse_processes, trainable, trial_checkpoints
from minesearch.space import SearchSpace, build_space, locate, make_search
from minesearch.tracking import known_trials, trial_params


def tune_metric(spec: SpaceSpec) -> str:
    """What Tune's scheduler and searcher compare: a trial's best *trained* epoch so far, which
    sees a decline that the selected score (floored at epoch 0) hides (`train.Selected`)."""
    return f"{TRAINED_PREFIX}{spec.search.metric}"


def make_scheduler(spec: SpaceSpec) -> TrialScheduler:
    scheduler = spec.search.scheduler
    if scheduler.name == "fifo":
        return FIFOScheduler()
    return SearchASHA(
        search_metric=spec.search.metric,
        mode=spec.search.mode,
        time_attr=EPOCH,
        max_t=spec.train.epochs,
        grace_period=min(scheduler.grace_epochs, spec.train.epochs),
        reduction_factor=scheduler.reduction_factor,
        patience=scheduler.patience,
    )


def planned_trials(
    asked: int, recipes: SearchSpace, grid_size: int | None
) -> tuple[int, list[dict[str, Any]] | None]:
    """Trials to run: what the space asks, but no more than a finite space's distinct recipes
    (a recipe is never trained twice); and those recipes' Optuna params, for the searcher."""
    if grid_size is not None:  # the grid proposes each distinct recipe once already
        return min(asked, grid_size), None
    choices = distinct_recipes(recipes)
    return (asked if choices is None else min(asked, len(choices))), choices


def new_tuner(
    setup: TrialSetup,
    name: str,
    uri: str,
    parent_run_id: str,
    at_once: int,
    view: ViewCallback,
    verbose: bool = False,
    control: Recipe | None = None,
    callbacks: tuple[tune.Callback, ...] = (),
) -> tune.Tuner:
    """The search's Tuner; `control`, when the space holds it, is proposed first. What it tells
    the user of the plan goes with the view; `callbacks` run in Tune's loop beside the MLflow
    one and the view."""
    spec = setup.spec
    sampler = spec.search.sampler
    recipes = build_space(spec.search.params, spec.search.weight_miners)
    # TPE's random start scaled to the budget; constant liar when trials run side by side
    space, optuna_sampler, grid_size = make_search(
        sampler.name, sampler.seed, recipes, budget=spec.search.trials, concurrent=at_once
    )
    trials, choices = planned_trials(spec.search.trials, recipes, grid_size)
    if trials < spec.search.trials:
        tell(
            view.mode,
            f"the space has {trials} distinct recipes: {trials} trials, each trained once",
        )
    callback = MlflowTrialCallback(uri, parent_run_id, trial_params(spec), spec.train.epochs)
    known = (
        known_trials(uri, spec.search.warm_start, spec.search.metric)
        if spec.search.warm_start
        else []
    )
    first = locate(recipes, control, spec) if control and isinstance(space, SearchSpace) else None
    searcher = RecipeSearch(
        space=space,
        metric=tune_metric(spec),
        mode=spec.search.mode,
        sampler=optuna_sampler,
        epochs=spec.train.epochs,
        choices=choices,
        known=known,
        control=first,
    )
    if spec.search.warm_start:
        tell(
            view.mode,
            f"warm start: the sampler was told {searcher.warmed} trials of "
            f"{spec.search.warm_start!r} (of {len(known)} found); "
            "their recipes are not trained again",
        )
    return tune.Tuner(
        trainable(setup),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=make_scheduler(spec),
            num_samples=trials,
            max_concurrent_trials=at_once,
            reuse_actors=reuse_processes(setup),
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=setup.storage_path,
            callbacks=[callback, view, *callbacks],
            verbose=1 if verbose else 0,  # 1: Tune's status tables and each trial's boxes
            **trial_checkpoints(setup),
        ),
    )
