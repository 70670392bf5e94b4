"""Several trials on one GPU, on a Ray that only says it has one (`ray.init(num_gpus=1)`): what a
single-worker trial of `train.gpus_per_worker: 0.25` asks for lets Ray run four of them at once
on it, and `concurrency()` says four. The trials here only wait for each other: nothing touches
CUDA."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from conftest import ProcessProbe
from ray import tune

from minesearch.config import parse_spec
from minesearch.search import concurrency
from minesearch.search._trial import TrialSetup, trial_resources

pytestmark = pytest.mark.slow

TRIALS = 4


@pytest.fixture(scope="module")
def fake_gpu_ray(
    tmp_path_factory: pytest.TempPathFactory, process_probe: ProcessProbe
) -> Iterator[None]:
    temp_dir = str(tmp_path_factory.mktemp("ray"))
    ray.init(num_cpus=TRIALS, num_gpus=1, _temp_dir=temp_dir, logging_level=logging.WARNING)
    yield
    ray.shutdown()
    assert not process_probe(temp_dir, 20), "Ray left processes behind"


def test_four_quarter_gpu_trials_run_together_on_one_gpu(
    fake_gpu_ray: None, tmp_path: Path
) -> None:
    spec = parse_spec(
        {
            "name": "shares",
            "train": {"workers": 1, "use_gpu": True, "gpus_per_worker": 0.25},
            "search": {"concurrent": 8},
        }
    )
    at_once = concurrency(spec, ray.cluster_resources(), local=True)
    assert at_once == TRIALS
    resources = trial_resources(TrialSetup(spec, str(tmp_path), legacy=False))
    assert resources == {"CPU": 1.0, "GPU": 0.25}
    room = tmp_path / "room"
    room.mkdir()

    def meet(config: dict[str, Any]) -> None:  # defined here: Ray pickles it by value
        """A trial that arrives, then waits (up to a minute) for all the others to be there."""
        here = Path(config["room"])
        (here / tune.get_context().get_trial_id()).touch()
        deadline = time.monotonic() + 60
        while len(list(here.iterdir())) < TRIALS and time.monotonic() < deadline:
            time.sleep(0.1)
        tune.report({"met": len(list(here.iterdir())), "gpus": len(ray.get_gpu_ids())})

    tuner = tune.Tuner(
        tune.with_resources(meet, resources),
        param_space={"room": str(room), "i": tune.grid_search(list(range(TRIALS)))},
        tune_config=tune.TuneConfig(max_concurrent_trials=at_once),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    assert [r.metrics["met"] for r in results] == [TRIALS] * TRIALS  # all four at once
    assert all(r.metrics["gpus"] == 1 for r in results)  # each was given the (fake) GPU
