"""What earlier searches found, for a new search's sampler (`search.warm_start`).

A user who enlarges a search should not pay again for what is known: the trials of earlier searches
(their Optuna params, kept as a tag on each child run, and how they ended) are read back here and
told to the new search's sampler before it proposes anything. Only searched trials carry Optuna
params (the control and confirmations do not), and only finished or early-stopped ones say
something about their recipe (a failed trial says nothing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from minesearch.config.vocab import SELECTED_PREFIX, TRAINED_PREFIX
from minesearch.tracking import names
from minesearch.tracking._store import StoreError, existing_store


@dataclass(frozen=True)
class KnownTrial:
    """A trial of an earlier search, as its sampler would have been told it."""

    params: dict[str, Any]  # Optuna's names and values
    state: Literal["COMPLETE", "PRUNED"]
    value: float | None  # the selected score at its last epoch (COMPLETE only)
    steps: list[tuple[int, float]]  # (Tune's training_iteration = epoch + 1, selected score)
    run_id: str


def known_trials(tracking_uri: str, ref: str, metric: str) -> list[KnownTrial]:
    """The searched trials of `ref`: a search's parent run id, or an experiment (all its searches).
    `metric` is the new search's; trials without its selected score are left out."""
    client = existing_store(tracking_uri, "search.warm_start needs the store of earlier searches")
    if any(c in ref for c in "'`\\\""):
        raise StoreError(f"search.warm_start: {ref!r} is not an experiment name nor a run id")
    try:
        filters = [f"tags.`{names.ROLE_TAG}` = 'trial'"]
        experiment = client.get_experiment_by_name(ref)
        if experiment is not None:
            experiment_ids = [experiment.experiment_id]
        else:
            parent = _parent(client, ref)
            experiment_ids = [parent.info.experiment_id]
            filters.append(f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{ref}'")
        runs = client.search_runs(experiment_ids, filter_string=" and ".join(filters))
        # what the sampler learns from: the trained objective; runs of earlier versions logged
        # only the selected score
        keys = (f"{TRAINED_PREFIX}{metric}", f"{SELECTED_PREFIX}{metric}")
        found = [
            _known(client, run, next((k for k in keys if k in run.data.metrics), keys[0]))
            for run in runs
        ]
    except MlflowException as exc:
        raise StoreError(f"search.warm_start: cannot read {ref!r}: {exc.message}") from None
    return [k for k in found if k is not None]


def _parent(client: MlflowClient, run_id: str) -> Run:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise StoreError(
            f"search.warm_start: {run_id!r} is neither an experiment nor a run in the store"
        ) from None
    if run.data.tags.get(names.SEARCH_TAG) != names.PARENT_VALUE:
        raise StoreError(f"search.warm_start: run {run_id} is not a search's parent run")
    return run


def _known(client: MlflowClient, run: Run, key: str) -> KnownTrial | None:
    params = run.data.tags.get(names.SAMPLER_PARAMS_TAG)
    status, tags = run.info.status, run.data.tags
    if params is None or key not in run.data.metrics:
        return None
    if status in ("FINISHED", "KILLED") and tags.get(names.STOPPED_TAG):
        state: Literal["COMPLETE", "PRUNED"] = "PRUNED"  # KILLED: a store written before
    elif status == "FINISHED":
        state = "COMPLETE"
    else:  # failed, interrupted or still running: nothing known about its recipe
        return None
    history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
    steps = [(m.step + 1, m.value) for m in history]
    value = run.data.metrics[key] if state == "COMPLETE" else None
    return KnownTrial(json.loads(params), state, value, steps, run.info.run_id)
