"""The search's ASHA: a trial that only declined below its epoch 0 is stopped at the first rung,
one out of patience (no gain over its best trained epoch for P epochs) is stopped, the control
never is, and ASHA ranks trials on the trained objective."""

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


def asha(grace: int = 1, patience: int | None = None) -> SearchASHA:
    return SearchASHA(
        search_metric=MAP,
        mode="max",
        time_attr="epoch",
        max_t=4,
        grace_period=grace,
        reduction_factor=2,
        patience=patience,
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


def curve(scheduler: SearchASHA, trial: Any, trained: list[float]) -> list[str]:
    """Each epoch's action for a trial alone in its scheduler (ASHA itself lets a lone trial
    on until max_t, 4), given its best trained score after each epoch; epoch 0 at 0.30."""
    added(scheduler, trial)
    report(scheduler, trial, 0, 0.30, 0.30)
    return [report(scheduler, trial, e, t, 0.30) for e, t in enumerate(trained, start=1)]


GO, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def test_patience_stops_a_trial_after_p_epochs_without_a_gain() -> None:
    # best trained at epoch 1 (0.40); epoch 2 no better: patience 1 stops there, 2 one later
    assert curve(asha(patience=1), FakeTrial("p1"), [0.40, 0.40, 0.45]) == [GO, STOP, GO]
    scheduler = asha(patience=2)
    assert curve(scheduler, FakeTrial("p2"), [0.40, 0.40, 0.40]) == [GO, GO, STOP]
    assert scheduler.impatient == 1


def test_a_gain_resets_patience() -> None:
    assert curve(asha(patience=1), FakeTrial("g"), [0.40, 0.41, 0.42]) == [GO] * 3
    # a gain at epoch 3 after a flat epoch 2 restarts the count under patience 2
    scheduler = asha(patience=2, grace=2)  # rungs at 2 and 4
    assert curve(scheduler, FakeTrial("r"), [0.40, 0.40, 0.42]) == [GO] * 3
    assert scheduler.impatient == 0


def test_without_patience_a_flat_trial_runs_on() -> None:
    scheduler = asha()
    assert curve(scheduler, FakeTrial("f"), [0.40, 0.40, 0.40]) == [GO] * 3
    assert scheduler.impatient == 0


def test_patience_never_stops_the_control() -> None:
    flat = [0.40, 0.40, 0.40]
    assert curve(asha(patience=1), FakeTrial("c", control=True), flat) == [GO] * 3


def test_patience_is_per_trial() -> None:
    scheduler = asha(patience=1)
    first, second = FakeTrial("a"), FakeTrial("b")
    added(scheduler, first, second)
    assert report(scheduler, first, 1, 0.40, 0.30) == GO
    assert report(scheduler, second, 1, 0.50, 0.30) == GO
    assert report(scheduler, second, 2, 0.55, 0.30) == GO  # b gained; a's best is its own
    assert report(scheduler, first, 2, 0.40, 0.30) == STOP
