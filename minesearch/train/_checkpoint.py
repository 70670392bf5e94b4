"""What a trial's checkpoint holds, written and read here only.

Rank 0 writes one at every report; Ray Train restores the latest into a restarted worker group;
the driver's scoring tasks and `minesearch export` load a trial's weights from one. The content is
one frozen dataclass with a file format of its own (`torch.save` of plain tensors, loaded with
`weights_only=True`), so a field renamed in one place cannot silently mismatch in another.

A trial trained on K class folds (`search.folds`) keeps fold 0 in the top-level fields (its model
is the trial's model: what scoring and export load) and folds 1..K-1 in `folds`, so a restarted
trial continues every fold. Fields added later load with defaults: older checkpoints still load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from minesearch.config import is_uri

CHECKPOINT_FILE = "checkpoint.pt"  # in every checkpoint directory a worker reports


@dataclass(frozen=True)
class TrainingState:
    """A trial after `epoch` epochs: enough to continue training it or to use its model."""

    epoch: int
    model: dict[str, Any]  # the embedding network's state dict (unwrapped from DDP)
    loss: dict[str, Any]  # the loss's own parameters (proxies), empty for most losses
    optimizer: dict[str, Any]
    selection: dict[str, Any] = field(default_factory=dict)  # `Selected.to_dict()` at `epoch`
    scaler: dict[str, Any] = field(default_factory=dict)  # fp16's loss scale; empty otherwise
    # folds 1..K-1 of a K-fold trial, each {"model", "loss", "optimizer", "scaler"}; () for one
    folds: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model,
            "loss": self.loss,
            "optimizer": self.optimizer,
            "selection": self.selection,
            "scaler": self.scaler,
            "folds": [dict(f) for f in self.folds],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingState:
        return cls(
            epoch=int(data["epoch"]),
            model=dict(data["model"]),
            loss=dict(data["loss"]),
            optimizer=dict(data["optimizer"]),
            selection=dict(data.get("selection", {})),
            scaler=dict(data.get("scaler", {})),
            folds=tuple(dict(f) for f in data.get("folds", [])),
        )

    @property
    def fold_count(self) -> int:
        return 1 + len(self.folds)

    def fold(self, k: int) -> dict[str, Any]:
        """Fold `k`'s training state: {"model", "loss", "optimizer", "scaler"}."""
        if k == 0:
            return {
                "model": self.model,
                "loss": self.loss,
                "optimizer": self.optimizer,
                "scaler": self.scaler,
            }
        return self.folds[k - 1]

    def save(self, directory: str | Path) -> None:
        torch.save(self.to_dict(), Path(directory) / CHECKPOINT_FILE)

    @classmethod
    def load(cls, directory: str | Path) -> TrainingState:
        """From a local checkpoint directory; tensors land on the CPU."""
        path = Path(directory) / CHECKPOINT_FILE
        return cls.from_dict(torch.load(path, weights_only=True, map_location="cpu"))


def has_checkpoint_file(directory: str | Path) -> bool:
    return (Path(directory) / CHECKPOINT_FILE).is_file()


def load_from_storage(checkpoint_path: str, storage_path: str) -> TrainingState:
    """A checkpoint Ray Train recorded under the search's storage (local, NFS or s3://...)."""
    import pyarrow.fs
    import ray.train

    filesystem = None
    if is_uri(storage_path):  # Train records paths inside the storage's filesystem
        filesystem, _ = pyarrow.fs.FileSystem.from_uri(storage_path)
    checkpoint = ray.train.Checkpoint(checkpoint_path, filesystem=filesystem)
    with checkpoint.as_directory() as directory:
        return TrainingState.load(directory)
