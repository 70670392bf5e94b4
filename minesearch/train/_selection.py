"""Which epoch a trial is scored at: its best validation epoch so far, or its last.

The metric-learning literature selects on the best validation epoch; a trial that peaks at epoch
2 and then overfits is worth its epoch 2. With a head that starts at the pretrained model, epoch 0
is a candidate too, so a search's answer can never be worse than the pretrained model on val.

Every report carries the selection (`selected_epoch`, `selected.<metric>` for each retrieval
metric), so MLflow and the driver read the same score, and `checkpoint_rank`: Ray Train keeps the
checkpoint with the highest rank (and always the latest, for restarts), which is the selected
epoch's: a new selection ranks its epoch number, any other epoch half an epoch below the selection.

What Tune's scheduler and sampler compare is not the selection but the best *trained* epoch
(`trained.<metric>`, epochs >= 1) beside the start (`start.<metric>`, epoch 0). Floored at epoch 0,
the selection cannot tell a recipe that only lost ground from one that held it: every encoder that
a too-large learning rate wrecked read as the pretrained model, ASHA kept them all and Optuna
learned nothing from how far they fell (issue 19, on 3,180 package descriptions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from minesearch.config.vocab import (
    METRICS,
    SELECTED_EPOCH,
    SELECTED_PREFIX,
    START_PREFIX,
    TRAINED_PREFIX,
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
    start: float | None = None  # the metric at epoch 0
    trained: float | None = None  # the best metric over epochs >= 1 (None: none trained yet)

    def update(self, epoch: int, scores: Mapping[str, float]) -> bool:
        """Consider `epoch` with its validation `scores`; True when it becomes the selection.

        best_epoch: only a strict improvement moves the selection, so a tie keeps the earlier
        (cheaper, less trained) epoch.
        """
        value = float(scores[self.metric])
        if epoch == 0:
            self.start = value
        elif self.rule == "last" or self.trained is None or self.better(value, self.trained):
            self.trained = value  # under `last` the objective is the last epoch, as the score
        best = self.scores.get(self.metric)
        if self.rule == "last" or best is None or self.better(value, best):
            self.epoch = epoch
            self.scores = {k: float(v) for k, v in scores.items() if k in METRICS}
            return True
        return False

    def better(self, value: float, than: float) -> bool:
        return value > than if self.mode == "max" else value < than

    @property
    def objective(self) -> float | None:
        """What the scheduler and the sampler compare: the best trained epoch's metric, or the
        start's before any epoch trained (Tune needs the metric in every report)."""
        return self.trained if self.trained is not None else self.start

    def report(self, epoch: int) -> dict[str, float]:
        """What a report at `epoch` adds: the selection, the checkpoint's rank, the objective and
        the start it is judged against."""
        rank = float(epoch) if epoch == self.epoch else self.epoch - 0.5
        extra = {} if self.start is None else {f"{START_PREFIX}{self.metric}": self.start}
        if (objective := self.objective) is not None:
            extra[f"{TRAINED_PREFIX}{self.metric}"] = objective
        return {
            SELECTED_EPOCH: float(self.epoch),
            CHECKPOINT_RANK: rank,
            **{f"{SELECTED_PREFIX}{k}": v for k, v in self.scores.items()},
            **extra,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "scores": dict(self.scores),
            "start": self.start,
            "trained": self.trained,
        }

    def restore(self, saved: Mapping[str, Any]) -> None:
        """Continue the selection a checkpoint recorded (a restarted worker)."""
        self.epoch = int(saved.get("epoch", -1))
        self.scores = {str(k): float(v) for k, v in dict(saved.get("scores", {})).items()}
        start, trained = saved.get("start"), saved.get("trained")
        self.start = None if start is None else float(start)
        self.trained = None if trained is None else float(trained)
