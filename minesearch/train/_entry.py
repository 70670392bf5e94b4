"""What a Tune trial process hands to Ray Train: the workers' entry point and its config.

Nothing heavy is imported here: the trial process pickles `train_loop_per_worker` by reference and
never runs it, so it should not pay for torch, PML and scipy (the loop's imports) on every trial;
the function imports the loop when a worker calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minesearch.config import SpaceSpec
    from minesearch.recipe import TrialConfig


def worker_config(
    spec: SpaceSpec, trial: TrialConfig, trial_started: float | None = None
) -> dict[str, Any]:
    """TorchTrainer's `train_loop_config` for one trial (Ray pickles it to every worker).
    `trial_started`: when the trial process began (time.time()), for the start-up breakdown."""
    return {"spec": spec, "trial": trial, "trial_started": trial_started}


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Entry point given to TorchTrainer, with `worker_config`'s dict (see `_loop.run_worker`)."""
    from minesearch.train._loop import run_worker

    run_worker(config)
