"""The Tune callback that mirrors each trial into a child run of the search's parent run.

Tune calls it in the driver on every trial event; it turns them into `minesearch.tracking` calls
(`ChildRuns`). It is saved with Tune's experiment state, so a resumed search continues the same
child runs (found again by their trial-id tag).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from minesearch.config.vocab import EPOCH, SELECTED_EPOCH
from minesearch.recipe import TrialConfig
from minesearch.results import Role
from minesearch.search._ray_internals import tune_checkpoint_path
from minesearch.search._recipe_search import budget_of, stopped_early
from minesearch.search._train_run import CHECKPOINT_KEY
from minesearch.tracking import ChildRuns, names
from minesearch.train import CHECKPOINT_RANK

# What a Tune result holds that is not a metric of the trial (the epoch is logged as the step,
# and as a metric too, so the last epoch of a run can be read without its history).
NOT_METRICS = frozenset(
    {
        "training_iteration",
        "timestamp",
        "pid",
        "time_total_s",
        "iterations_since_restore",
        CHECKPOINT_RANK,  # Ray Train's bookkeeping of which checkpoint to keep
    }
)


class MlflowTrialCallback(Callback):
    """Mirrors each Tune trial into a child run of the search's parent run (driver side)."""

    def __init__(
        self,
        tracking_uri: str,
        parent_run_id: str,
        trial_params: dict[str, Any],
        epochs: int,
        role: Role = "trial",
    ) -> None:
        self.children = ChildRuns(tracking_uri, parent_run_id, role, trial_params)
        # the space's budget: a trial that ends before its own (`budget_of`) was stopped early
        self.epochs = epochs
        self.runs: dict[str, str] = {}  # trial id -> run id
        self.last_step: dict[str, int] = {}  # per run: epochs already in MLflow (restarts repeat)
        self.total_trials = 0  # Tune's num_samples, from setup()

    def run_id(self, trial: Trial) -> str:
        """The trial's child run, created on first sight (found again by tag after a restart)."""
        if trial.trial_id in self.runs:
            return self.runs[trial.trial_id]
        found = self.children.reopen(trial.trial_id, names.EVERY_EPOCH_METRIC)
        if found is not None:  # a resumed search: the trial goes on in the run it started in
            run_id = found.run_id
            self.last_step[run_id] = found.last_step
        else:
            config = TrialConfig.from_config(trial.config)
            run_id = self.children.create(trial.trial_id, config, trial.config)
        self.runs[trial.trial_id] = run_id
        return run_id

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        self.total_trials = total_num_samples or 0

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.run_id(trial)

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        step = int(result.get(EPOCH, result.get("training_iteration", 0)))
        run_id = self.run_id(trial)
        if step <= self.last_step.get(run_id, -1):
            return  # a restarted trial reports its last checkpointed epoch again
        self.last_step[run_id] = step
        metrics = {
            k: float(v)
            for k, v in result.items()
            if k not in NOT_METRICS
            and isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
            and not k.startswith(("time_", "config"))
        }
        # a Ray Train trial names its checkpoint; Tune keeps a single-worker trial's itself
        checkpoint = result.get(CHECKPOINT_KEY) or tune_checkpoint_path(trial, result)
        selected = result.get(SELECTED_EPOCH) == result.get(EPOCH)  # the weights to keep
        self.children.log_epoch(
            run_id, step, metrics, checkpoint if selected and isinstance(checkpoint, str) else None
        )

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        budget = budget_of(trial.config, self.epochs)
        stopped = stopped_early(trial.last_result or {}, budget)
        self.children.finish(self.run_id(trial), stopped_early=stopped)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        reason = (trial.error_file and _read_tail(trial.error_file)) or "trial raised"
        self.children.fail(self.run_id(trial), reason)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        """Tune ends early on SIGINT (stopping running trials as if TERMINATED): a trial whose
        child run never ended, or one never started, means the search is unfinished; those runs
        and the parent are marked KILLED and resumable."""
        self.children.end_interrupted(
            [t.trial_id for t in trials], all_started=len(trials) >= self.total_trials
        )


def _read_tail(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
