"""The test split, scored once after selection for the chosen trials only (honest selection).

Scoring runs as Ray tasks (`minesearch.train.score_checkpoint`): on a cluster the data and the
checkpoints are where the workers are, not necessarily where the driver is.
"""

from __future__ import annotations

import ray

from minesearch.config import SpaceSpec
from minesearch.results import TrialResult
from minesearch.train import score_checkpoint


def has_test_split(spec: SpaceSpec) -> bool:
    return spec.data.split.test > 0


def score_chosen(
    spec: SpaceSpec, storage_path: str, chosen: dict[str, TrialResult]
) -> dict[str, dict[str, float]]:
    """`test.*` scores per name ("best", "control") of the chosen trials' last checkpoints,
    scored in parallel. A checkpoint that cannot be scored is reported and left out: the search
    it ends is done."""
    task = ray.remote(num_cpus=1)(score_checkpoint)
    pending = {
        name: task.remote(spec, trial.checkpoint, storage_path)
        for name, trial in chosen.items()
        if trial.checkpoint is not None
    }
    scores: dict[str, dict[str, float]] = {}
    for name, ref in pending.items():
        try:
            scores[name] = ray.get(ref)
        except Exception as exc:  # a failed scoring must not cost the finished search
            print(f"warning: test-split scoring of {name} failed: {exc}")
    return scores
