"""Networks scored outside training, as Ray tasks: the pretrained reference before any trial, and
the chosen trials, the control and the pretrained model on the test split after selection.

Tasks rather than driver code: on a cluster the data and the checkpoints are where the workers
are, not necessarily where the driver is (`minesearch.train.score_network` runs there).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import ray

from minesearch.config import SpaceSpec
from minesearch.config.vocab import HeadName, SplitPart, parse_backbone
from minesearch.data import open_source
from minesearch.models import backbone_name, is_pretrained
from minesearch.recipe import Setting, setting_of
from minesearch.results import TrialResult
from minesearch.train import score_network

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreJob:
    """One network on one split: a trial's checkpoint, or (no checkpoint) the pretrained model."""

    part: SplitPart
    checkpoint: str | None = None
    head: HeadName | None = None  # a trial's own head, when it searched one

    @classmethod
    def of(cls, trial: TrialResult, part: SplitPart) -> ScoreJob | None:
        """A trial's selected checkpoint on `part`; None when it has none."""
        if trial.checkpoint is None:
            return None
        return cls(part, trial.checkpoint, trial.recipe.head if trial.recipe else None)


def has_test_split(spec: SpaceSpec) -> bool:
    return spec.data.split.test > 0


def model_setting(spec: SpaceSpec) -> Setting:
    """What the search tunes (a text encoder, an image model, vectors, or a network from
    scratch): it picks the control recipe. A user's own (`python:`) backbone is from scratch
    unless its factory says it is pretrained: then it is tuned as an image model or as vectors."""
    source = open_source(spec)
    family, _ = parse_backbone(backbone_name(spec, source))
    if family == "python" and is_pretrained(spec, source):
        return "image" if source.kind == "image" else "vectors"
    return setting_of(family)


def has_reference(spec: SpaceSpec) -> bool:
    """Whether the search starts from a pretrained model (vectors, or a pretrained backbone)."""
    return is_pretrained(spec, open_source(spec))


def score(
    spec: SpaceSpec, storage_path: str, jobs: dict[str, ScoreJob]
) -> dict[str, dict[str, float]]:
    """Scores per job name, the jobs run in parallel. A job that fails is reported and left out:
    the search it serves is done."""
    pending = submit(spec, storage_path, jobs)
    return {name: found for name in jobs if (found := collect(pending, jobs, name)) is not None}


def submit(
    spec: SpaceSpec, storage_path: str, jobs: dict[str, ScoreJob], cpus: float = 1
) -> dict[str, ray.ObjectRef]:
    """The jobs' tasks, started; `collect` waits for one. `cpus`: what each task holds of Ray's
    CPUs (0: it runs beside whatever holds them, on one thread)."""
    task = ray.remote(num_cpus=cpus)(score_network)
    return {
        name: task.remote(spec, job.part, job.checkpoint, storage_path, job.head)  # type: ignore[call-arg]
        for name, job in jobs.items()
    }


def collect(
    pending: dict[str, ray.ObjectRef], jobs: dict[str, ScoreJob], name: str
) -> dict[str, float] | None:
    """A submitted job's scores, once its task is done; None (and a warning) when it failed."""
    try:
        found: dict[str, float] = ray.get(pending[name])
    except Exception as exc:  # a failed scoring must not cost the finished search
        logger.warning("scoring %s on the %s split failed: %s", name, jobs[name].part, exc)
        return None
    return found
