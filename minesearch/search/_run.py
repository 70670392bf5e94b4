"""One search, start to end: Ray, the MLflow parent run, Tune's fit, then the steps after it.

The steps after the fit are separate functions over one explicit `Search`: the control, the test
split of the chosen trials, the confirmations, the parent run's outcome. Presenting the result
(the report, the plots, the export of the best model) is the caller's (`minesearch.cli`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune

from minesearch.config import SpaceSpec
from minesearch.config.vocab import TEST_PREFIX
from minesearch.results import (
    SHOWN,
    Confirmation,
    SearchResult,
    TrialResult,
    confirmations,
    top_recipes,
)
from minesearch.search import _state as state_files
from minesearch.search._confirm import run_confirm
from minesearch.search._control import run_control
from minesearch.search._holdout import has_test_split, score_chosen
from minesearch.search._ray import concurrency, resolve_storage, start_ray, with_device
from minesearch.search._trial import TrialSetup, trainable
from minesearch.search._tuner import new_tuner, trial_params
from minesearch.tracking import (
    ChildRuns,
    ParentRun,
    metric_history,
    names,
    read_search,
    resolve_tracking_uri,
)

DEFAULT_STORAGE = "minesearch_runs"


class SearchInterrupted(Exception):
    """Tune stopped on SIGINT with trials unfinished; its state is saved for `--resume`."""

    def __init__(self, experiment_path: str) -> None:
        super().__init__(experiment_path)
        self.experiment_path = experiment_path


@dataclass(frozen=True)
class SearchOptions:
    """How and where to run, as opposed to what to search (the space file)."""

    address: str | None = None  # None: RAY_ADDRESS if set, else a local Ray
    storage_path: str | None = None  # overrides the space file's
    resume: bool = False  # continue the latest interrupted search of this space
    ray_init: dict[str, Any] = field(default_factory=dict)  # extra ray.init kwargs (tests)
    confirm: tuple[int, int] | None = None  # (K recipes, S seeds) re-trained on the test split


@dataclass(frozen=True)
class Search:
    """What the steps of one search share."""

    setup: TrialSetup  # the space (devices resolved) and the Ray storage
    name: str  # the Tune experiment's name: <space name>-<timestamp>
    tracking_uri: str
    parent: ParentRun
    at_once: int  # trials side by side

    @property
    def spec(self) -> SpaceSpec:
        return self.setup.spec

    @property
    def directory(self) -> Path | None:
        """The search's directory in local (or NFS) storage; None for s3://, gs://, ..."""
        storage = self.setup.storage_path
        return None if "://" in storage else Path(storage) / self.name


@dataclass(frozen=True)
class Finished:
    """A search that ended: what it found, and where its files are."""

    result: SearchResult
    directory: Path | None


def run_search(spec: SpaceSpec, space_file: Path | None, options: SearchOptions) -> Finished:
    """Run (or resume) the whole search; the MLflow parent run ends with it.

    Raises SearchInterrupted when Tune stopped on SIGINT with trials unfinished: its state is
    saved, and `options.resume` continues it.
    """
    tracking_uri = resolve_tracking_uri(spec.tracking.uri)
    storage = resolve_storage(options.storage_path or spec.storage_path or DEFAULT_STORAGE)
    spec_dict = spec.model_dump(mode="json")
    if options.resume:  # checked before Ray starts: nothing to resume is bad input
        experiment_dir = state_files.latest(storage, spec.name)
        saved = state_files.load_state(experiment_dir, spec_dict)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    local = start_ray(options.address, options.ray_init)
    spec = with_device(spec, ray.cluster_resources())
    at_once = concurrency(spec, ray.cluster_resources(), local)
    setup = TrialSetup(spec=spec, storage_path=storage)
    if options.resume:
        parent = ParentRun.reopen(tracking_uri, saved.parent_run_id)
        search = Search(setup, experiment_dir.name, tracking_uri, parent, at_once)
        print(f"resuming {experiment_dir}")
        tuner = tune.Tuner.restore(
            str(experiment_dir), trainable=trainable(setup), resume_unfinished=True
        )
    else:
        parent = start_parent(spec, spec_dict, space_file, tracking_uri, at_once, storage)
        search = Search(setup, state_files.new_name(spec.name), tracking_uri, parent, at_once)
        if search.directory is not None:  # resume finds local (or NFS) searches
            state_files.save_state(
                search.directory, state_files.SearchState(parent.run_id, spec_dict)
            )
        tuner = new_tuner(setup, search.name, tracking_uri, parent.run_id, at_once)
    try:
        fit(tuner, search)
        result = after_fit(search, options.confirm)
    except SearchInterrupted:
        raise
    except BaseException:
        parent.close("FAILED")
        raise
    parent.close("FINISHED")
    return Finished(result, search.directory)


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
        "sampler": spec.search.sampler.name,
        "scheduler": spec.search.scheduler.name,
        "cluster.cpus": f"{ray.cluster_resources().get('CPU', 0):g}",
        "cluster.gpus": f"{ray.cluster_resources().get('GPU', 0):g}",
        "concurrent": str(at_once),
    }
    return ParentRun.start(uri, spec.experiment, spec.name, spec_dict, space_file, tags)


def fit(tuner: tune.Tuner, search: Search) -> None:
    """Tune to the end; SearchInterrupted when Tune caught SIGINT (the callback marked the runs)."""
    results = tuner.fit()
    if search.parent.interrupted():
        raise SearchInterrupted(results.experiment_path)


def after_fit(search: Search, confirm: tuple[int, int] | None) -> SearchResult:
    """The control, the test split of the chosen trials, the confirmations, then the parent run's
    outcome; the search read back from MLflow at the end."""
    params = trial_params(search.spec)
    if search.spec.search.control:
        run_control(search.setup, search.name, search.tracking_uri, search.parent.run_id, params)
    result = read_search(search.tracking_uri, search.parent.run_id)
    test = score_test_split(search, result) if has_test_split(search.spec) else {}
    if confirm is not None and result.best is not None:
        top, seeds = confirm
        recipes = top_recipes([t.recipe for t in result.ranked if t.recipe is not None], top)
        run_confirm(
            search.setup,
            search.name,
            search.tracking_uri,
            search.parent.run_id,
            params,
            recipes,
            seeds,
            search.at_once,
        )
    result = read_search(search.tracking_uri, search.parent.run_id)
    search.parent.log_outcome(*outcome(result, test))
    return read_search(search.tracking_uri, search.parent.run_id)


def score_test_split(search: Search, result: SearchResult) -> dict[str, dict[str, float]]:
    """The best trial and the control on the test split, from their last checkpoints; the scores
    go to their child runs too."""
    chosen = {name: t for name, t in (("best", result.best), ("control", result.control)) if t}
    scores = score_chosen(search.spec, search.setup.storage_path, chosen)
    runs = ChildRuns(search.tracking_uri, search.parent.run_id, "trial", {})
    for name, metrics in scores.items():
        runs.log_after(chosen[name].trial_id, metrics)
    return scores


def outcome(
    result: SearchResult, test: dict[str, dict[str, float]]
) -> tuple[dict[str, Any], dict[str, float], dict[str, str]]:
    """The parent run's params, metrics and tags once the search is done: the best recipe, its
    scores and epoch-0 scores, the control's, the test split's and the confirmations'."""
    best, control = result.best, result.control
    if best is None:
        return {}, {}, {}
    params = {f"{names.BEST_PREFIX}{k}": v for k, v in _recipe_params(best).items()}
    metrics = _shown(names.BEST_PREFIX, best.metrics)
    metrics |= _shown(names.EPOCH0_PREFIX, epoch0_scores(result.tracking_uri, best))
    if control is not None:
        metrics |= _shown(names.CONTROL_PREFIX, control.metrics)
    for name, scores in test.items():  # e.g. best.test.mean_average_precision_at_r
        metrics |= {f"{name}.{k}": v for k, v in scores.items()}
    for confirmation in confirmations(result):
        metrics |= confirmation_metrics(confirmation, result.metric)
    return params, metrics, {names.BEST_TAG: best.trial_id}


def confirmation_metrics(confirmation: Confirmation, metric: str) -> dict[str, float]:
    """confirm.<rank>.test.<metric>.mean / .ci95 and confirm.<rank>.seeds, for the parent run."""
    mean, half = confirmation.interval(metric)
    rank = f"{names.CONFIRM_PREFIX}{confirmation.rank}"
    values = {
        f"{rank}.{TEST_PREFIX}{metric}.mean": mean,
        f"{rank}.{TEST_PREFIX}{metric}.ci95": half,
        f"{rank}.seeds": float(len(confirmation.scores)),
    }
    return {k: v for k, v in values.items() if math.isfinite(v)}


def epoch0_scores(tracking_uri: str, trial: TrialResult) -> dict[str, float]:
    """A trial's scores before training (epoch 0), from its metric histories."""
    scores: dict[str, float] = {}
    for key in SHOWN:
        history = dict(metric_history(tracking_uri, trial.run_id, key))
        if 0 in history:
            scores[key] = history[0]
    return scores


def _shown(prefix: str, metrics: Any) -> dict[str, float]:
    return {
        f"{prefix}{k}": float(metrics[k])
        for k in SHOWN
        if k in metrics and math.isfinite(float(metrics[k]))
    }


def _recipe_params(trial: TrialResult) -> dict[str, str]:
    if trial.recipe is not None:
        return trial.recipe.mlflow_params()
    return dict(trial.params)
