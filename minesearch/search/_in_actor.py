"""A single-worker trial trains in its Tune trial actor: no Ray Train run, no worker process.

Ray Train's docs on hyperparameter tuning put single-process training in the Tune trial actor
itself. The worker loop is the one Ray Train's workers run (`minesearch.train`); `TuneSession`
gives it rank 0 of 1, the trial's device, and `ray.tune.report`, which is synchronous: when Tune
stops the trial (ASHA), the loop's thread ends at that report, so Tune may keep the process for
the next trial (`reuse_actors`) with its imports, its data and, on a GPU, its CUDA context warm.
What a trial must not inherit from the one before is reset by the loop (`fresh_process`).

The process keeps the space's data between its trials (`process_data`): keyed by the data spec
(`data:` of the space file, as JSON) and the number of class folds, one entry (a search has one
data spec and one fold count, except that its test estimate trains the one split: another
evicts it). Sources hold labels and row positions in memory and read inputs batch by batch, so it
is small.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import ray.tune

from minesearch.config import SpaceSpec
from minesearch.data import Parts, load_folds
from minesearch.train import opened, run_in_process

if TYPE_CHECKING:
    import torch
    from torch import nn

# This process's copy of the space's data: what actor reuse is for. Per process by design (each
# trial actor loads its own); never shared, and never seen by the driver.
_DATA: dict[tuple[str, int], list[Parts]] = {}


def process_data(spec: SpaceSpec, folds: int) -> list[Parts]:
    """The space's data split into `folds` class folds, opened once per trial process, data spec
    and fold count."""
    key = (spec.data.model_dump_json(), folds)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = load_folds(spec, folds)
    return _DATA[key]


class TuneSession:
    """The worker loop's session in a Tune trial actor (`minesearch.train.Session`)."""

    rank = 0
    world = 1

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def prepare(self, model: nn.Module) -> nn.Module:
        return model.to(self.device)

    def latest_checkpoint(self) -> AbstractContextManager[str | None]:
        """Tune's latest checkpoint of this trial: a retried trial (`train.max_failures`) or a
        resumed search continues from it."""
        return opened(ray.tune.get_checkpoint())

    def report(self, metrics: dict[str, float], checkpoint_dir: str | None) -> None:
        checkpoint = None
        if checkpoint_dir is not None:
            checkpoint = ray.tune.Checkpoint.from_directory(checkpoint_dir)
        ray.tune.report(metrics, checkpoint=checkpoint)


def train_in_actor(config: dict[str, Any], use_gpu: bool) -> None:
    """The trial's recipe trained here, with `worker_config`'s dict. On a GPU, Ray has made the
    trial's GPU (or its share of one) the only visible device."""
    import torch

    device = torch.device("cuda", 0) if use_gpu else torch.device("cpu")
    run_in_process(config, TuneSession(device), process_data)
