"""A trial: a Tune function trainable that trains one recipe, in one of two ways.

- One worker (`train.workers: 1`): the recipe trains in the trial actor itself (`_in_actor`), which
  asks Ray for the worker's resources (its CPUs, and its GPU or share of one). Tune reuses the
  process for the next trial.
- Several workers: the trial actor runs a Ray Train job (`_train_run`) whose data-parallel workers
  run the same loop, and forwards rank 0's per-epoch reports to Tune. It asks Ray for memory, not
  CPU: CPUs belong to the Train workers, and a trial process holding one would deadlock a 2-core
  machine (docs/architecture.md, "Ray"). Its process is reused too, and the search shares one
  placement-group cleaner (`_ray_internals.SearchCleaner`).

Either way Tune's scheduler may stop the trial after any epoch. `MINESEARCH_TRIALS_VIA_RAY_TRAIN=1`
(read by the driver; bench/trial_overhead.py only) runs every trial as before this design: a
Ray Train job with Ray's own bridge and cleaner per trial, and a new process per trial.
"""

from __future__ import annotations

import os
import posixpath
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ray.train
import ray.tune

from minesearch.config import SpaceSpec
from minesearch.recipe import CONFIG_KEY, TrialConfig
from minesearch.search._ray import worker_resources
from minesearch.search._ray_internals import RunWatch, TrialTrainer, search_cleaner
from minesearch.search._train_run import Channel, ReportToTrial, run_and_forward
from minesearch.train import CHECKPOINT_RANK, train_loop_per_worker, worker_config

if TYPE_CHECKING:  # the driver's; a trial process must not import it (tests/test_architecture.py)
    from ray.actor import ActorHandle

    from minesearch.search._progress import ViewCallback

TRIAL_PROCESS_MEMORY = 256 * 1024**2  # bytes reserved for the (idle) process of a Train trial
LEGACY_ENV = "MINESEARCH_TRIALS_VIA_RAY_TRAIN"  # "1": every trial as a Ray Train job, as before


def _legacy() -> bool:
    return os.environ.get(LEGACY_ENV) == "1"


@dataclass(frozen=True)
class TrialSetup:
    """What every trial shares: the validated space, where Ray Train writes, and whether trials
    run the old way (the bench's baseline, from `LEGACY_ENV` in the driver)."""

    spec: SpaceSpec
    storage_path: str
    legacy: bool = field(default_factory=_legacy)

    @property
    def in_actor(self) -> bool:
        """Whether trials train in their Tune trial actor (one worker) or run Ray Train."""
        return self.spec.train.workers == 1 and not self.legacy


def train_storage(storage_path: str) -> str:
    """Ray Train's storage under the search's: posix joining, so s3://bucket stays a URI
    (pathlib would fold it into s3:/bucket)."""
    return posixpath.join(storage_path, "train")


def trial_resources(setup: TrialSetup) -> dict[str, float]:
    """What the trial actor asks Ray for: a worker's resources when it trains itself, memory
    when Ray Train's workers hold them."""
    if setup.in_actor:
        return worker_resources(setup.spec.train)
    return {"memory": TRIAL_PROCESS_MEMORY}


def run_trial(config: dict[str, Any], setup: TrialSetup, cleaner: ActorHandle | None) -> None:
    """Tune trainable: train the config's `TrialConfig` with `train.workers` workers."""
    started = time.time()
    loop_config = worker_config(setup.spec, TrialConfig.from_config(config), started)
    if setup.in_actor:
        from minesearch.search._in_actor import train_in_actor  # torch, PML: only here

        train_in_actor(loop_config, setup.spec.train.use_gpu is True)
        return
    trial_id = ray.tune.get_context().get_trial_id()
    if cleaner is None:  # the old way: Ray's own bridge (a queue actor) and cleaner per trial
        from ray.tune.integration.ray_train import TuneReportCallback

        train_run(setup, trial_id, loop_config, [TuneReportCallback()]).fit()
        return
    channel = Channel()
    trainer = train_run(setup, trial_id, loop_config, [ReportToTrial(str(channel.reports))])
    trainer.run_callbacks = (RunWatch(cleaner, str(channel.stop_flag)),)
    run_and_forward(trainer, channel)


def train_run(
    setup: TrialSetup, trial_id: str, loop_config: dict[str, Any], callbacks: list[Any]
) -> TrialTrainer:
    """The trial's Ray Train job: `train.workers` workers running the loop, each with
    `worker_resources`, keeping the selected epoch's checkpoint and the latest."""
    train = setup.spec.train
    return TrialTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=train.workers,
            use_gpu=train.use_gpu is True,
            resources_per_worker=worker_resources(train),
        ),
        run_config=ray.train.RunConfig(
            name=f"trial-{trial_id}",
            storage_path=train_storage(setup.storage_path),
            callbacks=callbacks,
            # the selected epoch's checkpoint (the highest rank) and, always, the latest one
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=1,
                checkpoint_score_attribute=CHECKPOINT_RANK,
                checkpoint_score_order="max",
            ),
            failure_config=ray.train.FailureConfig(max_failures=train.max_failures),
        ),
    )


def trainable(setup: TrialSetup) -> Any:
    """`run_trial` with its setup bound and its resources declared, ready for `tune.Tuner`. Called
    in the driver: a Ray Train search gets its placement-group cleaner here."""
    cleaner = None if setup.in_actor or setup.legacy else search_cleaner()
    return ray.tune.with_resources(
        ray.tune.with_parameters(run_trial, setup=setup, cleaner=cleaner), trial_resources(setup)
    )


def reuse_processes(setup: TrialSetup) -> bool:
    """Tune's `reuse_actors`: safe whenever a stopped trial's thread ends at its next report,
    which both ways of training ensure; the old way kept its thread inside Ray Train's `fit`
    (issue 12)."""
    return not setup.legacy


def trial_checkpoints(setup: TrialSetup) -> dict[str, Any]:
    """`tune.RunConfig` arguments for trials that train in their actor, as Ray Train keeps a
    multi-worker trial's: the selected epoch's checkpoint (the highest rank) and, always, the
    latest one; `train.max_failures` retries of a failed trial from its latest checkpoint (Ray
    Train retries the others itself)."""
    train = setup.spec.train
    return {
        "checkpoint_config": ray.tune.CheckpointConfig(
            num_to_keep=1,
            checkpoint_score_attribute=CHECKPOINT_RANK,
            checkpoint_score_order="max",
        ),
        "failure_config": ray.tune.FailureConfig(
            max_failures=train.max_failures if setup.in_actor else 0
        ),
    }


def run_fixed(
    setup: TrialSetup,
    name: str,
    trials: list[TrialConfig],
    callback: ray.tune.Callback,
    at_once: int = 1,
    view: ViewCallback | None = None,
) -> ray.tune.ResultGrid:
    """Trials of recipes chosen beforehand, outside the search (no sampler, no early stopping):
    the control and the confirmations. Their own Tune run, so no sampler ever counts them; `view`
    shows them to the user."""
    callbacks = [callback] if view is None else [callback, view]
    tuner = ray.tune.Tuner(
        trainable(setup),
        param_space={CONFIG_KEY: ray.tune.grid_search([t.to_dict() for t in trials])},
        tune_config=ray.tune.TuneConfig(
            num_samples=1, max_concurrent_trials=at_once, reuse_actors=reuse_processes(setup)
        ),
        run_config=ray.tune.RunConfig(
            name=name,
            storage_path=setup.storage_path,
            callbacks=callbacks,
            verbose=0,
            **trial_checkpoints(setup),
        ),
    )
    try:
        return tuner.fit()
    finally:
        if view is not None:
            view.close()
