"""A trained network scored on a split, from a checkpoint: the test split of the chosen recipes.

The search selects on the validation split, so its best score is optimistically biased (it won a
contest on that split). The class-disjoint test split is touched only after selection, for the
chosen trials, from their checkpoints, so a number reported as "test" was never used to choose
anything. The driver runs `score_checkpoint` as a Ray task: on a cluster the data and the
checkpoints are where the workers are, not necessarily where the driver is.
"""

from __future__ import annotations

import torch

from minesearch.config import SpaceSpec
from minesearch.config.vocab import TEST_PREFIX
from minesearch.data import Parts, Preprocess, load_parts
from minesearch.models import Network, build_network
from minesearch.train._checkpoint import load_from_storage
from minesearch.train._embed import embed_rows
from minesearch.train._evaluation import retrieval_scores


def test_scores(
    parts: Parts, model: torch.nn.Module, preprocess: Preprocess, device: torch.device
) -> dict[str, float]:
    """Retrieval on the test split's classes (never seen in training nor in selection)."""
    embeddings = embed_rows(model, preprocess, parts.source, parts.rows("test"), device)
    scores = retrieval_scores(embeddings, parts.labels("test")).as_metrics()
    return {f"{TEST_PREFIX}{k}": v for k, v in scores.items()}


def load_network(spec: SpaceSpec, parts: Parts, checkpoint_path: str, storage_path: str) -> Network:
    """The network of a trial's checkpoint (its architecture comes from the space)."""
    state = load_from_storage(checkpoint_path, storage_path)
    network = build_network(spec, parts.source)
    network.model.load_state_dict(state.model)
    return network


def score_checkpoint(spec: SpaceSpec, checkpoint_path: str, storage_path: str) -> dict[str, float]:
    """`test.*` scores of a checkpoint's model, on the CPU."""
    parts = load_parts(spec)
    network = load_network(spec, parts, checkpoint_path, storage_path)
    return test_scores(parts, network.model, network.preprocess, torch.device("cpu"))
