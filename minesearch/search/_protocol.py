"""How a search beats noise, per setting: folds, paired re-runs and the test estimate's seeds.

What noise costs depends on what is tuned (issue 19's measurements, `bench/noise.py` and
`bench/search_efficiency.py`). From scratch (a fresh network, or a fresh head), one split and one
seed give a score whose noise exceeds the differences between good recipes, and the best of many
noisy trials is optimistic. From a pretrained start with a head that starts at it, seed noise is
small and paired comparisons on one split are stable; what moves is the absolute level, with
which classes land in val. So the defaults differ by setting, and the space file can set each.
"""

from __future__ import annotations

from dataclasses import dataclass

from minesearch.config import RerunSpec, SpaceSpec
from minesearch.recipe import Setting


@dataclass(frozen=True)
class Protocol:
    """The resolved settings of `search.folds`, `search.rerun` and `search.test_seeds`."""

    folds: int
    rerun: RerunSpec
    test_seeds: int


# The defaults per setting, from bench/search_efficiency.py's replays of the two tables with folds
# (bench/results/search_efficiency_{digits,vectors}_folds.txt; bench/results/noise_*_folds.txt).
# From scratch (digits, 108 recipes x 3 seeds x 3 folds): recipes differ by sd 0.012 against a
# seed sd of 0.045, so at the quickstart's budget every strategy's median true regret is 0.042 to
# 0.046, today's (0.043) included: within seed noise, and neither 2 folds nor paired re-runs of
# the top 3 lower it (re-runs at that budget cost trials and pick the control more often). What
# the noise does ruin is the reported score: the best validation score overstates the chosen
# recipe's true mean by +0.047; retraining it on new seeds and scoring held-out classes removes
# that (optimism -0.002, 95% interval coverage 92-96%). So: one split, no re-runs, the estimate
# on test seeds (3: the t-interval of 2 seeds is 12.7 sd wide). From a pretrained start (vectors
# with the identity-started head) the seed sd is ~0 and one split ranks recipes with tau 0.90, so
# neither folds nor re-runs buy anything; 2 test seeds give the interval.
SCRATCH = Protocol(folds=1, rerun=RerunSpec(top=0, seeds=2), test_seeds=3)
PRETRAINED = Protocol(folds=1, rerun=RerunSpec(top=0, seeds=2), test_seeds=2)


def default_protocol(setting: Setting) -> Protocol:
    return SCRATCH if setting == "scratch" else PRETRAINED


def with_protocol(spec: SpaceSpec, setting: Setting) -> SpaceSpec:
    """The space with `search.folds`, `rerun` and `test_seeds` resolved for its setting, so that
    the trials, the steps after the fit and the parent run's resolved spec all read one value."""
    found, default = spec.search, default_protocol(setting)
    resolved = {
        "folds": found.folds if found.folds is not None else default.folds,
        "rerun": found.rerun if found.rerun is not None else default.rerun,
        "test_seeds": found.test_seeds if found.test_seeds is not None else default.test_seeds,
    }
    return spec.model_copy(update={"search": found.model_copy(update=resolved)})
