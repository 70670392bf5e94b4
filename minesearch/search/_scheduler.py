"""Early stopping over epochs: Ray's ASHA, plus two rules of the search's own.

- A trial whose best *trained* epoch is worse than its start (epoch 0) is stopped from the first
  rung on: it only lost ground. With a head that starts at the pretrained model, epoch 0 is that
  model, and a recipe that wrecks the encoder has nothing to offer however long it trains.
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

    def __init__(self, *, search_metric: str, mode: Mode, **asha: Any) -> None:
        super().__init__(metric=f"{TRAINED_PREFIX}{search_metric}", mode=mode, **asha)
        self.trained_key = f"{TRAINED_PREFIX}{search_metric}"
        self.start_key = f"{START_PREFIX}{search_metric}"
        self.first_rung = int(asha.get("grace_period", 1))
        self.sign = 1.0 if mode == "max" else -1.0
        self.declined = 0  # trials stopped by the decline rule

    def on_trial_result(
        self, tune_controller: TuneController, trial: Trial, result: dict[str, Any]
    ) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if is_control(trial):
            return TrialScheduler.CONTINUE
        if action == TrialScheduler.CONTINUE and self.only_declined(result):
            self.declined += 1
            return TrialScheduler.STOP
        return action

    def only_declined(self, result: dict[str, Any]) -> bool:
        """At or past the first rung, the best trained epoch is worse than epoch 0."""
        trained, start = result.get(self.trained_key), result.get(self.start_key)
        if trained is None or start is None or int(result.get(EPOCH, 0)) < self.first_rung:
            return False
        return self.sign * (float(trained) - float(start)) < 0

    def debug_string(self) -> str:
        return f"{super().debug_string()}\nstopped for declining below epoch 0: {self.declined}"


def is_control(trial: Trial) -> bool:
    config = trial.config or {}
    return CONFIG_KEY in config and TrialConfig.from_config(config).control
