"""What the worker loop needs from whatever runs it: a `Session`.

The loop (`_loop.run_worker`) runs in two places: in each data-parallel worker of a Ray Train run
(`TrainSession`, here) and, for a single-worker trial, in the Tune trial actor itself, with no Ray
Train run (`minesearch.search`, over ray.tune, which this room may not import). Either way it
needs the same five things: its rank and world size, its device, its model made ready for that
world (DDP or not), the checkpoint to continue from, and a way to report an epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

import ray.train
import ray.train.torch
import torch
from torch import nn


class Session(Protocol):
    """The runner of one worker loop (one process of a trial)."""

    rank: int
    world: int
    device: torch.device

    def prepare(self, model: nn.Module) -> nn.Module:
        """`model` on this worker's device, wrapped for data parallelism when world > 1."""
        ...

    def latest_checkpoint(self) -> AbstractContextManager[str | None]:
        """A context whose value is the directory of the checkpoint to continue from (None: start
        afresh); the directory may be a temporary copy that lives only inside the context."""
        ...

    def report(self, metrics: dict[str, float], checkpoint_dir: str | None) -> None:
        """One epoch's metrics, with a checkpoint directory on rank 0 (the runner copies it
        before returning: the caller deletes it). All ranks report each epoch (a barrier)."""
        ...


class TrainSession:
    """A Ray Train worker's session: rank, device and DDP from Ray Train; reports through
    `ray.train.report`, where rank 0's metrics reach Tune."""

    def __init__(self) -> None:
        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world = context.get_world_size()
        self.device = ray.train.torch.get_device()

    def prepare(self, model: nn.Module) -> nn.Module:
        return ray.train.torch.prepare_model(model)

    def latest_checkpoint(self) -> AbstractContextManager[str | None]:
        return opened(ray.train.get_checkpoint())

    def report(self, metrics: dict[str, float], checkpoint_dir: str | None) -> None:
        checkpoint = None
        if checkpoint_dir is not None:
            checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir)
        ray.train.report(metrics, checkpoint=checkpoint)


@contextmanager
def opened(checkpoint: Any) -> Iterator[str | None]:
    """A Ray (Train or Tune) checkpoint's local directory, inside the context; None for none."""
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as directory:
        yield directory
