"""What a trial asks Ray for, and how many fit side by side, shares of a GPU included; which way a
trial trains and what Tune is told about it. Pure functions over resource dicts: nothing here
starts Ray or touches CUDA."""

from __future__ import annotations

from typing import Any

import pytest
import ray.train

from minesearch.config import SpaceSpec, SpecError, parse_spec
from minesearch.search import ClusterTooSmall, concurrency
from minesearch.search._ray import fits, worker_resources
from minesearch.search._trial import (
    TRIAL_PROCESS_MEMORY,
    TrialSetup,
    reuse_processes,
    trial_checkpoints,
    trial_resources,
)


def spec_with(concurrent: int = 8, **train: Any) -> SpaceSpec:
    return parse_spec({"name": "x", "train": train, "search": {"concurrent": concurrent}})


def quarter_gpu(**train: Any) -> SpaceSpec:
    return spec_with(workers=1, use_gpu=True, gpus_per_worker=0.25, **train)


def test_four_quarter_gpu_trials_fit_one_gpu() -> None:
    assert concurrency(quarter_gpu(), {"CPU": 8.0, "GPU": 1.0}, local=True) == 4
    assert concurrency(quarter_gpu(), {"CPU": 8.0, "GPU": 2.0}, local=True) == 8
    # a trial still holds its CPUs: 2 CPUs run 2 of them, whatever the GPU could take
    assert concurrency(quarter_gpu(), {"CPU": 2.0, "GPU": 1.0}, local=True) == 2
    assert concurrency(quarter_gpu(concurrent=3), {"CPU": 8.0, "GPU": 1.0}, local=True) == 3


def test_shares_are_counted_as_ray_counts_them() -> None:
    assert fits(0.9, 0.3) == 3  # 0.9 // 0.3 is 2.0 in floating point
    assert fits(1.0, 0.1) == 10
    assert fits(1.0, 0.3) == 3
    assert fits(0.0, 0.25) == 0


def test_whole_gpus_per_worker_multiply_by_workers() -> None:
    spec = spec_with(workers=2, use_gpu=True, gpus_per_worker=2)
    assert concurrency(spec, {"CPU": 16.0, "GPU": 8.0}, local=False) == 2


def test_a_gpu_trial_on_a_machine_without_gpus_names_the_gpu() -> None:
    with pytest.raises(ClusterTooSmall, match=r"one trial needs 0.25 GPU .*gpus_per_worker"):
        concurrency(quarter_gpu(), {"CPU": 8.0}, local=True)
    # an autoscaling cluster may have no GPU yet: the file's value stands
    assert concurrency(quarter_gpu(concurrent=5), {"CPU": 8.0}, local=False) == 5


def test_a_worker_asks_for_its_share_of_a_gpu() -> None:
    assert worker_resources(quarter_gpu(cpus_per_worker=2).train) == {"CPU": 2.0, "GPU": 0.25}
    assert worker_resources(spec_with(use_gpu=False, gpus_per_worker=0.5).train) == {"CPU": 1.0}
    # what Ray Train is handed for a multi-worker trial's workers is a valid request
    scaling = ray.train.ScalingConfig(
        num_workers=1, use_gpu=True, resources_per_worker=worker_resources(quarter_gpu().train)
    )
    assert scaling.total_resources == {"CPU": 1.0, "GPU": 0.25}


def test_a_single_worker_trial_asks_for_the_workers_resources_itself() -> None:
    one = TrialSetup(quarter_gpu(), "/runs", legacy=False)
    assert one.in_actor and trial_resources(one) == {"CPU": 1.0, "GPU": 0.25}
    two = TrialSetup(spec_with(workers=2, batch={"classes": 4}), "/runs", legacy=False)
    assert not two.in_actor and trial_resources(two) == {"memory": TRIAL_PROCESS_MEMORY}
    old = TrialSetup(spec_with(workers=1), "/runs", legacy=True)  # the bench's baseline
    assert not old.in_actor and trial_resources(old) == {"memory": TRIAL_PROCESS_MEMORY}


def test_legacy_comes_from_the_environment_of_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINESEARCH_TRIALS_VIA_RAY_TRAIN", "1")
    assert TrialSetup(spec_with(), "/runs").legacy
    monkeypatch.delenv("MINESEARCH_TRIALS_VIA_RAY_TRAIN")
    assert not TrialSetup(spec_with(), "/runs").legacy


def test_tune_keeps_and_retries_what_ray_train_would() -> None:
    one = TrialSetup(spec_with(workers=1, max_failures=3), "/runs", legacy=False)
    kept = trial_checkpoints(one)
    config = kept["checkpoint_config"]
    assert (config.num_to_keep, config.checkpoint_score_attribute) == (1, "checkpoint_rank")
    assert config.checkpoint_score_order == "max"
    assert kept["failure_config"].max_failures == 3  # Tune retries an in-actor trial
    two = TrialSetup(spec_with(workers=2, max_failures=3, batch={"classes": 4}), "/runs", False)
    assert trial_checkpoints(two)["failure_config"].max_failures == 0  # Ray Train retries it
    assert reuse_processes(one) and reuse_processes(two)
    assert not reuse_processes(TrialSetup(spec_with(), "/runs", legacy=True))


@pytest.mark.parametrize(
    ("train", "problem"),
    [
        ({"gpus_per_worker": 1.5}, "train.gpus_per_worker: .*a whole number of GPUs"),
        ({"gpus_per_worker": 0}, "train.gpus_per_worker: Input should be greater than 0"),
        (
            {"gpus_per_worker": 0.5, "workers": 2, "use_gpu": "auto"},
            "train.gpus_per_worker: 0.5 is a share of a GPU, which only a single-worker trial",
        ),
        ({"precision": "fp8"}, "train.precision: Input should be 'auto', 'fp32', 'bf16' or"),
    ],
)
def test_bad_gpu_shares_and_precisions_are_named(train: dict[str, Any], problem: str) -> None:
    with pytest.raises(SpecError, match=problem):
        parse_spec({"name": "x", "train": train})


def test_gpu_shares_and_precision_accepted() -> None:
    spec = parse_spec({"name": "x", "train": {"gpus_per_worker": 0.25, "precision": "bf16"}})
    assert (spec.train.gpus_per_worker, spec.train.precision) == (0.25, "bf16")
    assert spec_with().train.precision == "auto"
    assert spec_with(workers=4, gpus_per_worker=0.5).train.workers == 4  # CPU only: no GPU shared
    assert parse_spec({"name": "x", "train": {"gpus_per_worker": 2}}).train.gpus_per_worker == 2


@pytest.mark.parametrize("ray_train", [True, False])
def test_a_local_ray_has_a_dashboard_only_for_ray_train_trials(
    monkeypatch: pytest.MonkeyPatch, ray_train: bool
) -> None:
    """The dashboard serves the state API of Ray Train trials' placement-group cleaner; trials
    that train in their actors need neither it nor the Train settings of the job's env."""
    from minesearch.search import _ray

    started: list[dict[str, Any]] = []
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(_ray, "_STARTED", {})
    monkeypatch.setattr(_ray.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(_ray.ray, "init", lambda **kwargs: started.append(kwargs))
    assert _ray.start_ray(None, {"num_cpus": 2}, ray_train) is True
    (kwargs,) = started
    assert kwargs["include_dashboard"] is ray_train and kwargs["num_cpus"] == 2
    assert ("runtime_env" in kwargs) is ray_train
    if ray_train:
        env = kwargs["runtime_env"]["env_vars"]
        assert env["RAY_API_SERVER_ADDRESS"] == f"http://127.0.0.1:{kwargs['dashboard_port']}"


def test_a_ray_started_without_the_dashboard_is_restarted_for_ray_train(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Python API runs searches one after another on the process's Ray: after a search of
    in-actor trials, a Ray Train search must not find a Ray without its dashboard."""
    from minesearch.search import _ray

    running: list[dict[str, Any]] = []  # the Ray of this process, if any: its init kwargs
    events: list[str] = []

    def init(**kwargs: Any) -> None:
        running.append(kwargs)
        events.append("dashboard" if kwargs["include_dashboard"] else "no dashboard")

    def shutdown() -> None:
        running.clear()
        events.append("shutdown")

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(_ray, "_STARTED", {})
    monkeypatch.setattr(_ray.ray, "is_initialized", lambda: bool(running))
    monkeypatch.setattr(_ray.ray, "init", init)
    monkeypatch.setattr(_ray.ray, "shutdown", shutdown)
    _ray.start_ray(None, {}, ray_train=False)
    _ray.start_ray(None, {}, ray_train=False)  # the same Ray serves it
    _ray.start_ray(None, {}, ray_train=True)
    _ray.start_ray(None, {}, ray_train=False)  # a dashboard does no harm
    _ray.start_ray(None, {}, ray_train=True)
    assert events == ["no dashboard", "shutdown", "dashboard"]
