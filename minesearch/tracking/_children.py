"""The child runs of a search, one per trial, written from the driver.

Child runs are written by the driver (a Tune callback in `minesearch.search` calls this) rather
than from the trial actors: the driver sees every trial start, result, stop (ASHA), error and
crash, so a run's status is right even when the trial's process was killed, and a local SQLite
store has a single writer. Experiment ids and the tracking URI are always explicit
(`MlflowClient`): `mlflow.set_experiment` leaks `MLFLOW_EXPERIMENT_ID` into Ray workers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlflow.entities import DatasetInput, Run
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from minesearch.recipe import SAMPLER_PARAMS_KEY, TrialConfig
from minesearch.results import Role
from minesearch.tracking import names
from minesearch.tracking._datasets import log_datasets
from minesearch.tracking._params import recipe_params
from minesearch.tracking._parent import RESUME_HINT, log_metrics, log_params
from minesearch.tracking._store import open_store

ORPHAN_REASON = "started by a killed driver after Tune's last state snapshot; run again on resume"
STOPPED_REASON = "early stop by the scheduler (pruned)"
ERROR_CHARS = 4000  # the tail of a traceback kept in the error tag


@dataclass(frozen=True)
class OpenRun:
    """A trial's child run found in the store, and the last epoch it logged."""

    run_id: str
    last_step: int


class ChildRuns:
    """The child runs of one parent run in one role (trial, control or confirm).

    Picklable without its client: Tune saves the callback that holds it with the experiment.
    """

    def __init__(
        self, tracking_uri: str, parent_run_id: str, role: Role, params: dict[str, Any]
    ) -> None:
        self.tracking_uri = tracking_uri
        self.parent_run_id = parent_run_id
        self.role = role
        self.params = params  # what every child run records beside its recipe (the budget)
        self._experiment_id: str | None = None
        self._client: MlflowClient | None = None
        self._datasets: list[DatasetInput] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None, "_datasets": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_datasets": None, **state})  # pickled before datasets existed

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = open_store(self.tracking_uri)
        return self._client

    @property
    def experiment_id(self) -> str:
        """The parent run's experiment (looked up once)."""
        if self._experiment_id is None:
            self._experiment_id = self.client.get_run(self.parent_run_id).info.experiment_id
        return self._experiment_id

    def reopen(self, trial_id: str, metric: str) -> OpenRun | None:
        """The trial's run if it has one (a resumed search goes on in it), RUNNING again if an
        interruption killed it; `metric` is one logged every epoch, to find the last one."""
        found = self._find(trial_id)
        if found is None:
            return None
        run_id = found.info.run_id
        history = self.client.get_metric_history(run_id, metric)
        if found.info.status == "KILLED" and found.data.tags.get(names.INTERRUPTED_TAG):
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, names.INTERRUPTED_TAG, "")
        return OpenRun(run_id, max((m.step for m in history), default=-1))

    def create(self, trial_id: str, trial: TrialConfig, config: dict[str, Any]) -> str:
        """A new child run named after the recipe, with its params and the trial's config."""
        recipe = trial.recipe
        prefix = "" if self.role == "trial" else f"{self.role}: "
        tags = {
            MLFLOW_PARENT_RUN_ID: self.parent_run_id,
            names.TRIAL_TAG: trial_id,
            names.ROLE_TAG: self.role,
            names.RECIPE_TAG: json.dumps(recipe.to_dict(), sort_keys=True),
        }
        if trial.control:  # the control, proposed first inside the search: read back as such
            tags[names.CONTROL_TAG] = "true"
        if SAMPLER_PARAMS_KEY in config:  # what a later search's warm start tells its sampler
            tags[names.SAMPLER_PARAMS_TAG] = json.dumps(config[SAMPLER_PARAMS_KEY], sort_keys=True)
        run = self.client.create_run(
            self.experiment_id, run_name=f"{prefix}{recipe.label()} ({trial_id})", tags=tags
        )
        run_id = str(run.info.run_id)
        own = {"seed": trial.seed} if trial.seed is not None else {}
        if trial.epochs is not None:  # trained to its own budget, not the space's
            own["epochs"] = trial.epochs
        log_params(self.client, run_id, {**recipe_params(recipe), **self.params, **own})
        self.client.log_text(
            run_id, json.dumps(config, indent=2, default=str), names.TRIAL_CONFIG_ARTIFACT
        )
        log_datasets(self.client, run_id, self.datasets)
        return run_id

    @property
    def datasets(self) -> list[DatasetInput]:
        """The parent run's dataset inputs (looked up once): what every trial trains on."""
        if self._datasets is None:
            run = self.client.get_run(self.parent_run_id)
            self._datasets = list(run.inputs.dataset_inputs) if run.inputs else []
        return self._datasets

    def log_epoch(
        self, run_id: str, epoch: int, metrics: dict[str, float], checkpoint: str | None
    ) -> None:
        log_metrics(self.client, run_id, metrics, step=epoch)
        if checkpoint is not None:  # export and the test split find the weights here
            self.client.set_tag(run_id, names.CHECKPOINT_TAG, checkpoint)

    def finish(self, run_id: str, stopped_early: bool) -> None:
        """A trial's normal end. One the scheduler stopped early ends FINISHED too (the UI draws
        KILLED as a failure), told from a full one by its tag (`_read`, `_warm`)."""
        if stopped_early:
            self.client.set_tag(run_id, names.STOPPED_TAG, STOPPED_REASON)
        self.client.set_terminated(run_id, "FINISHED")

    def fail(self, run_id: str, reason: str) -> None:
        self.client.set_tag(run_id, names.ERROR_TAG, reason[-ERROR_CHARS:])
        self.client.set_terminated(run_id, "FAILED")

    def end_interrupted(self, trial_ids: list[str], all_started: bool) -> None:
        """Tune ended early (SIGINT): the given trials' runs still RUNNING, and the parent when
        any trial is unfinished, become KILLED and resumable; orphans are dropped."""
        runs = {r.data.tags.get(names.TRIAL_TAG): r for r in self._children()}  # one query
        open_runs = [runs[t] for t in trial_ids if t in runs]
        open_runs = [r for r in open_runs if r.info.status == "RUNNING"]
        for run in open_runs:
            self.client.set_tag(run.info.run_id, names.INTERRUPTED_TAG, RESUME_HINT)
            self.client.set_terminated(run.info.run_id, "KILLED")
        never_started = [t for t in trial_ids if t not in runs]
        if self.role == "trial":
            self._drop_orphans(runs, set(trial_ids))
        if open_runs or never_started or not all_started:
            self.client.set_tag(self.parent_run_id, names.INTERRUPTED_TAG, RESUME_HINT)
            self.client.set_terminated(self.parent_run_id, "KILLED")

    def log_after(self, trial_id: str, metrics: dict[str, float]) -> None:
        """Metrics logged after the fact (test-split scores) on the child run of `trial_id`."""
        run = self._find(trial_id)
        if run is not None:
            log_metrics(self.client, run.info.run_id, metrics, step=0)

    def _children(self) -> list[Run]:
        """This role's child runs of the parent run."""
        return list(
            self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.parent_run_id}' and "
                f"tags.`{names.ROLE_TAG}` = '{self.role}'",
            )
        )

    def _find(self, trial_id: str) -> Run | None:
        """A trial's child run, by tag: the lookup survives driver restarts."""
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{names.TRIAL_TAG}` = '{trial_id}' and "
            f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.parent_run_id}'",
        )
        return found[0] if found else None

    def _drop_orphans(self, runs: dict[str | None, Run], known: set[str]) -> None:
        """Child runs of trials Tune does not know: a SIGKILLed driver started them after Tune's
        last state snapshot, and the resumed searcher proposed their recipes again under new ids.
        Deleted (MLflow keeps them restorable) so that MLflow holds one child per trial."""
        for trial_id, run in runs.items():
            if trial_id not in known:
                self.client.set_tag(run.info.run_id, names.ORPHAN_TAG, ORPHAN_REASON)
                self.client.set_terminated(run.info.run_id, "KILLED")
                self.client.delete_run(run.info.run_id)
