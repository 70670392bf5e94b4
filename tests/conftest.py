"""Shared fixtures: every test works in its own temp dir with no inherited tracking settings."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(autouse=True)
def isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MLflow's default store, Ray's storage and the Arrow cache: all in tmp_path."""
    monkeypatch.chdir(tmp_path)
    for var in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
        "RAY_ADDRESS",
    ):
        monkeypatch.delenv(var, raising=False)
    # Parquet sources' Arrow cache (Ray workers started before this get data.cache_dir instead)
    monkeypatch.setenv("MINESEARCH_CACHE_DIR", str(tmp_path / "arrow-cache"))
    return tmp_path


@pytest.fixture(autouse=True)
def no_kept_untrained_scores() -> Iterator[None]:
    """In-process trials of one test do not reuse another test's epoch-0 scores
    (`minesearch.train._untrained`): each test's evaluations are its own."""
    from minesearch.train._untrained import forget_untrained

    forget_untrained()
    yield
    forget_untrained()


ProcessProbe = Callable[[str, float], dict[int, str]]
BENCH = Path(__file__).resolve().parents[1] / "bench"


# A `python:` backbone for digits whose training steps sleep: tests that must act while a trial
# runs (a signal to the driver, a SIGKILL to the trial's process) get a window of seconds. A
# digits trial trains in ~1 s in its Tune actor, and on a loaded machine it could end before the
# test acted (CI saw it). Sleeping uses none of the 2 cores the trials share; evaluation and the
# export's trace run at full speed.
SLOW_NET = """
import time

from torch import nn


class SlowMLP(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU())

    def forward(self, x):
        if self.training:
            time.sleep(SECONDS)
        return self.net(x)


def build(inputs):
    return SlowMLP(inputs.hidden_dim), inputs.hidden_dim
"""


def slow_backbone(folder: Path, seconds_per_step: float = 0.03) -> str:
    """Writes the slow network beside a space file in `folder`; returns its `model.backbone`
    (~50 steps an epoch on digits with batches of 24: 0.03 s a step is ~1.5 s an epoch)."""
    (folder / "slow_net.py").write_text(SLOW_NET.replace("SECONDS", repr(seconds_per_step)))
    return "python:slow_net.py:build"


def load_script(path: Path, name: str | None = None, *, with_siblings: bool = False) -> ModuleType:
    """A script that is not in a package (bench/, scripts/, a stub) as a module, once per session.

    It is registered in `sys.modules` before it runs (dataclasses look their module up while the
    class is built). `with_siblings` puts its directory on `sys.path` as running it would: the
    benches import their shared helpers (`bench/_arms.py`) that way. Not for a stub that shadows
    a real package."""
    name = name or path.stem
    if name in sys.modules:
        return sys.modules[name]
    if with_siblings and str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_bench(name: str) -> ModuleType:
    """bench/<name>.py, which may import its siblings."""
    return load_script(BENCH / f"{name}.py", with_siblings=True)


def pids_mentioning(text: str, wait_s: float = 0.0) -> dict[int, str]:
    """Live processes (not this one) whose command line contains `text` (a Ray session or server
    temp dir), pid -> command line; waits up to `wait_s` for them to go."""
    deadline = time.monotonic() + wait_s
    while True:
        found = {}
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline and int(proc.name) != os.getpid():
                found[int(proc.name)] = cmdline
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@pytest.fixture(scope="session")
def process_probe() -> ProcessProbe:
    """`pids_mentioning`, for the tests that must leave no process behind."""
    return pids_mentioning


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One Ray for the module that asks for it, with explicit resources (2 CPUs, as CI has) and
    its temp dir under pytest's; the module fails if Ray leaves a process behind."""
    import logging

    import ray

    from minesearch.search import local_ray_options

    temp_dir = str(tmp_path_factory.mktemp("ray"))
    # the dashboard: without it an ASHA-stopped trial leaks its CPUs (local_ray_options)
    ray.init(num_cpus=2, _temp_dir=temp_dir, logging_level=logging.WARNING, **local_ray_options())
    yield
    ray.shutdown()
    left = pids_mentioning(temp_dir, 20)
    assert not left, f"Ray left processes behind: {left}"


SearchSpecDict = Callable[..., dict[str, object]]


@pytest.fixture
def parent_spec() -> SearchSpecDict:
    """The resolved-spec dict `ParentRun.start` takes, with what a test varies given by name."""

    def make(
        metric: str = "mean_average_precision_at_r",
        trials: int = 2,
        sampler: str = "tpe",
        scheduler: str = "asha",
        epochs: int = 2,
    ) -> dict[str, object]:
        return {
            "search": {
                "metric": metric,
                "mode": "max",
                "trials": trials,
                "concurrent": 1,
                "sampler": {"name": sampler},
                "scheduler": {"name": scheduler},
            },
            "train": {"epochs": epochs, "workers": 1},
        }

    return make
