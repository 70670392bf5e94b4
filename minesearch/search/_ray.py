"""Ray for a search: a local Ray sized to this machine, or a cluster; devices and concurrency.

The driver resolves everything path-like (storage) to absolute values before Ray starts, since
Tune and Train change the working directory of the processes they start.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import ray

from minesearch.config import SpaceSpec, TrainSpec, is_uri


class ClusterTooSmall(ValueError):
    """One trial needs more than the whole cluster has: it would wait forever."""


def resolve_storage(path: str) -> str:
    """Local paths become absolute (Tune changes cwd); URIs (s3://, gs://, ...) stay as given."""
    return path if is_uri(path) else str(Path(path).resolve())


def with_device(spec: SpaceSpec, resources: dict[str, float]) -> SpaceSpec:
    """`train.use_gpu: auto` resolved against the cluster Ray reports."""
    if spec.train.use_gpu != "auto":
        return spec
    use_gpu = resources.get("GPU", 0.0) > 0
    return spec.model_copy(update={"train": spec.train.model_copy(update={"use_gpu": use_gpu})})


def worker_resources(train: TrainSpec) -> dict[str, float]:
    """What one worker asks Ray for: its CPUs and, on GPUs, its GPU or a share of one
    (`train.gpus_per_worker`: 0.25 packs four single-worker trials onto one GPU)."""
    resources = {"CPU": float(train.cpus_per_worker)}
    if train.use_gpu is True:
        resources["GPU"] = float(train.gpus_per_worker)
    return resources


def concurrency(spec: SpaceSpec, resources: dict[str, float], local: bool) -> int:
    """Trials at once: what the file asks, capped by what the cluster can hold side by side (its
    CPUs and, on GPUs, its GPUs, shares of one included)."""
    train = spec.train
    need = {unit: n * train.workers for unit, n in worker_resources(train).items()}
    room = {unit: fits(resources.get(unit, 0.0), n) for unit, n in need.items()}
    least = min(room.values())
    if least == 0 and local:
        unit = next(u for u, n in room.items() if n == 0)
        raise ClusterTooSmall(
            f"train.workers: one trial needs {need[unit]:g} {unit} but this machine has "
            f"{resources.get(unit, 0.0):g}; lower train.workers / train.cpus_per_worker"
            f"{' / train.gpus_per_worker' if unit == 'GPU' else ''} or run on a cluster (--address)"
        )
    return max(1, min(spec.search.concurrent, least)) if least else spec.search.concurrent


def fits(have: float, need: float) -> int:
    """How many `need`s fit in `have`, counted as Ray counts resources (in 1/10000ths), so that
    floating point does not lose one: 3 trials of 0.3 GPU fit 0.9 GPU."""
    return int(round(have * 10_000) // round(need * 10_000))


def start_ray(address: str | None, extra: dict[str, Any], ray_train: bool = True) -> bool:
    """Connect to a cluster or start a local Ray; True when Ray is this machine alone.

    A local Ray cannot grow, so a trial larger than it is an error; a cluster may autoscale.
    `ray_train`: whether any trial runs a Ray Train job (`local_ray_options`); a Ray this process
    started without what Ray Train needs is started again.
    """
    local = address is None and not os.environ.get("RAY_ADDRESS")
    if ray.is_initialized() and ray_train and _STARTED.get("without_dashboard"):
        ray.shutdown()  # this process's Ray, started for in-actor trials: Ray Train needs more
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
        if local:
            kwargs |= local_ray_options(ray_train)
        kwargs |= extra
        ray.init(address=address, **kwargs)
        _STARTED["without_dashboard"] = kwargs.get("include_dashboard") is False
    return local


# Whether the Ray this process started has no dashboard (`local_ray_options`): a later search of
# the same process (the Python API runs one after another on the same Ray) whose trials run Ray
# Train restarts it. Process state by nature, as Ray's own is: `ray.init` is once per process.
_STARTED: dict[str, bool] = {}


def local_ray_options(ray_train: bool = True) -> dict[str, Any]:
    """ray.init arguments for a Ray on this machine: its own dashboard port, named to its jobs.

    The search's placement-group cleaner (`_ray_internals.SearchCleaner`, which frees the CPUs of
    a Ray Train trial whose process died) finds its cluster through the state API; with a second
    Ray on the machine (another search, a test) its auto-detection fails, the group leaks and the
    next trial waits forever. RAY_API_SERVER_ADDRESS names the right dashboard.

    A search whose trials all train in their Tune actors (`train.workers: 1`) runs no Ray Train
    job: no cleaner, no Train settings, so no dashboard (seconds of a local ray.init, and CPU
    while it runs: docs/measurements.md) and no job runtime env (without one, the first task and
    actor run in the workers Ray prestarted).
    """
    if not ray_train:
        return {"include_dashboard": False}
    from minesearch.tracking import free_port  # the driver's: trial processes load no MLflow

    port = free_port("127.0.0.1")
    return {
        "include_dashboard": True,
        "dashboard_port": port,
        "runtime_env": local_runtime_env(port),
    }


def local_runtime_env(dashboard_port: int | None = None) -> dict[str, Any]:
    """Ray Train's controller polls workers every 2 s and a worker's second report waits for the
    poll (a result queue of size 1): on a laptop that is most of a small epoch. Poll faster there,
    and start no preemption watcher; clusters keep Ray's defaults (their epochs are long, their
    nodes may be spot instances, and the env belongs to their job)."""
    interval = os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    env = {
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": interval,
        # a watcher of spot-node preemption, one more process per trial; a laptop has no spot nodes
        "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": os.environ.get(
            "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0"
        ),
    }
    if dashboard_port is not None:
        env["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{dashboard_port}"
    return {"env_vars": env}
