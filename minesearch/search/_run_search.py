"""One search, start to end: Ray, the MLflow parent run, the pretrained reference, Tune's fit,
then the steps after it (`_steps`).

Presenting the result (the report, the plots, the export of the best model) is the caller's
(`minesearch.api`). Nothing is printed unless `SearchOptions.view` asks for a view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune

from minesearch.config import SpaceSpec
from minesearch.data import load_parts, summarize
from minesearch.recipe import Setting
from minesearch.results import SearchResult
from minesearch.search import _state as state_files
from minesearch.search._progress import ViewCallback, show_header, tell
from minesearch.search._protocol import with_protocol
from minesearch.search._quiet import log_file_for, ray_output_to
from minesearch.search._ray import concurrency, resolve_storage, start_ray, with_device
from minesearch.search._reference import Reference, ReferenceCallback, start_reference
from minesearch.search._score_tasks import model_setting
from minesearch.search._search_state import Search, search_directory
from minesearch.search._steps import after_fit
from minesearch.search._trial import TrialSetup, trainable
from minesearch.search._tuner import new_tuner
from minesearch.search._view import Header, ViewMode
from minesearch.tracking import (
    ParentRun,
    StoreError,
    StoreOpening,
    names,
    resolve_tracking_uri,
    store_problem,
    tracking_source,
)

DEFAULT_STORAGE = "minesearch_runs"


class SearchInterrupted(Exception):
    """Tune stopped on SIGINT with trials unfinished; its state is saved for `--resume`."""

    def __init__(self, experiment_path: str) -> None:
        super().__init__(experiment_path)
        self.experiment_path = experiment_path


class StorageUnusable(ValueError):
    """The search's local storage directory cannot be made (bad input: storage_path)."""


@dataclass(frozen=True)
class SearchOptions:
    """How and where to run, as opposed to what to search (the space file)."""

    address: str | None = None  # None: RAY_ADDRESS if set, else a local Ray
    storage_path: str | None = None  # overrides the space file's
    resume: bool = False  # continue the latest interrupted search of this space
    ray_init: dict[str, Any] = field(default_factory=dict)  # extra ray.init kwargs (tests)
    confirm: tuple[int, int] | None = None  # (K recipes, S seeds) re-trained on the test split
    verbose: bool = False  # Ray's own output on the terminal instead of a log file
    view: ViewMode | None = None  # how the user sees the search; None: nothing is printed


@dataclass(frozen=True)
class Finished:
    """A search that ended: what it found, and where its files are."""

    result: SearchResult
    directory: Path | None


def run_search(spec: SpaceSpec, space_file: Path | None, options: SearchOptions) -> Finished:
    """Run (or resume) the whole search; the MLflow parent run ends with it.

    Unless `options.verbose`, Ray's own output (driver logs, Tune's tables, the workers' lines)
    goes to a log file in the search's directory, and the user sees the view (`_progress`) that
    `options.view` asks for, if any.
    Raises SearchInterrupted when Tune stopped on SIGINT with trials unfinished: its state is
    saved, and `options.resume` continues it.
    """
    tracking_uri = resolve_tracking_uri(spec.tracking.uri)
    if (problem := store_problem(tracking_uri, tracking_source(spec.tracking.uri))) is not None:
        raise StoreError(problem)  # before Ray starts: bad input, not a failed search
    storage = resolve_storage(options.storage_path or spec.storage_path or DEFAULT_STORAGE)
    setting = model_setting(spec)
    spec = with_protocol(spec, setting)  # folds, re-runs and test seeds of the setting
    # the space as asked (before devices are resolved): what --resume compares and MLflow logs
    spec_dict = spec.model_dump(mode="json")
    place = locate(spec.name, spec_dict, storage, options.resume)
    log_file = None if options.verbose else log_file_for(place.directory, place.name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # a new store is made while Ray starts; joined on the way out, whatever ends the block
    with ray_output_to(log_file) as ray_output, StoreOpening(tracking_uri) as opening:
        ray_train = not TrialSetup(spec, storage).in_actor  # a trial runs Ray Train
        local = start_ray(options.address, options.ray_init, ray_train)
        ray_output.divert_workers()
        spec = with_device(spec, ray.cluster_resources())
        at_once = concurrency(spec, ray.cluster_resources(), local)
        header = Header(
            space=f"{spec.name} ({space_file})" if space_file else spec.name,
            data=describe_data(spec),
            trials=spec.search.trials,
            epochs=spec.train.epochs,
            workers=spec.train.workers,
            store=tracking_uri,
            ray=describe_ray(local),
            log_file=str(log_file) if log_file else None,
        )
        context = SearchContext(
            TrialSetup(spec=spec, storage_path=storage),
            place,
            spec_dict,
            tracking_uri,
            at_once,
            setting,
            options,
            header,
        )
        opening.wait()
        started = context.reopen(*place.resumed) if place.resumed else context.start(space_file)
        search = started.search
        try:
            if started.view is not None:  # the header first, then the pretrained model's bar
                started.view.open()
            fit(started.tuner, search, started.view)
            if started.reference is not None:  # logged during the fit, unless it took longer
                started.reference.poll(wait=True)
            result = after_fit(search, options.confirm)
        except SearchInterrupted:
            raise
        except BaseException:
            if started.view is not None:  # a live view gives the terminal back
                started.view.close()
            search.parent.close("FAILED")
            raise
    search.parent.close("FINISHED")
    return Finished(result, place.directory)


@dataclass(frozen=True)
class Place:
    """Where a search lives in Ray storage: its Tune experiment's name and local directory, and,
    when it is resumed, the state it was saved with."""

    name: str
    directory: Path | None  # None for remote storage (s3://, gs://, ...)
    # when resuming: Tune's experiment directory and the state saved in it
    resumed: tuple[Path, state_files.SearchState] | None = None


def locate(space_name: str, spec_dict: dict[str, Any], storage: str, resume: bool) -> Place:
    """The search's name and directory, made now: a resume with nothing to resume (or with a
    changed space), or a storage path that cannot be made, is bad input found before Ray starts."""
    if resume:
        experiment_dir = state_files.latest(storage, space_name)
        resumed = (experiment_dir, state_files.load_state(experiment_dir, spec_dict))
        name = experiment_dir.name
    else:
        resumed, name = None, state_files.new_name(space_name)
    directory = search_directory(storage, name)
    if directory is not None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnusable(
                f"storage_path / --storage-path: cannot create {directory}: {exc.strerror}"
            ) from None
    return Place(name, directory, resumed)


@dataclass(frozen=True)
class Started:
    """A search ready to fit: what its steps share, its tuner, and the trials' view (None
    when resumed: Tune's saved view comes back without it)."""

    search: Search
    tuner: tune.Tuner
    view: ViewCallback | None
    reference: Reference | None  # the pretrained model's scoring, started before the tuner


@dataclass(frozen=True)
class SearchContext:
    """What a new or resumed search is started from, once Ray is up."""

    setup: TrialSetup  # the space with its devices resolved, and the Ray storage
    place: Place
    spec_dict: dict[str, Any]  # the space as asked, before devices were resolved
    tracking_uri: str
    at_once: int
    setting: Setting
    options: SearchOptions
    header: Header

    def new_search(self, parent: ParentRun) -> Search:
        return Search(
            self.setup,
            self.place.name,
            self.tracking_uri,
            parent,
            self.at_once,
            self.setting,
            self.options.view,
        )

    def start(self, space_file: Path | None) -> Started:
        """A new search: its MLflow parent run (with the data's summary), its saved state for
        `--resume`, and a tuner whose first trial is the control when the space holds it."""
        spec, spec_dict = self.setup.spec, self.spec_dict
        parent = start_parent(
            spec, spec_dict, space_file, self.tracking_uri, self.at_once, self.setup.storage_path
        )
        parent.log_data(summarize(spec, load_parts(spec)))  # the runs' Dataset column
        search = self.new_search(parent)
        if search.directory is not None:  # resume finds local (or NFS) searches
            state_files.save_state(
                search.directory, state_files.SearchState(parent.run_id, spec_dict)
            )
        view = search.view("trials", spec.search.trials, self.header)
        reference = start_reference(search)  # runs while Tune starts the first trial
        tuner = new_tuner(
            self.setup,
            search.name,
            self.tracking_uri,
            parent.run_id,
            self.at_once,
            view,
            self.options.verbose,
            search.control if spec.search.control else None,
            (ReferenceCallback(reference),),
        )
        return Started(search, tuner, view, reference)

    def reopen(self, experiment_dir: Path, saved: state_files.SearchState) -> Started:
        """An interrupted search: the same MLflow parent run, and Tune's saved experiment."""
        search = self.new_search(ParentRun.reopen(self.tracking_uri, saved.parent_run_id))
        tell(self.options.view, f"resuming {experiment_dir}")
        show_header(self.header, self.options.view)  # Tune's saved view comes back with no header
        tuner = tune.Tuner.restore(
            str(experiment_dir), trainable=trainable(self.setup), resume_unfinished=True
        )
        return Started(search, tuner, None, start_reference(search))


def describe_data(spec: SpaceSpec) -> str:
    """The data line of the view's header: the source, and how it is split."""
    data = spec.data
    where = f" {data.path}" if data.path else ""
    if data.split_column:
        return f"{data.source}{where}, split by the column {data.split_column!r}"
    split = data.split
    return f"{data.source}{where}, split by class (val {split.val:g}, test {split.test:g})"


def describe_ray(local: bool) -> str:
    address = ray.get_runtime_context().gcs_address
    cpus = ray.cluster_resources().get("CPU", 0)
    gpus = ray.cluster_resources().get("GPU", 0)
    kind = "local" if local else "cluster"
    return f"{kind} {address} ({cpus:g} CPUs, {gpus:g} GPUs)"


def start_parent(
    spec: SpaceSpec,
    spec_dict: dict[str, Any],
    space_file: Path | None,
    uri: str,
    at_once: int,
    storage: str,
) -> ParentRun:
    tags = {
        names.STORAGE_TAG: storage,  # where the trials' checkpoints are (minesearch export)
        names.CONCURRENT_TAG: str(at_once),  # the space's search.concurrent, as the cluster allows
    }
    resources = ray.cluster_resources()
    cpus, gpus = names.CLUSTER_TAGS
    tags |= {cpus: f"{resources.get('CPU', 0):g}", gpus: f"{resources.get('GPU', 0):g}"}
    return ParentRun.start(uri, spec.experiment, spec.name, spec_dict, space_file, tags)


def fit(tuner: tune.Tuner, search: Search, view: ViewCallback | None) -> None:
    """Tune to the end; SearchInterrupted when Tune caught SIGINT (the callback marked the runs).
    The view is closed whatever happens, so that a terminal gets its cursor back."""
    try:
        results = tuner.fit()
    finally:
        if view is not None:
            view.close()
    if search.parent.interrupted():
        raise SearchInterrupted(results.experiment_path)
