"""MLflow layout: one parent run per search, one child run per trial, written from the driver.

Child runs are written by a Tune callback in the driver process rather than from the trial actors:
the driver sees every trial start, result, stop (ASHA), error and crash, so a run's status is right
even when the trial's process was killed, and a local SQLite store has a single writer. Experiment
ids and the tracking URI are always explicit (`MlflowClient`): `mlflow.set_experiment` leaks
`MLFLOW_EXPERIMENT_ID` into Ray workers, and a relative sqlite URI would follow Tune's cwd changes.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, Run
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from ray.tune import Callback
from ray.tune.experiment import Trial

from minesearch.recipe import Recipe
from minesearch.searcher import stopped_early

TRIAL_TAG = "minesearch.trial_id"
SEARCH_TAG = "minesearch.search"
INTERRUPTED_TAG = "minesearch.interrupted"
STORAGE_TAG = "minesearch.storage"  # on the parent: the search's Ray storage path
CHECKPOINT_TAG = "minesearch.checkpoint"  # the trial's last checkpoint (storage path)
ROLE_TAG = "minesearch.role"  # "trial" (proposed by the search) or "control"
ORPHAN_REASON = "started by a killed driver after Tune's last state snapshot; run again on resume"
RESUME_HINT = "interrupted: `minesearch run SPACE --resume` continues it"
DEFAULT_STORE = "mlflow.db"
NOT_METRICS = {
    "epoch",
    "training_iteration",
    "timestamp",
    "pid",
    "time_total_s",
    "iterations_since_restore",
}


def resolve_tracking_uri(configured: str | None, cwd: Path | None = None) -> str:
    """Space file URI, else $MLFLOW_TRACKING_URI, else ./mlflow.db; local stores made absolute."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_STORE}"
    base = cwd or Path.cwd()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{(base / uri.removeprefix('sqlite:///')).resolve()}"
    if uri.startswith("file:"):
        return (base / uri.removeprefix("file://").removeprefix("file:")).resolve().as_uri()
    if "://" not in uri:  # a bare path means a file store directory
        return (base / uri).resolve().as_uri()
    return uri


def local_artifact_root(tracking_uri: str) -> str | None:
    """Artifacts next to a local SQLite store (MLflow would otherwise use ./mlruns of the cwd)."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return None


def ui_command(tracking_uri: str) -> str:
    """The exact command that opens the MLflow UI on this store."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
    store = (
        tracking_uri.removeprefix("file://") if tracking_uri.startswith("file:") else tracking_uri
    )
    root = local_artifact_root(tracking_uri)
    artifacts = f" --default-artifact-root '{root}'" if root else ""
    return f"mlflow ui --backend-store-uri '{store}'{artifacts} --host 127.0.0.1 --port 5000"


def experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    root = local_artifact_root(tracking_uri)
    location = f"{root}/{name}" if root else None
    return str(client.create_experiment(name, artifact_location=location))


def missing_store(tracking_uri: str) -> Path | None:
    """The SQLite file a tracking URI names when it does not exist: reading commands check it,
    since MLflow would silently create an empty store there."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if not path.is_file():
            return path
    return None


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):  # MLflow's per-batch param limit
        client.log_batch(run_id, params=items[i : i + 100])


class ParentRun:
    """The search's run: the space file, the resolved spec, and at the end the best trial."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    @classmethod
    def start(
        cls,
        tracking_uri: str,
        experiment: str,
        name: str,
        spec: dict[str, Any],
        space_file: Path | None,
        tags: dict[str, str],
    ) -> ParentRun:
        client = MlflowClient(tracking_uri)
        exp = experiment_id(client, experiment, tracking_uri)
        run = client.create_run(exp, run_name=name, tags={SEARCH_TAG: "parent", **tags})
        parent = cls(client, run.info.run_id)
        search = spec["search"]
        log_params(
            client,
            parent.run_id,
            {
                "metric": search["metric"],
                "mode": search["mode"],
                "trials": search["trials"],
                "concurrent": search["concurrent"],
                "sampler": search["sampler"]["name"],
                "scheduler": search["scheduler"]["name"],
                "epochs": spec["train"]["epochs"],
                "workers": spec["train"]["workers"],
            },
        )
        client.log_dict(parent.run_id, spec, "resolved_spec.json")
        if space_file is not None:
            client.log_artifact(parent.run_id, str(space_file))
        return parent

    @classmethod
    def reopen(cls, tracking_uri: str, run_id: str) -> ParentRun:
        """The parent run of a search being resumed: RUNNING again, the interruption cleared."""
        client = MlflowClient(tracking_uri)
        client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, INTERRUPTED_TAG, "")
        return cls(client, run_id)

    def interrupted(self) -> bool:
        """Whether the trial callback saw Tune end with unfinished trials (SIGINT)."""
        return bool(self.client.get_run(self.run_id).data.tags.get(INTERRUPTED_TAG))

    def finish(self, status: str, best: dict[str, Any] | None) -> None:
        if best is not None:
            log_params(
                self.client, self.run_id, {f"best.{k}": v for k, v in best["params"].items()}
            )
            self.client.set_tag(self.run_id, "best.trial_id", best["trial_id"])
            now = int(time.time() * 1000)
            metrics = [Metric(k, float(v), now, 0) for k, v in best["metrics"].items()]
            self.client.log_batch(self.run_id, metrics=metrics)
        self.client.set_terminated(self.run_id, status)


class MlflowTrialCallback(Callback):
    """Mirrors each Tune trial into a child run of the search's parent run (driver side)."""

    def __init__(
        self,
        tracking_uri: str,
        parent_run_id: str,
        trial_params: dict[str, Any],
        role: str = "trial",  # "control": the default recipe trained beside the search
    ) -> None:
        self.tracking_uri = tracking_uri
        self.parent_run_id = parent_run_id
        self.trial_params = trial_params
        self.role = role
        self.runs: dict[str, str] = {}
        self.last_step: dict[str, int] = {}  # per run: epochs already in MLflow (restarts repeat)
        self.total_trials = 0  # Tune's num_samples, from setup()
        self._experiment_id: str | None = None
        self._client: MlflowClient | None = None

    def __getstate__(self) -> dict[str, Any]:  # Tune saves callbacks with its experiment state
        return {**self.__dict__, "_client": None}

    @property
    def experiment_id(self) -> str:
        """The parent run's experiment (looked up once)."""
        if self._experiment_id is None:
            self._experiment_id = self.client.get_run(self.parent_run_id).info.experiment_id
        return self._experiment_id

    def _children(self) -> list[Run]:
        """This callback's child runs (its role) of the parent run."""
        return list(
            self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.parent_run_id}' and "
                f"tags.`{ROLE_TAG}` = '{self.role}'",
            )
        )

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def run_id(self, trial: Trial) -> str:
        """The trial's child run, created on first sight (found again by tag after a restart)."""
        if trial.trial_id in self.runs:
            return self.runs[trial.trial_id]
        found = self._existing(trial)
        if found is not None:  # a resumed search: the trial goes on in the run it started in
            run_id = found.info.run_id
            history = self.client.get_metric_history(run_id, "precision_at_1")  # every epoch
            self.last_step[run_id] = max((m.step for m in history), default=-1)
            if found.info.status == "KILLED" and found.data.tags.get(INTERRUPTED_TAG):
                self.client.update_run(run_id, status="RUNNING")
                self.client.set_tag(run_id, INTERRUPTED_TAG, "")
        else:
            run_id = self._create(trial, self.experiment_id)
        self.runs[trial.trial_id] = run_id
        return run_id

    def _existing(self, trial: Trial) -> Run | None:
        """The trial's child run if it has one (looked up by tag: survives driver restarts)."""
        return find_trial_run(self.client, self.experiment_id, self.parent_run_id, trial.trial_id)

    def _create(self, trial: Trial, experiment_id: str) -> str:
        recipe = Recipe.from_dict(trial.config["recipe"])
        prefix = "" if self.role == "trial" else f"{self.role}: "
        seed = {"seed": trial.config["seed"]} if "seed" in trial.config else {}
        run = self.client.create_run(
            experiment_id,
            run_name=f"{prefix}{recipe.label()} ({trial.trial_id})",
            tags={
                MLFLOW_PARENT_RUN_ID: self.parent_run_id,
                TRIAL_TAG: trial.trial_id,
                ROLE_TAG: self.role,
            },
        )
        run_id = str(run.info.run_id)
        log_params(self.client, run_id, {**recipe.mlflow_params(), **self.trial_params, **seed})
        self.client.log_text(
            run_id, json.dumps(trial.config, indent=2, default=str), "trial_config.json"
        )
        return run_id

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.run_id(trial)

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        run_id = self.run_id(trial)
        if step <= self.last_step.get(run_id, -1):
            return  # a restarted trial reports its last checkpointed epoch again
        self.last_step[run_id] = step
        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, step)
            for k, v in result.items()
            if k not in NOT_METRICS
            and isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
            and not k.startswith(("time_", "config"))
        ]
        self.client.log_batch(run_id, metrics=metrics)
        if isinstance(path := result.get("checkpoint_path"), str):  # export finds the weights here
            self.client.set_tag(run_id, CHECKPOINT_TAG, path)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        run_id = self.run_id(trial)
        if stopped_early(trial.last_result or {}, int(self.trial_params["epochs"])):
            self.client.set_tag(
                run_id, "minesearch.stopped", "early stop by the scheduler (pruned)"
            )
            self.client.set_terminated(run_id, "KILLED")
        else:
            self.client.set_terminated(run_id, "FINISHED")

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        self.total_trials = total_num_samples or 0

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        """Tune ends early on SIGINT (stopping running trials as if TERMINATED): a trial whose
        child run never ended, or one never started, means the search is unfinished; those runs
        and the parent are marked KILLED and resumable."""
        runs = {r.data.tags.get(TRIAL_TAG): r for r in self._children()}  # one query for all
        open_runs = [runs[t.trial_id] for t in trials if t.trial_id in runs]
        open_runs = [r for r in open_runs if r.info.status == "RUNNING"]
        for run in open_runs:
            self.client.set_tag(run.info.run_id, INTERRUPTED_TAG, RESUME_HINT)
            self.client.set_terminated(run.info.run_id, "KILLED")
        never_started = [t for t in trials if t.trial_id not in runs]
        if self.role == "trial":
            self._drop_orphans(runs, {t.trial_id for t in trials})
        if open_runs or never_started or len(trials) < self.total_trials:
            self.client.set_tag(self.parent_run_id, INTERRUPTED_TAG, RESUME_HINT)
            self.client.set_terminated(self.parent_run_id, "KILLED")

    def _drop_orphans(self, runs: dict[str | None, Run], known: set[str]) -> None:
        """Child runs of trials Tune does not know: a SIGKILLed driver started them after Tune's
        last state snapshot, and the resumed searcher proposed their recipes again under new ids.
        Deleted (MLflow keeps them restorable) so that MLflow holds one child per trial."""
        for trial_id, run in runs.items():
            if trial_id not in known:
                self.client.set_tag(run.info.run_id, "minesearch.orphan", ORPHAN_REASON)
                self.client.set_terminated(run.info.run_id, "KILLED")
                self.client.delete_run(run.info.run_id)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        run_id = self.run_id(trial)
        reason = (trial.error_file and _read_tail(trial.error_file)) or "trial raised"
        self.client.set_tag(run_id, "minesearch.error", reason[-4000:])
        self.client.set_terminated(run_id, "FAILED")


def log_to_trial_run(
    tracking_uri: str, parent_run_id: str, trial_id: str, metrics: dict[str, float]
) -> None:
    """Metrics logged after the fact (test-split scores) on the child run of `trial_id`."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_run(parent_run_id).info.experiment_id
    run = find_trial_run(client, experiment, parent_run_id, trial_id)
    if run is not None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        client.log_batch(run.info.run_id, metrics=batch)


def find_trial_run(
    client: MlflowClient, experiment_id: str, parent_run_id: str, trial_id: str
) -> Run | None:
    """A trial's child run, by tag: the lookup survives driver restarts."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}' and "
        f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'",
    )
    return found[0] if found else None


def _read_tail(path: str) -> str:
    try:
        return Path(path).read_text()[-4000:]
    except OSError:
        return ""
