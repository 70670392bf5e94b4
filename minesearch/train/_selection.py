"""Which epoch a trial is scored at: its best validation epoch so far, or its last.

The metric-learning literature selects on the best validation epoch; a trial that peaks at epoch
2 and then overfits is worth its epoch 2. With a head that starts at the pretrained model, epoch 0
is a candidate too, so a search's answer can never be worse than the pretrained model on val.

Every report carries the selection (`selected_epoch`, `selected.<metric>` for each retrieval
metric), so Tune's scheduler and searcher, MLflow and the driver all read the same score, and
`checkpoint_rank`: Ray Train keeps the checkpoint with the highest rank (and always the latest,
for restarts), which is the selected epoch's: a new selection ranks its epoch number, any other
epoch half an epoch below the selection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from minesearch.config.vocab import (
    METRICS,
    SELECTED_EPOCH,
    SELECTED_PREFIX,
    Mode,
    Selection,
)

CHECKPOINT_RANK = "checkpoint_rank"  # Ray Train's checkpoint_score_attribute (order: max)


@dataclass
class Selected:
    """The selected epoch of one trial and its scores, updated at every report."""

    metric: str
    mode: Mode
    rule: Selection
    epoch: int = -1  # none yet
    scores: dict[str, float] = field(default_factory=dict)

    def update(self, epoch: int, scores: Mapping[str, float]) -> bool:
        """Consider `epoch` with its validation `scores`; True when it becomes the selection.

        best_epoch: only a strict improvement moves the selection, so a tie keeps the earlier
        (cheaper, less trained) epoch.
        """
        value = scores[self.metric]
        best = self.scores.get(self.metric)
        better = best is None or (value > best if self.mode == "max" else value < best)
        if self.rule == "last" or better:
            self.epoch = epoch
            self.scores = {k: float(v) for k, v in scores.items() if k in METRICS}
            return True
        return False

    def report(self, epoch: int) -> dict[str, float]:
        """What a report at `epoch` adds: the selection and the checkpoint's rank."""
        rank = float(epoch) if epoch == self.epoch else self.epoch - 0.5
        return {
            SELECTED_EPOCH: float(self.epoch),
            CHECKPOINT_RANK: rank,
            **{f"{SELECTED_PREFIX}{k}": v for k, v in self.scores.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "scores": dict(self.scores)}

    def restore(self, saved: Mapping[str, Any]) -> None:
        """Continue the selection a checkpoint recorded (a restarted worker)."""
        self.epoch = int(saved.get("epoch", -1))
        self.scores = {str(k): float(v) for k, v in dict(saved.get("scores", {})).items()}
