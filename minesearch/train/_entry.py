"""What a Tune trial process hands to the worker loop: its config, and its entry points.

Nothing heavy is imported here: a multi-worker trial's process pickles `train_loop_per_worker` by
reference and never runs it, so it should not pay for torch, PML and scipy (the loop's imports) on
every trial; the functions import the loop when called (by a Ray Train worker, or by the trial
actor of a single-worker trial through `run_in_process`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minesearch.config import SpaceSpec
    from minesearch.recipe import TrialConfig
    from minesearch.train._loop import LoadData
    from minesearch.train._session import Session


def worker_config(
    spec: SpaceSpec, trial: TrialConfig, trial_started: float | None = None
) -> dict[str, Any]:
    """TorchTrainer's `train_loop_config` for one trial (Ray pickles it to every worker).
    `trial_started`: when the trial process began (time.time()), for the start-up breakdown."""
    return {"spec": spec, "trial": trial, "trial_started": trial_started}


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Entry point given to TorchTrainer, with `worker_config`'s dict (see `_loop.run_worker`)."""
    from minesearch.train._loop import run_worker
    from minesearch.train._session import TrainSession

    run_worker(config, TrainSession())


def run_in_process(config: dict[str, Any], session: Session, load_data: LoadData) -> None:
    """The loop in this process, as the only worker of its trial (no Ray Train run), reporting
    through `session`; `load_data(spec, K)` opens the space's data split into its K folds (or
    hands back the process's copy)."""
    from minesearch.train._loop import run_worker

    run_worker(config, session, load_data)
