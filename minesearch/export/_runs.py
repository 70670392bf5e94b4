"""Which trial `minesearch export REF` means, and its checkpoint exported and logged back.

Everything needed is in MLflow: the parent run holds the resolved space and the search's storage
path, each child run its trial's last checkpoint path. The network is rebuilt from the space (a
checkpoint holds weights, not architecture) and the export is logged to the trial's child run, so
the run a user compares in the UI carries the model that can be taken away.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from minesearch.config import SpaceSpec, SpecError, is_uri
from minesearch.data import TEXT_TOPICS, Parts, load_parts
from minesearch.export._formats import ExportError, ExportFormat, export_network
from minesearch.export._pyfunc import example_input, load_embedder
from minesearch.models import Network, backbone_name, reference_network
from minesearch.results import CONTROL_BETTER, PRETRAINED_BETTER, TrialResult
from minesearch.tracking import (
    FoundTrial,
    LoggedModel,
    StoreError,
    find_trial,
    log_directory,
    log_model,
    names,
    read_search,
    spec_of,
)
from minesearch.train import CHECKPOINT_FILE, has_checkpoint_file, load_network

EXAMPLE_ROWS = 4  # rows of the source traced through the network


@dataclass(frozen=True)
class Exported:
    """What an export wrote, and what it is (for the user)."""

    path: Path  # the model file
    what: str  # "trial t1 (run ...)", or "the pretrained model (no recipe beat it)"
    model: LoggedModel | None = None  # the MLflow Model logged beside it (mlflow_model=True)


def export_run(
    ref: str,
    fmt: ExportFormat,
    out_dir: Path,
    tracking_uri: str,
    log: bool = True,
    mlflow_model: bool = False,
) -> Exported:
    """Export what `ref` names (a child run id, a trial id, ``best``, or a search's parent run id
    for its best) to `out_dir`; with `log`, also into its MLflow run's artifacts.

    A search's best is its best trial, unless the search's verdict says otherwise: the control's
    trial when the control (the practitioner's recipe) did best; the pretrained model itself (the
    backbone with no head, logged on the parent run) when no recipe beat it; for vector inputs,
    where the pretrained model is the input, there is nothing to export and the message says so.
    A trial named by id is exported as asked.

    With `mlflow_model` (a search's end: once per search), the TorchScript export also becomes
    the run's MLflow Model (`minesearch.tracking.log_model`: a pyfunc that embeds raw inputs as
    `minesearch embed` does), registered as the space's `tracking.register_model` if it names one.
    It needs the logged TorchScript export: asked with `log=False` or another format, it is an
    error, not an MLflow Model silently left out.
    """
    if mlflow_model and not (log and fmt == "torchscript"):
        raise ValueError(
            f"an MLflow Model is the logged TorchScript export: mlflow_model needs log=True and "
            f"format 'torchscript' (given log={log}, format {fmt!r})"
        )
    try:
        found = find_trial(tracking_uri, ref)
        raw_spec = spec_of(tracking_uri, found.parent_run_id)
    except StoreError as err:
        raise ExportError(str(err)) from None
    spec = _spec(raw_spec, found.parent_run_id)
    answer = found.parent_tags.get(names.VERDICT_TAG) if found.via_search else None
    pretrained = answer == PRETRAINED_BETTER
    parts, network, run_id, what = _rebuild(spec, found, answer, tracking_uri)
    rows = np.arange(min(EXAMPLE_ROWS, len(parts.source)))
    example = network.preprocess(parts.source.take(rows), False)
    path = export_network(network, example, fmt, out_dir, _input_column(spec))
    if log:
        where = (
            f"{names.EXPORT_DIR}/pretrained/{fmt}" if pretrained else f"{names.EXPORT_DIR}/{fmt}"
        )
        try:
            log_directory(tracking_uri, run_id, out_dir, where)
        except StoreError as err:
            raise ExportError(f"exported to {out_dir}, but {err}") from None
    if not mlflow_model:
        return Exported(path, what)
    given = example_input(parts.source.take(rows), parts.source.kind, _input_column(spec))
    try:
        logged = log_model(
            tracking_uri, run_id, str(out_dir), load_embedder, given, spec.tracking.register_model
        )
    except StoreError as err:
        raise ExportError(f"exported to {out_dir}, but {err}") from None
    return Exported(path, what, logged)


def _rebuild(
    spec: SpaceSpec, found: FoundTrial, answer: str | None, tracking_uri: str
) -> tuple[Parts, Network, str, str]:
    """The network the search's verdict (`answer`, None for a trial named by id) says to keep,
    rebuilt from its checkpoint: the data's parts, the network, the MLflow run it belongs to,
    and how to name it."""
    storage = found.parent_tags.get(names.STORAGE_TAG, "")
    if answer == CONTROL_BETTER:
        found = _control_of(tracking_uri, found)
    try:
        parts = load_parts(spec)
        if answer == PRETRAINED_BETTER:
            return (parts, *_pretrained(spec, parts, found))
        checkpoint = _checkpoint(found.trial, storage)
        head = found.trial.recipe.head if found.trial.recipe else None
        network = load_network(spec, parts, checkpoint, storage, head)
        what = _name(found.trial)
        if answer == CONTROL_BETTER:
            what = f"the control, {what} (it did best: the search's verdict)"
        return parts, network, found.trial.run_id, what
    except (ValueError, SpecError, OSError, RuntimeError) as err:
        raise ExportError(f"cannot rebuild {_name(found.trial)}: {err}") from None


def _pretrained(spec: SpaceSpec, parts: Parts, found: FoundTrial) -> tuple[Network, str, str]:
    """The search's answer when no recipe beat the pretrained model: that model, unless it is
    the input itself."""
    if backbone_name(spec, parts.source) == "identity":
        raise ExportError(
            f"no recipe of search {found.parent_run_id} beat the pretrained model, and for vector "
            "inputs the pretrained model is the vectors themselves: keep using them as they are "
            f"(or export a trial by its id anyway, e.g. {found.trial.trial_id})"
        )
    what = f"the pretrained model (no recipe of search {found.parent_run_id} beat it)"
    return reference_network(spec, parts.source), found.parent_run_id, what


def _control_of(tracking_uri: str, found: FoundTrial) -> FoundTrial:
    """The search's control trial: the verdict's answer when the control did best."""
    control = read_search(tracking_uri, found.parent_run_id).control
    if control is None:
        raise ExportError(
            f"search {found.parent_run_id}'s verdict is that the control did best, but its "
            "control run is gone from the store"
        )
    return replace(found, trial=control)


def _spec(raw: dict[str, object], parent_run_id: str) -> SpaceSpec:
    try:
        return SpaceSpec.model_validate(raw)
    except ValidationError as err:
        raise ExportError(
            f"{names.SPEC_ARTIFACT} of search run {parent_run_id} is not a valid space: {err}"
        ) from None


def _checkpoint(trial: TrialResult, storage: str) -> str:
    """The trial's last checkpoint path, checked on disk when it is local."""
    path = trial.checkpoint
    if not path:
        raise ExportError(
            f"{_name(trial)} has no checkpoint (tag {names.CHECKPOINT_TAG}): it reported no epoch"
        )
    if is_uri(path) or has_checkpoint_file(path):
        return path
    folder = Path(path).parent
    if folder.is_dir():
        siblings = sorted(p.name for p in folder.iterdir() if p.name.startswith("checkpoint"))
        there = f"{folder} holds {', '.join(siblings) or 'no checkpoints'}"
    else:
        there = f"{folder} does not exist either (the search's storage: {storage or '?'})"
    raise ExportError(
        f"{_name(trial)}'s checkpoint is missing: no {CHECKPOINT_FILE} in {path}; {there}"
    )


def _input_column(spec: SpaceSpec) -> str | None:
    """The column the trial's data fed it, default of `minesearch embed --input-column`."""
    if spec.data.source == "parquet":
        return spec.data.input_column
    return TEXT_TOPICS[2] if spec.data.source == "text_topics" else None


def _name(trial: TrialResult) -> str:
    return f"trial {trial.trial_id} (run {trial.run_id})"
