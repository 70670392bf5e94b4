"""A `Session` without Ray for the loop's tests (tests/train is on sys.path under pytest)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from minesearch.train import CHECKPOINT_FILE


class RecordingSession:
    """Rank 0 of 1 on the CPU: keeps each report and a copy of each checkpoint."""

    rank = 0
    world = 1
    device = torch.device("cpu")

    def __init__(self, root: Path, resume_from: Path | None = None) -> None:
        self.root = root
        self.resume_from = resume_from
        self.reports: list[dict[str, float]] = []
        self.checkpoints: list[Path] = []

    def prepare(self, model: nn.Module) -> nn.Module:
        return model

    @contextmanager
    def latest_checkpoint(self) -> Iterator[str | None]:
        yield None if self.resume_from is None else str(self.resume_from)

    def report(self, metrics: dict[str, float], checkpoint_dir: str | None) -> None:
        assert checkpoint_dir is not None and (Path(checkpoint_dir) / CHECKPOINT_FILE).is_file()
        kept = self.root / f"epoch{len(self.reports)}"
        shutil.copytree(checkpoint_dir, kept)  # the loop deletes its directory after the report
        self.reports.append(metrics)
        self.checkpoints.append(kept)
