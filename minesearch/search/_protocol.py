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


# The defaults per setting; chosen by bench/search_efficiency.py's replays (see its results).
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
