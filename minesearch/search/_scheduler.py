"""Early stopping over epochs: Ray's ASHA, plus three rules of the search's own.

- A trial whose best *trained* epoch is worse than its start (epoch 0) is stopped from the first
  rung on: it only lost ground. With a head that starts at the pretrained model, epoch 0 is that
  model, and a recipe that wrecks the encoder has nothing to offer however long it trains.
- Patience (`search.scheduler.patience` P, off by default): a trial that went P trained epochs
  without a gain over its best trained epoch is stopped. Selection keeps the best epoch, so those
  epochs were paid for and set aside. On package_topics (bench/text_sweep.py, 38 runs of 3 epochs)
  P = 1 would have saved 17 of 114 epochs and changed the selected epoch of 2 runs, each then a
  little lower on val (-0.003, -0.002) and higher on test (+0.002, +0.017). From scratch it
  costs (digits_folds: P = 1 moved 157 of 972 selections, -0.039 on val), so it is opt-in.
- The control, proposed first inside the search (`TrialConfig.control`), is never stopped: every
  trial reads against it, so it gets the full budget as the control run always did.

ASHA compares `trained.<metric>` (`minesearch.train.Selected`): not floored at epoch 0, so a trial
that declined ranks below one that held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from minesearch.config.vocab import EPOCH, START_PREFIX, TRAINED_PREFIX, Mode
from minesearch.recipe import CONFIG_KEY, TrialConfig

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController


class SearchASHA(ASHAScheduler):
    """ASHA on the trained objective, with the decline rule and the control's exemption."""

    def __init__(
        self, *, search_metric: str, mode: Mode, patience: int | None = None, **asha: Any
    ) -> None:
        super().__init__(metric=f"{TRAINED_PREFIX}{search_metric}", mode=mode, **asha)
        self.trained_key = f"{TRAINED_PREFIX}{search_metric}"
        self.start_key = f"{START_PREFIX}{search_metric}"
        self.first_rung = int(asha.get("grace_period", 1))
        self.sign = 1.0 if mode == "max" else -1.0
        self.patience = patience
        self.best: dict[str, tuple[float, int]] = {}  # trial id -> (best trained score, its epoch)
        self.declined = 0  # trials stopped by the decline rule
        self.impatient = 0  # trials stopped by patience

    def on_trial_result(
        self, tune_controller: TuneController, trial: Trial, result: dict[str, Any]
    ) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if is_control(trial):
            return TrialScheduler.CONTINUE
        if action == TrialScheduler.CONTINUE and self.only_declined(result):
            self.declined += 1
            return TrialScheduler.STOP
        if action == TrialScheduler.CONTINUE and self.out_of_patience(trial.trial_id, result):
            self.impatient += 1
            return TrialScheduler.STOP
        return action

    def out_of_patience(self, trial_id: str, result: dict[str, Any]) -> bool:
        """`patience` trained epochs since the best trained score last rose (a tie is no gain)."""
        trained, epoch = result.get(self.trained_key), int(result.get(EPOCH, 0))
        if self.patience is None or trained is None or epoch < 1:
            return False
        best = self.best.get(trial_id)
        if best is None or self.sign * (float(trained) - best[0]) > 0:
            self.best[trial_id] = (float(trained), epoch)
            return False
        return epoch - best[1] >= self.patience

    def only_declined(self, result: dict[str, Any]) -> bool:
        """At or past the first rung, the best trained epoch is worse than epoch 0."""
        trained, start = result.get(self.trained_key), result.get(self.start_key)
        if trained is None or start is None or int(result.get(EPOCH, 0)) < self.first_rung:
            return False
        return self.sign * (float(trained) - float(start)) < 0

    def debug_string(self) -> str:
        return (
            f"{super().debug_string()}\nstopped for declining below epoch 0: {self.declined}"
            f"\nstopped out of patience: {self.impatient}"
        )


def is_control(trial: Trial) -> bool:
    config = trial.config or {}
    return CONFIG_KEY in config and TrialConfig.from_config(config).control
