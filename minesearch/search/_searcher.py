"""Ray's OptunaSearch, telling Optuna the truth about trials the scheduler stopped early.

Ray tells Optuna a trial stopped by ASHA as COMPLETE with its partial score, so TPE would learn
from an epoch-2 score as if it were a finished recipe's. Here such a trial is PRUNED: Optuna then
reads its intermediate values (reported every epoch), as it does for its own pruners.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search.optuna import OptunaSearch


class RecipeSearch(OptunaSearch):
    """OptunaSearch that reports early-stopped trials as PRUNED (`epochs`: the full budget)."""

    def __init__(self, *args: Any, epochs: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epochs = epochs

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if not error and result is not None and stopped_early(result, self.epochs):
            result = {k: v for k, v in result.items() if k != self.metric}  # no value: PRUNED
        super().on_trial_complete(trial_id, result, error)


def stopped_early(result: dict[str, Any], epochs: int) -> bool:
    """A trial that ended without error before its last epoch was stopped by the scheduler."""
    return int(result.get("epoch", epochs)) < epochs
