"""The pretrained reference: the model itself scored on val, the bar every recipe must clear.

Its scoring task starts with the search and is read when it is done, by a Tune callback in the
driver's loop (`ReferenceCallback`), not waited for: waiting cost a text search the task's whole
life (a worker importing torch and the encoder, then a pass over val: ~4 s on 2 cores) before
Tune could start the first trial, whose own process then spends seconds importing the same. The
task holds none of Ray's CPUs (a trial that needs all of them would otherwise wait for it): it runs
on one thread beside the trial's start-up. A resumed search that has it already skips it; one
interrupted before it was logged scores it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray
from ray.tune import Callback

from minesearch.search._score_tasks import ScoreJob, collect, has_reference, submit
from minesearch.search._search_state import Search
from minesearch.tracking import names

JOBS = {"pretrained": ScoreJob("val")}


@dataclass
class Reference:
    """The reference's task, until its scores are logged on the parent run."""

    search: Search
    pending: dict[str, ray.ObjectRef]
    logged: bool = False

    def poll(self, wait: bool = False) -> None:
        """Log the scores if the task is done (`wait`: once it is); a failed task is a warning,
        and the verdict then has no pretrained model to weigh."""
        if self.logged:
            return
        if not wait and not ray.wait(list(self.pending.values()), timeout=0)[0]:
            return
        self.logged = True
        if (metrics := collect(self.pending, JOBS, "pretrained")) is None:
            return
        search, metric = self.search, self.search.spec.search.metric
        search.parent.log_metrics({f"{names.PRETRAINED_PREFIX}{k}": v for k, v in metrics.items()})
        search.tell(
            f"the pretrained model scores {metric} {metrics[metric]:.4f} on val: the bar every "
            "recipe must clear"
        )


def start_reference(search: Search) -> Reference | None:
    """The pretrained model (the vectors as given, or the backbone's pooled output with no head)
    scored on val exactly as trials are, once per search; None when the space starts from scratch
    or a resumed search has it (pretrained.<metric> on the parent run)."""
    spec = search.spec
    key = f"{names.PRETRAINED_PREFIX}{spec.search.metric}"
    if not has_reference(spec) or key in search.parent.metrics():
        return None
    return Reference(search, submit(spec, search.setup.storage_path, JOBS, cpus=0))


class ReferenceCallback(Callback):
    """Logs the reference from Tune's loop as soon as its task is done. Pickled with the Tuner's
    state, it comes back empty: a resumed search waits for its own reference after the fit."""

    def __init__(self, reference: Reference | None = None) -> None:
        self.reference = reference

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if self.reference is not None:
            self.reference.poll()

    def __getstate__(self) -> dict[str, Any]:
        return {"reference": None}
