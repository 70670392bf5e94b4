"""Test-split scores of the chosen recipes only: honest selection.

The search selects on the validation split, so its best score is optimistically biased (it won a
contest on that split). The class-disjoint test split is touched only after selection, for the
best trial and the control, from their last checkpoints, so the number reported as "test" was
never used to choose anything. Scoring runs as a Ray task: on a cluster the data and the
checkpoints are where the workers are, not necessarily where the driver is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.fs
import ray
import ray.train
import torch

from minesearch.evaluate import retrieval_scores
from minesearch.inputs import Preprocess
from minesearch.pipeline import (
    CHECKPOINT_FILE,
    Network,
    Parts,
    build_network,
    embed_rows,
    load_parts,
)
from minesearch.spec import SpaceSpec

TEST_PREFIX = "test."


def has_test_split(spec: SpaceSpec) -> bool:
    return spec.data.split.test > 0


def test_scores(
    parts: Parts, model: torch.nn.Module, preprocess: Preprocess, device: torch.device
) -> dict[str, float]:
    """Retrieval on the test split's classes (never seen in training nor in selection)."""
    embeddings = embed_rows(model, preprocess, parts.source, parts.rows("test"), device)
    scores = retrieval_scores(embeddings, parts.labels("test")).as_metrics()
    return {f"{TEST_PREFIX}{k}": v for k, v in scores.items()}


def load_checkpoint(
    spec: SpaceSpec, parts: Parts, checkpoint_path: str, storage_path: str
) -> Network:
    """The network of a trial's checkpoint (its architecture comes from the space)."""
    filesystem = None
    if "://" in storage_path:  # Train records paths inside the storage's filesystem
        filesystem, _ = pyarrow.fs.FileSystem.from_uri(storage_path)
    checkpoint = ray.train.Checkpoint(checkpoint_path, filesystem=filesystem)
    with checkpoint.as_directory() as directory:
        saved = torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=True, map_location="cpu")
    network = build_network(spec, parts.source)
    network.model.load_state_dict(saved["model"])
    return network


def score_checkpoint(spec_dict: dict[str, Any], checkpoint_path: str, storage_path: str) -> Any:
    spec = SpaceSpec.model_validate(spec_dict)
    parts = load_parts(spec)
    network = load_checkpoint(spec, parts, checkpoint_path, storage_path)
    return test_scores(parts, network.model, network.preprocess, torch.device("cpu"))


def score_chosen(
    spec: SpaceSpec, storage_path: str, checkpoints: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Test scores per name ("best", "control") of the given checkpoints, scored in parallel.

    A checkpoint that cannot be scored is reported and left out: the search it ends is done.
    """
    task = ray.remote(num_cpus=1)(score_checkpoint)
    spec_dict = spec.model_dump(mode="json")
    pending = {name: task.remote(spec_dict, p, storage_path) for name, p in checkpoints.items()}
    scores: dict[str, dict[str, float]] = {}
    for name, ref in pending.items():
        try:
            scores[name] = ray.get(ref)
        except Exception as exc:  # a failed scoring must not cost the finished search
            print(f"warning: test-split scoring of {name} failed: {exc}")
    return scores
