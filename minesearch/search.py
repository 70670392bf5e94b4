"""One search: Ray (local or a cluster), Tune with OptunaSearch and ASHA, an MLflow parent run.

The driver resolves everything path-like (tracking URI, storage) to absolute values before Ray
starts, since Tune and Train change the working directory of the processes they start.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from minesearch import experiments
from minesearch.confirm import run_confirm, top_recipes
from minesearch.control import run_control
from minesearch.holdout import has_test_split, score_chosen
from minesearch.samplers import make_search
from minesearch.searcher import RecipeSearch
from minesearch.space import build_space
from minesearch.spec import SpaceSpec
from minesearch.summary import SearchSummary, summarize
from minesearch.tracking import (
    STORAGE_TAG,
    MlflowTrialCallback,
    ParentRun,
    log_to_trial_run,
    resolve_tracking_uri,
    ui_command,
)
from minesearch.trial import TrialSetup, trainable

DEFAULT_STORAGE = "minesearch_runs"
CHECKPOINT_KEY = (
    "checkpoint_path"  # where Ray Train's TuneReportCallback puts a result's checkpoint
)


class SearchInterrupted(Exception):
    """Tune stopped on SIGINT with trials unfinished; its state is saved for `--resume`."""

    def __init__(self, experiment_path: str) -> None:
        super().__init__(experiment_path)
        self.experiment_path = experiment_path


class ClusterTooSmall(ValueError):
    """One trial needs more than the whole cluster has: it would wait forever."""


@dataclass(frozen=True)
class SearchOptions:
    """How and where to run, as opposed to what to search (the space file)."""

    address: str | None = None  # None: RAY_ADDRESS if set, else a local Ray
    storage_path: str | None = None  # overrides the space file's
    resume: bool = False  # continue the latest interrupted search of this space
    ray_init: dict[str, Any] = field(default_factory=dict)  # extra ray.init kwargs (tests)
    confirm: tuple[int, int] | None = None  # (K recipes, S seeds) re-trained on the test split


def resolve_storage(path: str) -> str:
    """Local paths become absolute (Tune changes cwd); URIs (s3://, gs://, ...) stay as given."""
    return path if "://" in path else str(Path(path).resolve())


def make_scheduler(spec: SpaceSpec) -> TrialScheduler:
    scheduler = spec.search.scheduler
    if scheduler.name == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="epoch",
        metric=spec.search.metric,
        mode=spec.search.mode,
        max_t=spec.train.epochs,
        grace_period=min(scheduler.grace_epochs, spec.train.epochs),
        reduction_factor=scheduler.reduction_factor,
    )


def with_device(spec: SpaceSpec, resources: dict[str, float]) -> SpaceSpec:
    """`train.use_gpu: auto` resolved against the cluster Ray reports."""
    if spec.train.use_gpu != "auto":
        return spec
    use_gpu = resources.get("GPU", 0.0) > 0
    return spec.model_copy(update={"train": spec.train.model_copy(update={"use_gpu": use_gpu})})


def concurrency(spec: SpaceSpec, resources: dict[str, float], local: bool) -> int:
    """Trials at once: what the file asks, capped by what the cluster can hold side by side."""
    train = spec.train
    if train.use_gpu is True:
        need, have, unit = float(train.workers), resources.get("GPU", 0.0), "GPU"
    else:
        need, have, unit = train.workers * train.cpus_per_worker, resources.get("CPU", 0.0), "CPU"
    fits = int(have // need)
    if fits == 0 and local:
        raise ClusterTooSmall(
            f"train.workers: one trial needs {need:g} {unit} but this machine has {have:g}; "
            "lower train.workers / train.cpus_per_worker or run on a cluster (--address)"
        )
    return max(1, min(spec.search.concurrent, fits)) if fits else spec.search.concurrent


def start_ray(options: SearchOptions) -> bool:
    """Connect to a cluster or start a local Ray; True when Ray is this machine alone.

    A local Ray cannot grow, so a trial larger than it is an error; a cluster may autoscale.
    """
    local = options.address is None and not os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
        if local:
            kwargs |= local_ray_options()
        ray.init(address=options.address, **(kwargs | options.ray_init))
    return local


def local_ray_options() -> dict[str, Any]:
    """ray.init arguments for a Ray on this machine: its own dashboard port, named to its jobs.

    Ray Train's placement-group cleaner (which frees the CPUs of a trial ASHA stopped) finds its
    cluster through the state API; with a second Ray on the machine (another search, a test) its
    auto-detection fails, the group leaks and the next trial waits forever. RAY_API_SERVER_ADDRESS
    names the right dashboard.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    return {
        "include_dashboard": True,
        "dashboard_port": port,
        "runtime_env": local_runtime_env(port),
    }


def local_runtime_env(dashboard_port: int | None = None) -> dict[str, Any]:
    """Ray Train's controller polls workers every 2 s and a worker's second report waits for the
    poll (a result queue of size 1): on a laptop that is most of a small epoch. Poll faster there;
    clusters keep Ray's default (their epochs are long, and the env belongs to their job)."""
    interval = os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    env = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": interval}
    if dashboard_port is not None:
        env["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{dashboard_port}"
    return {"env_vars": env}


def run_search(spec: SpaceSpec, space_file: Path | None, options: SearchOptions) -> SearchSummary:
    """Run (or resume) the whole search and return its summary; the MLflow parent run ends with it.

    Raises SearchInterrupted when Tune stopped on SIGINT with trials unfinished: its state is
    saved, and `options.resume` continues it.
    """
    tracking_uri = resolve_tracking_uri(spec.tracking.uri)
    storage = resolve_storage(options.storage_path or spec.storage_path or DEFAULT_STORAGE)
    spec_dict = spec.model_dump(mode="json")
    if options.resume:  # checked before Ray starts: nothing to resume is bad input
        experiment_dir = experiments.latest(storage, spec.name)
        state = experiments.load_state(experiment_dir, spec_dict)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    local = start_ray(options)
    spec = with_device(spec, ray.cluster_resources())
    at_once = concurrency(spec, ray.cluster_resources(), local)
    setup = TrialSetup(spec=spec.model_dump(mode="json"), storage_path=storage)
    if options.resume:
        parent = ParentRun.reopen(tracking_uri, state.parent_run_id)
        name = experiment_dir.name
        print(f"resuming {experiment_dir}")
        tuner = tune.Tuner.restore(
            str(experiment_dir), trainable=trainable(setup), resume_unfinished=True
        )
    else:
        parent = start_parent(spec, spec_dict, space_file, tracking_uri, at_once, storage)
        name = experiments.new_name(spec.name)
        state = experiments.SearchState(parent.run_id, spec_dict)
        if "://" not in storage:  # resume finds local (or NFS) searches; see experiments.latest
            experiments.save_state(Path(storage) / name, state)
        tuner = new_tuner(spec, setup, name, tracking_uri, parent.run_id, at_once)
    return finish(tuner, parent, Finish(spec, tracking_uri, setup, name, at_once, options.confirm))


def start_parent(
    spec: SpaceSpec,
    spec_dict: dict[str, Any],
    space_file: Path | None,
    uri: str,
    at_once: int,
    storage: str,
) -> ParentRun:
    tags = {
        STORAGE_TAG: storage,  # where the trials' checkpoints are (minesearch export)
        "sampler": spec.search.sampler.name,
        "scheduler": spec.search.scheduler.name,
        "cluster.cpus": f"{ray.cluster_resources().get('CPU', 0):g}",
        "cluster.gpus": f"{ray.cluster_resources().get('GPU', 0):g}",
        "concurrent": str(at_once),
    }
    return ParentRun.start(uri, spec.experiment, spec.name, spec_dict, space_file, tags)


def trial_params(spec: SpaceSpec) -> dict[str, Any]:
    """What every child run records beside its recipe: the budget it was trained with."""
    return {
        "batch.classes": spec.train.batch.classes,
        "batch.per_class": spec.train.batch.per_class,
        "workers": spec.train.workers,
        "seed": spec.train.seed,
        "epochs": spec.train.epochs,
        "optimizer": spec.train.optimizer,
    }


def new_tuner(
    spec: SpaceSpec, setup: TrialSetup, name: str, uri: str, parent_run_id: str, at_once: int
) -> tune.Tuner:
    sampler = spec.search.sampler
    space, optuna_sampler, grid_size = make_search(
        sampler.name, sampler.seed, build_space(spec.search.params, spec.search.weight_miners)
    )
    trials = spec.search.trials if grid_size is None else min(spec.search.trials, grid_size)
    if trials < spec.search.trials:
        print(f"grid: {grid_size} distinct recipes, so {trials} trials (search.trials asked more)")
    return tune.Tuner(
        trainable(setup),
        tune_config=tune.TuneConfig(
            search_alg=RecipeSearch(
                space=space,
                metric=spec.search.metric,
                mode=spec.search.mode,
                sampler=optuna_sampler,
                epochs=spec.train.epochs,
            ),
            scheduler=make_scheduler(spec),
            num_samples=trials,
            max_concurrent_trials=at_once,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=setup.storage_path,
            callbacks=[MlflowTrialCallback(uri, parent_run_id, trial_params(spec))],
            verbose=1,
        ),
    )


@dataclass(frozen=True)
class Finish:
    """What the steps after the search (control, test split, confirmation) need to know."""

    spec: SpaceSpec
    uri: str
    setup: TrialSetup
    name: str
    at_once: int
    confirm: tuple[int, int] | None


def finish(tuner: tune.Tuner, parent: ParentRun, end: Finish) -> SearchSummary:
    """Run Tune to the end, then the control, the test split and the confirmations; the parent run
    ends FINISHED, KILLED (interrupted) or FAILED."""
    spec, uri, setup = end.spec, end.uri, end.setup
    try:
        results = tuner.fit()
        if parent.interrupted():  # Tune caught SIGINT; the trial callback marked the runs
            raise SearchInterrupted(results.experiment_path)
        control = None
        if spec.search.control:
            control = run_control(spec, setup, end.name, uri, parent.run_id, trial_params(spec))
        summary = summarize(
            results,
            spec.search.metric,
            spec.search.mode,
            spec.train.epochs,
            ui_command(uri),
            control,
        )
        if has_test_split(spec):
            summary = replace(summary, test=score_test_split(end, parent.run_id, summary))
        if end.confirm is not None and summary.best is not None:
            top, seeds = end.confirm
            recipes = top_recipes([t.recipe for t in summary.ranked], top)
            confirmations = run_confirm(
                spec,
                setup,
                end.name,
                uri,
                parent.run_id,
                trial_params(spec),
                recipes,
                seeds,
                end.at_once,
            )
            summary = replace(summary, confirmations=confirmations)
    except SearchInterrupted:
        raise
    except BaseException:
        parent.finish("FAILED", None)
        raise
    parent.finish("FINISHED", summary.best_for_mlflow())
    local = "://" not in setup.storage_path
    out = Path(setup.storage_path) / end.name if local else Path(tempfile.mkdtemp())
    attach_report(uri, spec, parent.run_id, out / "report")
    if summary.best is not None:
        export_best(uri, parent.run_id, out / "export")
    return summary


def export_best(uri: str, parent_run_id: str, out_dir: Path) -> None:
    """The best trial's model (TorchScript + preprocessing JSON) on its child run under export/;
    never fails the search (`minesearch export` can redo it)."""
    from minesearch.export_runs import export_run

    try:
        path = export_run(parent_run_id, "torchscript", out_dir, uri)
        print(f"best trial's model: {path} (also in its MLflow run under export/torchscript)")
    except Exception as exc:
        print(f"warning: the best trial's model was not exported ({exc}); run `minesearch export`")


def score_test_split(end: Finish, parent_run_id: str, summary: SearchSummary) -> dict[str, Any]:
    """The best trial and the control on the test split, from their last checkpoints; the scores
    go to their child runs too."""
    chosen: dict[str, tuple[str, str]] = {}  # name -> (trial id, checkpoint path)
    if summary.best is not None and CHECKPOINT_KEY in summary.best.metrics:
        chosen["best"] = (summary.best.trial_id, str(summary.best.metrics[CHECKPOINT_KEY]))
    if summary.control and CHECKPOINT_KEY in summary.control:
        chosen["control"] = (str(summary.control["trial_id"]), str(summary.control[CHECKPOINT_KEY]))
    paths = {name: path for name, (_, path) in chosen.items()}
    scores = score_chosen(end.spec, end.setup.storage_path, paths)
    for name, metrics in scores.items():
        log_to_trial_run(end.uri, parent_run_id, chosen[name][0], metrics)
    return scores


def attach_report(uri: str, spec: SpaceSpec, parent_run_id: str, out_dir: Path) -> None:
    """The report's plots on the parent run when a search ends; never fails the search."""
    from minesearch import report  # matplotlib only where plots are drawn

    try:
        result = report.build_report(uri, spec.experiment, parent_run_id)
        report.attach(result, report.write_plots(result, out_dir))
    except Exception as exc:  # a plot must not cost the user a finished search
        print(f"warning: the report could not be attached ({exc}); run `minesearch report`")
