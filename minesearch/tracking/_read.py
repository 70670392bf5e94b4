"""A search read back from MLflow into `minesearch.results`, and the runs a user's words name.

It reads the store rather than Ray's results so that a search reads the same at its end (the
driver) and long after its Ray cluster is gone (`minesearch report`, `minesearch export`). It stays
cheap on large searches: one `search_runs` gives every child run with its last metric values,
params and tags; metric histories are fetched only for the few runs that need them.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from minesearch.config.vocab import EPOCH
from minesearch.recipe import Recipe
from minesearch.results import ROLES, Role, SearchResult, Status, TrialResult
from minesearch.tracking import names
from minesearch.tracking._params import margin_of
from minesearch.tracking._store import StoreError, existing_store, no_progress_bar, open_store

Series = list[tuple[int, float]]  # (epoch, value), one point per epoch
BEST = "best"  # the newest search's best trial, as `minesearch export best` says it
_LISTED = 10  # trial ids named when a reference matches none


def read_search(tracking_uri: str, parent_run_id: str) -> SearchResult:
    """The search whose parent run is `parent_run_id`, every child run with it."""
    client = open_store(tracking_uri)
    try:
        parent = client.get_run(parent_run_id)
        children = _children(client, parent)
        experiment = client.get_experiment(parent.info.experiment_id).name
    except MlflowException as exc:
        raise StoreError(f"cannot read the search from {tracking_uri}: {exc.message}") from None
    params = parent.data.params
    if names.METRIC_PARAM not in params or params.get(names.MODE_PARAM) not in ("max", "min"):
        raise StoreError(f"run {parent.info.run_id} has no metric/mode params: not a search")
    return SearchResult(
        tracking_uri=tracking_uri,
        experiment=experiment,
        experiment_id=parent.info.experiment_id,
        parent_run_id=parent.info.run_id,
        parent_name=parent.info.run_name or "",
        metric=params[names.METRIC_PARAM],
        mode="max" if params[names.MODE_PARAM] == "max" else "min",
        trials=[_trial(run) for run in children],
        pretrained={
            k.removeprefix(names.PRETRAINED_PREFIX): v
            for k, v in parent.data.metrics.items()
            if k.startswith(names.PRETRAINED_PREFIX)
        },
        parent_metrics=dict(parent.data.metrics),
        parent_tags=dict(parent.data.tags),
        chosen_trial_id=parent.data.tags.get(names.CHOSEN_TAG),
    )


def find_search(tracking_uri: str, experiment: str | None, parent_run_id: str | None) -> str:
    """The parent run id of a search: the one given (checked), else the newest of `experiment`
    (of any experiment when None)."""
    client = existing_store(tracking_uri, "give --tracking-uri or a space file")
    try:
        return _parent(client, experiment, parent_run_id).info.run_id
    except MlflowException as exc:
        raise StoreError(f"cannot read the search from {tracking_uri}: {exc.message}") from None


def metric_history(tracking_uri: str, run_id: str, key: str) -> Series:
    """One value per epoch (the latest logged, should a step have been logged twice)."""
    points = open_store(tracking_uri).get_metric_history(run_id, key)
    ordered = sorted(points, key=lambda m: (m.step, m.timestamp))
    return sorted({m.step: m.value for m in ordered}.items())


@dataclass(frozen=True)
class FoundTrial:
    """A child run a user named, and what its search's parent run says about it."""

    trial: TrialResult
    parent_run_id: str
    parent_tags: dict[str, str]
    via_search: bool  # named through its search (`best`, a parent run id), not as a trial


def find_trial(tracking_uri: str, ref: str) -> FoundTrial:
    """The child run `ref` names: a child run id, a trial id, a search's parent run id (its best
    trial), or `best` (the newest search's best trial)."""
    client = existing_store(tracking_uri)
    if any(c in ref for c in "'`\\\""):
        raise StoreError(f"{ref!r} is not a run id, a trial id nor {BEST!r}")
    child = _trial_run(client, ref)
    parent = _run(client, child.data.tags[MLFLOW_PARENT_RUN_ID])
    if parent is None:
        raise StoreError(f"run {child.info.run_id}'s search (parent run) is gone from the store")
    via_search = ref == BEST or ref == parent.info.run_id
    return FoundTrial(_trial(child), parent.info.run_id, dict(parent.data.tags), via_search)


def spec_of(tracking_uri: str, parent_run_id: str) -> dict[str, Any]:
    """The resolved space a search ran with (its parent run's artifact), as JSON."""
    client = open_store(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp, no_progress_bar():
        try:
            path = client.download_artifacts(parent_run_id, names.SPEC_ARTIFACT, tmp)
            raw: dict[str, Any] = json.loads(Path(path).read_text())
        except (MlflowException, OSError, ValueError) as err:
            raise StoreError(
                f"search run {parent_run_id} has no readable {names.SPEC_ARTIFACT}: {err}"
            ) from None
    return raw


def _trial(run: Run) -> TrialResult:
    tags = run.data.tags
    role = tags.get(names.ROLE_TAG, "trial")
    recipe_json = tags.get(names.RECIPE_TAG)
    metrics = dict(run.data.metrics)
    return TrialResult(
        run_id=run.info.run_id,
        trial_id=tags.get(names.TRIAL_TAG, run.info.run_id[:8]),
        label=run.info.run_name or run.info.run_id,
        role=_role(role),
        status=_status(run),
        params=dict(run.data.params),
        metrics=metrics,
        recipe=Recipe.from_dict(json.loads(recipe_json)) if recipe_json else None,
        error=tags.get(names.ERROR_TAG),
        checkpoint=tags.get(names.CHECKPOINT_TAG),
        epochs=int(metrics.get(EPOCH, 0)),
        is_control=tags.get(names.CONTROL_TAG) == "true",
        margin=margin_of(run.data.params),
    )


def _role(value: str) -> Role:
    for role in ROLES:
        if value == role:
            return role
    return "trial"


def _status(run: Run) -> Status:
    """A stopped trial's run is FINISHED (KILLED in stores written before) with its tag; a KILLED
    run without it was interrupted."""
    status = run.info.status
    if status in ("FINISHED", "KILLED") and run.data.tags.get(names.STOPPED_TAG):
        return "pruned"
    if status == "KILLED":
        return "killed"
    if status in ("FINISHED", "FAILED"):
        return "finished" if status == "FINISHED" else "failed"
    return "running"  # RUNNING or SCHEDULED: the search is still going


def _children(client: MlflowClient, parent: Run) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:  # one page (1000 runs) covers any ordinary search
        page = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'",
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _parent(client: MlflowClient, experiment: str | None, run_id: str | None) -> Run:
    experiment_ids = None
    if experiment is not None:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            known = sorted(e.name for e in client.search_experiments())
            raise StoreError(f"no experiment {experiment!r} in the store; known: {known}")
        experiment_ids = [found.experiment_id]
    if run_id is not None:
        return _given_parent(client, run_id, experiment_ids)
    ids = experiment_ids or [e.experiment_id for e in client.search_experiments()]
    newest = _newest_parent(client, ids)
    if newest is None:
        where = f"experiment {experiment!r}" if experiment else "the store"
        raise StoreError(f"no search (parent run) in {where}")
    return newest


def _newest_parent(client: MlflowClient, experiment_ids: list[str]) -> Run | None:
    if not experiment_ids:
        return None
    newest = client.search_runs(
        experiment_ids,
        filter_string=f"tags.`{names.SEARCH_TAG}` = '{names.PARENT_VALUE}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return newest[0] if newest else None


def _given_parent(client: MlflowClient, run_id: str, experiment_ids: list[str] | None) -> Run:
    run = _run(client, run_id)
    if run is None:
        raise StoreError(f"no run {run_id!r} in the store")
    if experiment_ids is not None and run.info.experiment_id not in experiment_ids:
        raise StoreError(f"run {run_id} is not in the experiment given")
    if run.data.tags.get(names.SEARCH_TAG) != names.PARENT_VALUE:
        parent = run.data.tags.get(MLFLOW_PARENT_RUN_ID)
        hint = f" (it is a trial of search {parent})" if parent else ""
        raise StoreError(f"run {run_id} is not a search's parent run{hint}")
    return run


def _run(client: MlflowClient, run_id: str) -> Run | None:
    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def _trial_run(client: MlflowClient, ref: str) -> Run:
    """The child run `ref` means; a trial id run twice (a re-run search) means the newest."""
    if ref == BEST:
        every = [e.experiment_id for e in client.search_experiments()]
        newest = _newest_parent(client, every)
        if newest is None:
            raise StoreError(f"no search (parent run) in {client.tracking_uri}: nothing is 'best'")
        return _best_of(client, newest)
    run = _run(client, ref)
    if run is not None:
        if run.data.tags.get(names.SEARCH_TAG) == names.PARENT_VALUE:
            return _best_of(client, run)
        if MLFLOW_PARENT_RUN_ID not in run.data.tags:
            raise StoreError(f"run {ref} is not a trial of a minesearch search (no parent run)")
        return run
    found = _trial_runs(client, f"tags.`{names.TRIAL_TAG}` = '{ref}'", 1)
    if not found:
        recent = [str(r.data.tags.get(names.TRIAL_TAG)) for r in _trial_runs(client, None, _LISTED)]
        known = ", ".join(recent) if recent else "none: the store has no trials"
        raise StoreError(
            f"no run id or trial id {ref!r} in {client.tracking_uri}; "
            f"newest trial ids: {known} (or {BEST!r})"
        )
    return found[0]


def _trial_runs(client: MlflowClient, where: str | None, limit: int) -> list[Run]:
    """Trial runs of any experiment, newest first; `where` narrows them further."""
    trials = f"tags.`{names.TRIAL_TAG}` != ''"
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    return list(
        client.search_runs(
            experiments,
            f"{trials} and {where}" if where else trials,
            order_by=["attributes.start_time DESC"],
            max_results=limit,
        )
    )


def _best_of(client: MlflowClient, parent: Run) -> Run:
    name = f"search {parent.info.run_name} ({parent.info.run_id})"
    trial = parent.data.tags.get(names.BEST_TAG)
    if not trial:
        raise StoreError(
            f"{name} has no best trial (it did not finish, or every trial failed); "
            "name a trial id or a child run id instead"
        )
    found = client.search_runs(
        [parent.info.experiment_id],
        f"tags.`{names.TRIAL_TAG}` = '{trial}' and "
        f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'",
        max_results=1,
    )
    if not found:
        raise StoreError(f"{name}: its best trial {trial} has no child run")
    return found[0]
