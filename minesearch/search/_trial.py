"""A trial: a Tune function trainable that runs one recipe as a Ray Train job.

The trial process itself does no training; it builds a TorchTrainer whose data-parallel workers run
`train_loop_per_worker` and forwards rank 0's per-epoch reports to Tune (TuneReportCallback), where
the scheduler may stop the trial early. It asks Ray for memory, not CPU: CPUs belong to the Train
workers, and a trial process holding one would deadlock a 2-core machine (docs/architecture.md,
"Ray").
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray.train
import ray.tune
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from minesearch.config import SpaceSpec, TrainSpec
from minesearch.recipe import CONFIG_KEY, TrialConfig
from minesearch.train import CHECKPOINT_RANK, train_loop_per_worker, worker_config

if TYPE_CHECKING:  # the driver's; a trial process must not import it (tests/test_architecture.py)
    from minesearch.search._progress import ViewCallback

TRIAL_PROCESS_MEMORY = 256 * 1024**2  # bytes reserved for the (idle) trial process
# Tune's reuse_actors stays off: a trial the scheduler stops keeps its thread inside Ray Train's
# fit, and a reused (cached) process then keeps that run's worker group and its CPUs, so the next
# trial waits for CPUs forever (seen: text_minilm.yaml hung after its first pruned trial). A new
# process per trial costs its start-up (bench/trial_overhead.py) but frees what the trial held.
REUSE_TRIAL_PROCESSES = False


class TrialTrainer(TorchTrainer):
    """TorchTrainer without Ray Data's dataset manager, which a trial never uses (its workers read
    their data themselves): Ray Train 2.60 starts that actor for every run, datasets or not, and
    on a laptop each extra actor is a Python process started and importing Ray per trial
    (bench/trial_overhead.py)."""

    def _create_default_callbacks(self) -> list[Any]:
        callbacks: list[Any] = super()._create_default_callbacks()  # type: ignore[misc]
        if self.datasets:
            return callbacks
        return [c for c in callbacks if type(c).__name__ != "DatasetsCallback"]


@dataclass(frozen=True)
class TrialSetup:
    """What every trial shares: the validated space and where Ray Train writes."""

    spec: SpaceSpec
    storage_path: str


def train_storage(storage_path: str) -> str:
    """Ray Train's storage under the search's: posix joining, so s3://bucket stays a URI
    (pathlib would fold it into s3:/bucket)."""
    return posixpath.join(storage_path, "train")


def worker_resources(train: TrainSpec) -> dict[str, float]:
    resources = {"CPU": float(train.cpus_per_worker)}
    if train.use_gpu is True:
        resources["GPU"] = 1.0
    return resources


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Tune trainable: train the config's `TrialConfig` with `train.workers` workers."""
    started = time.time()
    trial_id = ray.tune.get_context().get_trial_id()
    train = setup.spec.train
    trainer = TrialTrainer(
        train_loop_per_worker,
        train_loop_config=worker_config(setup.spec, TrialConfig.from_config(config), started),
        scaling_config=ray.train.ScalingConfig(
            num_workers=train.workers,
            use_gpu=train.use_gpu is True,
            resources_per_worker=worker_resources(train),
        ),
        run_config=ray.train.RunConfig(
            name=f"trial-{trial_id}",
            storage_path=train_storage(setup.storage_path),
            callbacks=[TuneReportCallback()],  # type: ignore[list-item]  # a Train V2 callback
            # the selected epoch's checkpoint (the highest rank) and, always, the latest one
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=1,
                checkpoint_score_attribute=CHECKPOINT_RANK,
                checkpoint_score_order="max",
            ),
            failure_config=ray.train.FailureConfig(max_failures=train.max_failures),
        ),
    )
    trainer.fit()


def trainable(setup: TrialSetup) -> Any:
    """`run_trial` with its setup bound and its resources declared, ready for `tune.Tuner`."""
    return ray.tune.with_resources(
        ray.tune.with_parameters(run_trial, setup=setup), {"memory": TRIAL_PROCESS_MEMORY}
    )


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
            num_samples=1, max_concurrent_trials=at_once, reuse_actors=REUSE_TRIAL_PROCESSES
        ),
        run_config=ray.tune.RunConfig(
            name=name, storage_path=setup.storage_path, callbacks=callbacks, verbose=0
        ),
    )
    try:
        return tuner.fit()
    finally:
        if view is not None:
            view.close()
