"""The search's ASHA: a trial that only declined below its epoch 0 is stopped at the first rung,
the control never is, and ASHA ranks trials on the trained objective."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import TrialScheduler

from minesearch.recipe import Recipe, TrialConfig
from minesearch.search._scheduler import SearchASHA

MAP = "mean_average_precision_at_r"


class FakeTrial:
    """What the scheduler reads of a Tune trial: its id and config."""

    def __init__(self, trial_id: str, control: bool = False) -> None:
        self.trial_id = trial_id
        self.config = TrialConfig(Recipe("NTXentLoss"), control=control).to_config()


def asha(grace: int = 1) -> SearchASHA:
    return SearchASHA(
        search_metric=MAP,
        mode="max",
        time_attr="epoch",
        max_t=4,
        grace_period=grace,
        reduction_factor=2,
    )


def report(scheduler: SearchASHA, trial: Any, epoch: int, trained: float, start: float) -> str:
    result = {"epoch": epoch, f"trained.{MAP}": trained, f"start.{MAP}": start}
    return scheduler.on_trial_result(None, trial, result)  # type: ignore[arg-type]


def added(scheduler: SearchASHA, *trials: Any) -> None:
    for trial in trials:
        scheduler.on_trial_add(None, trial)  # type: ignore[arg-type]


def test_a_trial_that_declines_from_epoch_0_is_stopped_at_the_first_rung() -> None:
    scheduler = asha(grace=1)
    decliner = FakeTrial("d")
    added(scheduler, decliner)
    # alone at the rung, ASHA itself would let it go on: the decline rule stops it
    assert report(scheduler, decliner, 0, 0.30, 0.30) == TrialScheduler.CONTINUE
    assert report(scheduler, decliner, 1, 0.20, 0.30) == TrialScheduler.STOP
    assert scheduler.declined == 1


def test_a_trial_that_held_or_gained_goes_on() -> None:
    scheduler = asha(grace=1)
    held, gained = FakeTrial("h"), FakeTrial("g")
    added(scheduler, held, gained)
    assert report(scheduler, held, 1, 0.30, 0.30) == TrialScheduler.CONTINUE  # a tie is no decline
    assert report(scheduler, gained, 1, 0.40, 0.30) == TrialScheduler.CONTINUE


def test_before_the_first_rung_a_decline_is_not_judged() -> None:
    scheduler = asha(grace=2)
    early = FakeTrial("e")
    added(scheduler, early)
    assert report(scheduler, early, 1, 0.10, 0.30) == TrialScheduler.CONTINUE
    assert report(scheduler, early, 2, 0.15, 0.30) == TrialScheduler.STOP


def test_the_control_is_never_stopped() -> None:
    scheduler = asha(grace=1)
    good, control = FakeTrial("g"), FakeTrial("c", control=True)
    added(scheduler, good, control)
    assert report(scheduler, good, 1, 0.60, 0.30) == TrialScheduler.CONTINUE
    # the control declined and is below the rung's cutoff: ASHA and the rule would both stop it
    assert report(scheduler, control, 1, 0.10, 0.30) == TrialScheduler.CONTINUE


def test_asha_ranks_on_the_trained_objective() -> None:
    """Two trials that both start at 0.30: the one whose trained epochs fell to 0.31 while the
    other reached 0.60 is cut at the rung (reduction factor 2), though floored scores tie."""
    scheduler = asha(grace=1)
    first, second = FakeTrial("a"), FakeTrial("b")
    added(scheduler, first, second)
    assert report(scheduler, first, 1, 0.60, 0.30) == TrialScheduler.CONTINUE
    assert report(scheduler, second, 1, 0.31, 0.30) == TrialScheduler.STOP
