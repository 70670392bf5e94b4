"""Every private part of Ray that minesearch relies on, in one place (Ray 2.60; pyproject pins
the minor). `ray_changes()` checks each assumption against the installed Ray and names the Ray
symbol that moved; tests/search/test_ray_internals.py runs it, so an upgrade fails there, loudly,
not as a search that hangs.

What is used, and why:
- a Tune function trainable's result names the checkpoint it reported by its directory
  (`checkpoint_dir_name`) under the trial's storage path: a single-worker trial's child run finds
  its selected checkpoint there (`tune_checkpoint_path`);
- `TorchTrainer._create_default_callbacks`: a trial's Ray Train run drops Ray Data's dataset
  manager (a trial never passes datasets) and Ray's per-run placement-group cleaner (one detached
  process per trial, ray#65443) for one `SearchCleaner` per search (as ray PR #65447 proposes);
- Ray Train's controller and worker-group callbacks (`RunWatch`): the run's placement group is
  handed to that cleaner, and a trial that Tune stopped aborts its run from inside the controller;
- the controller runs on the node of the process that calls `fit()` (the trial actor), so a
  trial's controller and its trial actor share a local directory (`search._train_run`);
- a Tune function trainable's `report` does not return once Tune stopped the trial: the session
  ends the thread there (`sys.exit`), so Tune may reuse the process (`reset_config` waits 2 s for
  that thread) and a multi-worker trial then aborts its Ray Train run.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import posixpath
import threading
import time
from typing import TYPE_CHECKING, Any

import ray
from ray.train.torch import TorchTrainer
from ray.train.v2._internal.execution.callback import ControllerCallback, WorkerGroupCallback

if TYPE_CHECKING:
    from ray.actor import ActorHandle
    from ray.tune.experiment import Trial
    from ray.util.placement_group import PlacementGroup

logger = logging.getLogger(__name__)

RAY_MINOR = "2.60"  # the minor these assumptions were read from (pyproject.toml pins it)

CALLBACKS = "ray.train.v2._internal.execution.callback"  # RunWatch's bases
DEFAULT_CALLBACKS = {
    "DatasetsCallback": "ray.train.v2._internal.callbacks",
    "PlacementGroupCleanerCallback": "ray.train.v2._internal.callbacks.placement_group_callback",
}
# a Tune function trainable's result: the reported checkpoint's directory under the trial's path
CHECKPOINT_DIR_KEY = "checkpoint_dir_name"
CLEANER_NAME = "minesearch-placement-group-cleaner"
CLEANER_INTERVAL_S = 1.0  # how often the cleaner asks whether each run's controller is alive
STOP_POLL_S = 0.1  # how often a controller looks for its trial's stop request


class RayChanged(RuntimeError):
    """An internal of Ray that minesearch relies on is not where Ray 2.60 had it."""


def ray_symbol(module: str, name: str) -> Any:
    """`module.name`, or RayChanged naming it."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise RayChanged(
            f"{module}.{name} is gone (Ray {ray.__version__}; minesearch was written against "
            f"{RAY_MINOR}): see minesearch/search/_ray_internals.py"
        ) from exc


def tune_checkpoint_path(trial: Trial, result: dict[str, Any]) -> str | None:
    """Where Tune keeps the checkpoint a function trainable reported with `result` (a path in
    the storage's filesystem, as Ray Train's checkpoint paths are); None without one."""
    name = result.get(CHECKPOINT_DIR_KEY)
    if not isinstance(name, str) or not trial.path:
        return None
    return posixpath.join(trial.path, name)


class TrialTrainer(TorchTrainer):
    """TorchTrainer that starts fewer processes per run. Without datasets it drops Ray Data's
    dataset manager (a trial's workers read their data themselves); given `callbacks` (a
    `RunWatch` with the search's cleaner), they replace Ray's per-run placement-group cleaner.
    Without them (`legacy`, the bench's old path) the run keeps that cleaner."""

    run_callbacks: tuple[Any, ...] = ()

    def _create_default_callbacks(self) -> list[Any]:
        callbacks: list[Any] = super()._create_default_callbacks()  # type: ignore[misc]
        dropped: list[type] = []
        if not self.datasets:
            dropped.append(ray_symbol(DEFAULT_CALLBACKS["DatasetsCallback"], "DatasetsCallback"))
        if self.run_callbacks:
            name = "PlacementGroupCleanerCallback"
            dropped.append(ray_symbol(DEFAULT_CALLBACKS[name], name))
        kept = [c for c in callbacks if not isinstance(c, tuple(dropped))]
        return [*kept, *self.run_callbacks]


class SearchCleaner:
    """One per search, owned by the driver: removes the placement group of a Ray Train run whose
    controller died (its trial actor killed by Tune: ASHA's stop, the end of the search), which
    Ray would otherwise free only when the job ends, leaving the next trial waiting for CPUs.

    Ray Train 2.60 starts a detached cleaner process per run for this (ray#65443). This one asks
    the state API (hence Ray's dashboard, `ray[default]`) whether each registered controller is
    alive, every `CLEANER_INTERVAL_S`; a group its run removed already is left as it is.
    """

    def __init__(self, interval_s: float = CLEANER_INTERVAL_S) -> None:
        self._runs: dict[str, PlacementGroup] = {}  # controller actor id -> its placement group
        self._lock = threading.Lock()
        self._interval_s = interval_s
        threading.Thread(target=self._watch, name="SearchCleaner", daemon=True).start()

    def register(self, controller_id: str, group: PlacementGroup) -> None:
        """The run of controller `controller_id` holds `group` (again, after a restart)."""
        with self._lock:
            self._runs[controller_id] = group

    def watching(self) -> list[str]:
        with self._lock:
            return sorted(self._runs)

    def _watch(self) -> None:
        from ray.util.placement_group import remove_placement_group
        from ray.util.state import get_actor

        while True:
            time.sleep(self._interval_s)
            with self._lock:
                runs = dict(self._runs)
            for controller_id, group in runs.items():
                try:
                    state = get_actor(controller_id, timeout=10)
                except Exception:  # the state API can be briefly unavailable: ask again later
                    logger.warning("cannot read controller %s's state", controller_id)
                    continue
                if state is not None and state.state != "DEAD":
                    continue
                with contextlib.suppress(Exception):  # already removed by its run
                    remove_placement_group(group)
                with self._lock:
                    self._runs.pop(controller_id, None)


def search_cleaner() -> ActorHandle:
    """The search's cleaner, started by the first caller in this Ray job (the driver, which owns
    it: it lives as long as the search, and Ray frees the job's groups after that)."""
    actor: Any = ray.remote(SearchCleaner)
    return actor.options(
        name=CLEANER_NAME, get_if_exists=True, num_cpus=0, max_concurrency=4
    ).remote()


class RunWatch(ControllerCallback, WorkerGroupCallback):
    """Runs inside a trial's Ray Train controller. It registers the run's placement group with
    the search's cleaner, and aborts the run when the trial asks (the file `stop_flag` appears:
    Tune stopped the trial), so the workers and their CPUs are freed at once, whether Tune then
    kills the trial actor or keeps it for the next trial."""

    def __init__(self, cleaner: ActorHandle, stop_flag: str) -> None:
        self.cleaner = cleaner
        self.stop_flag = stop_flag
        self._controller_id: str | None = None
        self._done = threading.Event()

    def after_controller_start(self, train_run_context: Any) -> None:
        context = ray.get_runtime_context()
        self._controller_id = context.get_actor_id()
        controller = context.current_actor
        threading.Thread(
            target=self._abort_when_asked, args=(controller,), name="RunWatch", daemon=True
        ).start()

    def _abort_when_asked(self, controller: ActorHandle) -> None:
        while not self._done.wait(STOP_POLL_S):
            if os.path.exists(self.stop_flag):
                controller.abort.remote()
                return

    def after_worker_group_start(self, worker_group: Any) -> None:
        state = worker_group.get_worker_group_state()
        group = state.placement_group_handle.placement_group
        ray.get(self.cleaner.register.remote(self._controller_id, group))

    async def before_controller_shutdown(self) -> None:
        self._end()

    def before_controller_abort(self) -> None:
        self._end()

    def _end(self) -> None:
        # The cleaner keeps the run until its controller is dead: a controller killed halfway
        # through its own abort or shutdown (its trial actor killed) leaves the group behind.
        self._done.set()

    def __getstate__(self) -> dict[str, Any]:  # pickled to the controller before it starts
        return {"cleaner": self.cleaner, "stop_flag": self.stop_flag}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["cleaner"], state["stop_flag"])  # type: ignore[misc]


def ray_changes() -> list[str]:
    """Each assumption above that the installed Ray breaks, named (empty: all hold)."""
    problems = []
    for name, module in DEFAULT_CALLBACKS.items():
        try:
            ray_symbol(module, name)
        except RayChanged as exc:
            problems.append(str(exc))
    hooks = {
        ControllerCallback: (
            "after_controller_start",
            "before_controller_shutdown",
            "before_controller_abort",
        ),
        WorkerGroupCallback: ("after_worker_group_start",),
    }
    for base, names in hooks.items():
        problems += [
            f"{CALLBACKS}.{base.__name__}.{n} is gone" for n in names if not hasattr(base, n)
        ]
    if not inspect.iscoroutinefunction(ControllerCallback.before_controller_shutdown):
        problems.append(f"{CALLBACKS}.ControllerCallback.before_controller_shutdown is not async")
    if not hasattr(TorchTrainer, "_create_default_callbacks"):
        problems.append("ray.train.torch.TorchTrainer._create_default_callbacks is gone")
    trainer = ray_symbol("ray.train.v2.api.data_parallel_trainer", "DataParallelTrainer")
    placed = inspect.getsource(trainer._initialize_and_run_controller)
    if "get_node_id()" not in placed:
        problems.append(
            "ray.train.v2.api.data_parallel_trainer.DataParallelTrainer."
            "_initialize_and_run_controller no longer places the controller on the caller's node"
        )
    session = ray_symbol("ray.train._internal.session", "_TrainSession")
    if "sys.exit" not in inspect.getsource(session._report_training_result):
        problems.append(
            "ray.train._internal.session._TrainSession._report_training_result no longer ends "
            "a stopped trial's thread at its report (reused trial processes rely on it)"
        )
    if ray_symbol("ray.train.constants", "CHECKPOINT_DIR_NAME") != CHECKPOINT_DIR_KEY:
        problems.append(
            f"ray.train.constants.CHECKPOINT_DIR_NAME is no longer {CHECKPOINT_DIR_KEY!r}"
        )
    return problems
