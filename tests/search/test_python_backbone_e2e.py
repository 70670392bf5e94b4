"""A `python:` backbone through a real (tiny) search: the user's factory, written outside the
package, is loaded by the Ray Train worker, trained, tracked in MLflow and exported; and a module
in the directory Ray was started from is importable in Ray's workers."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import torch
import yaml
from click.testing import CliRunner
from conftest import ProcessProbe
from mlflow.tracking import MlflowClient

from minesearch.cli import main
from minesearch.models import build_backbone
from minesearch.search import local_ray_options
from minesearch.tracking import spec_of
from minesearch.tracking.names import ROLE_TAG, TRIAL_TAG

pytestmark = pytest.mark.slow

MAP = "mean_average_precision_at_r"
EPOCHS = 2
# Each call appends its process id to calls.txt beside the module: which processes built it.
FACTORY = """
import os
from pathlib import Path

import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, channels, width):
        super().__init__()
        self.conv = nn.Conv2d(channels, width, 3, padding=1)
        self.out = nn.Linear(2 * width, width)

    def forward(self, x):  # [B, C, H, W] -> [B, width]
        x = torch.relu(self.conv(x))
        return self.out(torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1))


def build(inputs):
    with open(Path(__file__).with_name("calls.txt"), "a") as calls:
        calls.write(f"{os.getpid()}\\n")
    return TinyNet(inputs.shape[0], inputs.hidden_dim), inputs.hidden_dim


def flat(inputs):  # returns only torch classes: a Ray task can hand it back to the driver
    with open(Path(__file__).with_name("calls.txt"), "a") as calls:
        calls.write(f"{os.getpid()}\\n")
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8)), 8
"""


@pytest.fixture(scope="module")
def started_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory Ray is started from, holding the module `started_here_nets`."""
    folder = tmp_path_factory.mktemp("started_in")
    (folder / "started_here_nets.py").write_text(FACTORY)
    return folder


@pytest.fixture(scope="module")
def ray_instance(
    tmp_path_factory: pytest.TempPathFactory, started_in: Path, process_probe: ProcessProbe
) -> Iterator[None]:
    """One Ray for the module (2 CPUs), started from `started_in` as `minesearch run` would be
    when a user runs it from their module's directory."""
    temp_dir = str(tmp_path_factory.mktemp("ray"))
    before = os.getcwd()
    os.chdir(started_in)
    try:
        ray.init(
            num_cpus=2, _temp_dir=temp_dir, logging_level=logging.WARNING, **local_ray_options()
        )
    finally:
        os.chdir(before)
    yield
    ray.shutdown()
    assert not process_probe(temp_dir, 20), "Ray left processes behind"


def calls(folder: Path) -> list[int]:
    path = folder / "calls.txt"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_a_factory_file_trains_in_the_workers_and_exports(
    ray_instance: None, tmp_path: Path
) -> None:
    code = tmp_path / "spaces"
    code.mkdir()
    (code / "my_net.py").write_text(FACTORY)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    space = {
        "name": "python-backbone",
        "data": {"source": "digits", "split": {"val": 0.3, "test": 0.0, "seed": 0}},
        "model": {"backbone": "python:my_net.py:build", "embedding_dim": 16, "hidden_dim": 16},
        "train": {"epochs": EPOCHS, "batch": {"classes": 4, "per_class": 6}, "workers": 1},
        "search": {
            "trials": 1,
            "sampler": {"name": "random", "seed": 0},
            "scheduler": {"name": "fifo"},
            "control": False,
            "params": {"loss": "ContrastiveLoss", "lr": 1.0e-3},
        },
        "tracking": {"uri": uri, "experiment": "python-backbone"},
    }
    path = code / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    storage = str(tmp_path / "ray")
    result = CliRunner().invoke(main, ["run", str(path), "--storage-path", storage])
    assert result.exit_code == 0, result.output

    # built by the driver (validate, the reference check) and by a Ray Train worker
    assert {os.getpid()} < set(calls(code)), "no Ray process loaded the factory file"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("python-backbone")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    (child,) = [r for r in runs if r.data.tags.get(ROLE_TAG) == "trial"]
    assert child.info.status == "FINISHED"
    parent_id = child.data.tags["mlflow.parentRunId"]  # its resolved space names the file
    resolved = spec_of(uri, parent_id)["model"]["backbone"]
    assert resolved == f"python:{code.resolve() / 'my_net.py'}:build"
    steps = [m.step for m in client.get_metric_history(child.info.run_id, MAP)]
    assert steps == list(range(EPOCHS + 1))  # epoch 0 (before training), then each epoch

    out = tmp_path / "export"
    exported = CliRunner().invoke(
        main,
        ["export", child.data.tags[TRIAL_TAG], "--out", str(out), "--tracking-uri", uri],
    )
    assert exported.exit_code == 0, exported.output
    model = torch.jit.load(str(out / "model.pt"))
    embeddings = model(torch.rand(3, 1, 8, 8))
    assert embeddings.shape == (3, 16)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(3), atol=1e-5)


def test_a_module_in_the_directory_ray_started_from_reaches_the_workers(
    ray_instance: None, started_in: Path
) -> None:
    """python:<module>:<function> with the module in the driver's directory: Ray 2.60 puts that
    directory on its workers' path, as minesearch's docs say."""
    build = ray.remote(num_cpus=1)(build_backbone)
    backbone = ray.get(
        build.remote(
            "python:started_here_nets:flat", kind="tensor", input_shape=(1, 8, 8), hidden_dim=8
        )
    )
    assert backbone.out_dim == 8
    assert calls(started_in) and os.getpid() not in calls(started_in)
