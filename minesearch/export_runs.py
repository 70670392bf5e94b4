"""Which trial `minesearch export REF` means, and its last checkpoint exported and logged back.

Everything needed is in MLflow: the parent run holds the resolved space (`resolved_spec.json`) and
the search's storage path, each child run its trial's last checkpoint path. The network is rebuilt
from the space (a checkpoint holds weights, not architecture: `holdout.load_checkpoint`) and the
export is logged to the trial's child run, so the run a user compares in the UI carries the model
that can be taken away.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from pydantic import ValidationError

from minesearch.export import ExportError, ExportFormat, export_network
from minesearch.pipeline import CHECKPOINT_FILE, TEXT_TOPICS
from minesearch.spec import SpaceSpec, SpecError
from minesearch.tracking import (
    CHECKPOINT_TAG,
    SEARCH_TAG,
    STORAGE_TAG,
    TRIAL_TAG,
    missing_store,
)

__all__ = ["BEST", "EXAMPLE_ROWS", "export_run", "find_trial_run", "log_export"]

BEST = "best"  # the newest search's best trial
BEST_TAG = "best.trial_id"  # on the parent, set when the search finishes
SPEC_ARTIFACT = "resolved_spec.json"
EXAMPLE_ROWS = 4  # rows of the source traced through the network
_LISTED = 10  # trial ids named when a reference matches none


def export_run(
    ref: str, fmt: ExportFormat, out_dir: Path, tracking_uri: str, log: bool = True
) -> Path:
    """Export the trial `ref` names (child run id, trial id, ``best``, or a search's parent run
    id for its best trial) to `out_dir`; with `log`, also into its child run's artifacts."""
    client = _client(tracking_uri)
    child = find_trial_run(client, ref)
    parent = _run(client, child.data.tags[MLFLOW_PARENT_RUN_ID])
    if parent is None:
        raise ExportError(f"run {child.info.run_id}'s search (parent run) is gone from the store")
    checkpoint = _checkpoint(child, parent)
    spec = _spec(client, parent)
    storage = parent.data.tags.get(STORAGE_TAG, "")
    from minesearch.holdout import load_checkpoint  # imports Ray: only when exporting a run
    from minesearch.pipeline import load_parts

    try:
        parts = load_parts(spec)
        network = load_checkpoint(spec, parts, checkpoint, storage)
    except (ValueError, SpecError, OSError, RuntimeError) as err:
        raise ExportError(f"cannot rebuild {_name(child)} from {checkpoint}: {err}") from None
    rows = np.arange(min(EXAMPLE_ROWS, len(parts.source)))
    example = network.preprocess(parts.source.take(rows), False)
    path = export_network(network, example, fmt, out_dir, _input_column(spec))
    if log:
        log_export(client, child.info.run_id, out_dir, fmt)
    return path


def log_export(client: MlflowClient, run_id: str, out_dir: Path, fmt: ExportFormat) -> None:
    """The export's files under ``export/<fmt>/`` of the trial's run."""
    try:
        with _no_progress_bar():
            client.log_artifacts(run_id, str(out_dir), artifact_path=f"export/{fmt}")
    except (MlflowException, OSError) as err:
        raise ExportError(
            f"exported to {out_dir}, but logging it to MLflow run {run_id} failed: {err}"
        ) from None


def find_trial_run(client: MlflowClient, ref: str) -> Run:
    """The child run `ref` means; a trial id run twice (a re-run search) means the newest."""
    if any(c in ref for c in "'`\\\""):
        raise ExportError(f"{ref!r} is not a run id, a trial id nor {BEST!r}")
    if ref == BEST:
        return _best_of(client, _newest_search(client))
    run = _run(client, ref)
    if run is not None:
        if run.data.tags.get(SEARCH_TAG) == "parent":
            return _best_of(client, run)
        if MLFLOW_PARENT_RUN_ID not in run.data.tags:
            raise ExportError(f"run {ref} is not a trial of a minesearch search (no parent run)")
        return run
    found = _search(client, f"tags.`{TRIAL_TAG}` = '{ref}'", 1)
    if not found:
        recent = [str(r.data.tags.get(TRIAL_TAG)) for r in _search(client, None, _LISTED)]
        known = ", ".join(recent) if recent else "none: the store has no trials"
        raise ExportError(
            f"no run id or trial id {ref!r} in {client.tracking_uri}; "
            f"newest trial ids: {known} (or {BEST!r})"
        )
    return found[0]


def _client(tracking_uri: str) -> MlflowClient:
    """A client on an existing store: a missing sqlite file would be created empty otherwise."""
    if (db := missing_store(tracking_uri)) is not None:
        raise ExportError(f"no MLflow store at {db} (give --tracking-uri)")
    return MlflowClient(tracking_uri)


def _run(client: MlflowClient, run_id: str) -> Run | None:
    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def _search(client: MlflowClient, where: str | None, limit: int) -> list[Run]:
    """Runs of any experiment, newest first; `where` narrows trial runs further."""
    trials = f"tags.`{TRIAL_TAG}` != ''"
    return _runs(client, f"{trials} and {where}" if where else trials, limit)


def _runs(client: MlflowClient, where: str, limit: int) -> list[Run]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    return list(
        client.search_runs(
            experiments, where, order_by=["attributes.start_time DESC"], max_results=limit
        )
    )


def _newest_search(client: MlflowClient) -> Run:
    found = _runs(client, f"tags.`{SEARCH_TAG}` = 'parent'", 1)
    if not found:
        raise ExportError(f"no search (parent run) in {client.tracking_uri}: nothing is 'best'")
    return found[0]


def _best_of(client: MlflowClient, parent: Run) -> Run:
    name = f"search {parent.info.run_name} ({parent.info.run_id})"
    trial = parent.data.tags.get(BEST_TAG)
    if not trial:
        raise ExportError(
            f"{name} has no best trial (it did not finish, or every trial failed); "
            "name a trial id or a child run id instead"
        )
    where = (
        f"tags.`{TRIAL_TAG}` = '{trial}' and tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'"
    )
    found = _runs(client, where, 1)
    if not found:
        raise ExportError(f"{name}: its best trial {trial} has no child run")
    return found[0]


def _spec(client: MlflowClient, parent: Run) -> SpaceSpec:
    run_id = parent.info.run_id
    with tempfile.TemporaryDirectory() as tmp, _no_progress_bar():
        try:
            path = client.download_artifacts(run_id, SPEC_ARTIFACT, tmp)
            raw = json.loads(Path(path).read_text())
        except (MlflowException, OSError, ValueError) as err:
            raise ExportError(
                f"search run {run_id} has no readable {SPEC_ARTIFACT}: {err}"
            ) from None
    try:
        return SpaceSpec.model_validate(raw)
    except ValidationError as err:
        raise ExportError(
            f"{SPEC_ARTIFACT} of search run {run_id} is not a valid space: {err}"
        ) from None


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a tqdm bar per artifact transfer on stderr, ahead of our messages."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def _checkpoint(child: Run, parent: Run) -> str:
    """The trial's last checkpoint path, checked on disk when it is local."""
    path = child.data.tags.get(CHECKPOINT_TAG)
    if not path:
        raise ExportError(
            f"{_name(child)} has no checkpoint (tag {CHECKPOINT_TAG}): it reported no epoch"
        )
    if "://" in path or (Path(path) / CHECKPOINT_FILE).is_file():
        return path
    folder = Path(path).parent
    if folder.is_dir():
        siblings = sorted(p.name for p in folder.iterdir() if p.name.startswith("checkpoint"))
        there = f"{folder} holds {', '.join(siblings) or 'no checkpoints'}"
    else:
        storage = parent.data.tags.get(STORAGE_TAG, "?")
        there = f"{folder} does not exist either (the search's storage: {storage})"
    raise ExportError(
        f"{_name(child)}'s checkpoint is missing: no {CHECKPOINT_FILE} in {path}; {there}"
    )


def _input_column(spec: SpaceSpec) -> str | None:
    """The column the trial's data fed it, default of `minesearch embed --input-column`."""
    if spec.data.source == "parquet":
        return spec.data.input_column
    return TEXT_TOPICS[2] if spec.data.source == "text_topics" else None


def _name(run: Run) -> str:
    return f"trial {run.data.tags.get(TRIAL_TAG, '?')} (run {run.info.run_id})"
