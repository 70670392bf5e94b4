"""What one epoch's steps add up to, in the worker that ran them (`_loop.train_epoch`).

Losses and tuples every step; mining difficulty, the share of tuples with a non-zero loss and
memory on a sample of steps (`_loop.TELEMETRY_EVERY`), with what sampling them cost, so the
telemetry's own share of the epoch is reported beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from minesearch.train._precision import LossScaler
from minesearch.train._step import StepOutcome
from minesearch.train._telemetry import (
    Difficulty,
    nonzero_loss_share,
    rss_anon_mb,
    triplet_difficulty,
)


@dataclass
class EpochTally:
    """What an epoch's steps add up to: losses and tuples every step, mining difficulty and
    memory on a sample of steps (and what sampling them cost)."""

    losses: list[float] = field(default_factory=list)
    tuples: list[int] = field(default_factory=list)
    empty: int = 0  # steps whose miner found no tuple
    samples: int = 0  # this worker's
    skipped: int = 0  # fp16 steps skipped on overflow
    difficulty: Difficulty = field(default_factory=Difficulty)
    telemetry_s: float = 0.0
    peak_anon: float | None = field(default_factory=rss_anon_mb)

    def add(self, outcome: StepOutcome, samples: int, stepped: bool) -> None:
        self.losses.append(outcome.loss)
        self.samples += samples
        self.skipped += not stepped
        if outcome.tuples is not None:
            self.tuples.append(outcome.tuples)
            self.empty += outcome.tuples == 0

    def sample(
        self, outcome: StepOutcome, y: torch.Tensor, margin: float, loss_fn: nn.Module
    ) -> None:
        """Mining difficulty under the recipe's `margin`, the loss's non-zero share, memory."""
        tick = time.perf_counter()
        self.difficulty.add(triplet_difficulty(outcome.embeddings, y, margin))
        if (share := nonzero_loss_share(loss_fn)) is not None:
            self.difficulty.nonzero.append(share)
        if self.peak_anon is not None:  # sampled: a worker's memory peaks inside steps
            self.peak_anon = max(self.peak_anon, rss_anon_mb() or 0.0)
        self.telemetry_s += time.perf_counter() - tick

    def stats(self, seconds: float, world: int, scaler: LossScaler) -> dict[str, float]:
        """The epoch's stats over `seconds` of it, samples counted over the `world` workers."""
        stats = {
            "train_loss": float(np.mean(self.losses)),
            "epoch_time_s": seconds,
            "samples_per_s": self.samples * world / max(seconds, 1e-9),
            # the telemetry's cost, as a share of the epoch
            "telemetry_share": self.telemetry_s / max(seconds, 1e-9),
            **self.difficulty.shares(),
        }
        if self.peak_anon is not None:
            stats["memory.rss_anon_peak_mb"] = self.peak_anon
        if scaler.enabled:
            stats |= {"skipped_steps": float(self.skipped), "loss_scale": scaler.scale}
        if self.tuples:
            stats |= {
                "tuples_per_batch": float(np.mean(self.tuples)),
                "empty_batches": float(self.empty),
            }
        return stats
