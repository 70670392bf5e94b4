"""The test estimate: the chosen recipe and the control trained again with S new seeds, scored on
the test split (`search.test_seeds`; `--confirm K,S` retrains the top K recipes instead).

The seeds are new (not the search's), so a confirmation never replays the run that won the
selection. The control's own run, when the search did not choose it, is one of its S
(`minesearch.results.unchosen_control`): it was fixed before the search, not picked for its
score, so it needs S - 1 new ones. `minesearch.results.confirmations` / `estimate_of` read the
runs back as mean ± 95% CI per recipe, and the verdict weighs the chosen recipe and the control
on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import ray

from minesearch.config import SpaceSpec, TrainSpec
from minesearch.recipe import Recipe, TrialConfig
from minesearch.results import confirmation_seeds
from minesearch.search._callback import MlflowTrialCallback
from minesearch.search._progress import ViewCallback
from minesearch.search._trial import TrialSetup, run_fixed


@dataclass(frozen=True)
class Retrain:
    """One recipe of the test estimate: the epochs to train it for (None: the space's budget)
    and how many new seeds it needs."""

    recipe: Recipe
    epochs: int | None
    seeds: int


class ConfirmError(ValueError):
    """A `--confirm` value that cannot work: names the option and what it needs."""


def parse_confirm(text: str) -> tuple[int, int]:
    """`K,S` -> (K, S); S >= 2 because a confidence interval needs a spread."""
    parts = text.split(",")
    try:
        top, seeds = (int(p) for p in parts)
    except ValueError:
        raise ConfirmError(
            f"--confirm: expected K,S (two integers, e.g. 3,5), got {text!r}"
        ) from None
    if top < 1 or seeds < 2:
        raise ConfirmError(
            f"--confirm: K >= 1 recipes and S >= 2 seeds (an interval needs 2), got {text!r}"
        )
    return top, seeds


def confirm_errors(spec: SpaceSpec) -> list[str]:
    if spec.data.split.test <= 0:
        return [
            "--confirm: scores the test split, but data.split.test is 0; give the space a test "
            "split (a fraction of the classes, e.g. 0.2)"
        ]
    return []


def run_confirm(
    setup: TrialSetup,
    name: str,
    uri: str,
    parent_run_id: str,
    trial_params: dict[str, Any],
    retrains: list[Retrain],
    at_once: int,
    view: ViewCallback | None = None,
) -> None:
    """Train every (recipe, new seed) pair as child runs (role `confirm`), each recipe for its
    epochs; their selected checkpoints are scored on the test split with the other chosen ones.
    Recipes share seeds (the first new seed of each is the same), as trials do.

    The longest retrains start first: with runs side by side, a long one left to run alone at
    the end holds one slot while the other idles. Two slots, the chosen recipe's two 1-epoch
    seeds and the control's 2 epochs: 3 epoch-lengths in that order, 2 with the control first.
    Where one run takes the whole machine, the runs may go several at a time on a share of its
    CPUs each (`side_by_side`)."""
    spec = setup.spec
    longest_first = sorted(retrains, key=lambda r: -(r.epochs or spec.train.epochs))
    trials = [  # the one split (folds=1): scored on the test classes, not compared on folds
        TrialConfig(retrain.recipe, seed=seed, folds=1, epochs=retrain.epochs)
        for retrain in longest_first
        for seed in confirmation_seeds(spec.train.seed, retrain.seeds)
    ]
    epochs = [trial.epochs or spec.train.epochs for trial in trials]
    if (shared := side_by_side(spec.train, epochs, at_once, cluster_cpus)) is not None:
        cpus, at_once = shared
        train = spec.train.model_copy(update={"cpus_per_worker": cpus})
        setup = replace(setup, spec=spec.model_copy(update={"train": train}))
    callback = MlflowTrialCallback(
        uri, parent_run_id, trial_params, spec.train.epochs, role="confirm"
    )
    run_fixed(setup, f"{name}-confirm", trials, callback, at_once, view)


def cluster_cpus() -> float:
    return float(ray.cluster_resources().get("CPU", 0.0))


def side_by_side(
    train: TrainSpec, epochs: list[int], at_once: int, cluster: Callable[[], float]
) -> tuple[float, int] | None:
    """(the CPUs each test-estimate run gets, how many run at once) when the runs should share
    the CPUs of one run; None: one at a time, as the search runs its trials.

    Only for one-worker CPU runs that each take more than half the cluster (one at a time is all
    it holds), and only for k runs at once whose slots, taking the runs longest first, end
    together (`balanced_in`): then the work is the same, split in k processes, and several
    processes train more steps than one with all the threads. k is the fewest that balance,
    among the divisors of the run's CPUs (whole threads each) and one more than its CPUs (one
    thread each). On 2 cores two 1-thread MiniLM runs train 1.20-1.37x the steps of one 2-thread
    run, three 1.04-1.34x (`bench/side_by_side.py`, bench/results/side_by_side.txt). So the
    chosen recipe's two 1-epoch seeds go beside the control's 2 epochs (k = 2), and three 2-epoch
    runs all at once (k = 3), not two then one, which would leave the last alone on a new
    process. An unbalanced split would leave one run alone on a share of the CPUs at the end,
    slower than serial.
    The search's own trials stay one at a time: side by side, TPE would propose one trial fewer
    from results (search_spaces/text_minilm.yaml); these runs are fixed before they start."""
    cpus = train.cpus_per_worker
    if at_once != 1 or train.workers != 1 or train.use_gpu is not False:
        return None
    if cpus < 2 or cpus != int(cpus) or cluster() >= 2 * cpus:
        return None
    whole = int(cpus)
    shares = [k for k in range(2, whole + 1) if whole % k == 0] + [whole + 1]
    for k in shares:
        if k <= len(epochs) and balanced_in(epochs, k):
            # Ray counts a fraction to 1e-4: rounded down, k of them fit in the run's CPUs
            return math.floor(cpus / k * 10_000) / 10_000, k
    return None


def balanced_in(epochs: list[int], slots: int) -> bool:
    """Whether `slots` slots that each take the next run, longest first, as soon as they are free
    (as Tune starts a grid of runs several at a time) finish their epochs together."""
    loads = [0] * slots
    for length in sorted(epochs, reverse=True):
        loads[loads.index(min(loads))] += length
    return len(epochs) >= slots >= 2 and len(set(loads)) == 1
