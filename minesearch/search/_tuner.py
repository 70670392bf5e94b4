"""The search's Tune run: the trainable, OptunaSearch over the define-by-run space, the scheduler,
and the MLflow callback."""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from minesearch.config import SpaceSpec
from minesearch.search._callback import MlflowTrialCallback
from minesearch.search._searcher import RecipeSearch
from minesearch.search._trial import TrialSetup, trainable
from minesearch.space import build_space, make_search


def make_scheduler(spec: SpaceSpec) -> TrialScheduler:
    scheduler = spec.search.scheduler
    if scheduler.name == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="epoch",
        metric=spec.search.metric,
        mode=spec.search.mode,
        max_t=spec.train.epochs,
        grace_period=min(scheduler.grace_epochs, spec.train.epochs),
        reduction_factor=scheduler.reduction_factor,
    )


def trial_params(spec: SpaceSpec) -> dict[str, Any]:
    """What every child run records beside its recipe: the budget it was trained with."""
    return {
        "batch.classes": spec.train.batch.classes,
        "batch.per_class": spec.train.batch.per_class,
        "workers": spec.train.workers,
        "seed": spec.train.seed,
        "epochs": spec.train.epochs,
        "optimizer": spec.train.optimizer,
    }


def new_tuner(
    setup: TrialSetup, name: str, uri: str, parent_run_id: str, at_once: int
) -> tune.Tuner:
    spec = setup.spec
    sampler = spec.search.sampler
    space, optuna_sampler, grid_size = make_search(
        sampler.name, sampler.seed, build_space(spec.search.params, spec.search.weight_miners)
    )
    trials = spec.search.trials if grid_size is None else min(spec.search.trials, grid_size)
    if trials < spec.search.trials:
        print(f"grid: {grid_size} distinct recipes, so {trials} trials (search.trials asked more)")
    callback = MlflowTrialCallback(uri, parent_run_id, trial_params(spec), spec.train.epochs)
    return tune.Tuner(
        trainable(setup),
        tune_config=tune.TuneConfig(
            search_alg=RecipeSearch(
                space=space,
                metric=spec.search.metric,
                mode=spec.search.mode,
                sampler=optuna_sampler,
                epochs=spec.train.epochs,
            ),
            scheduler=make_scheduler(spec),
            num_samples=trials,
            max_concurrent_trials=at_once,
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=setup.storage_path, callbacks=[callback], verbose=1
        ),
    )
