"""Data, split and network of a space, built the same way wherever a model is trained or scored.

The worker, the test-split scoring of the chosen recipes (holdout.py) and the export all rebuild a
trial's model from the space alone: a checkpoint holds weights, not architecture, so one function
building both keeps a checkpoint loadable wherever it goes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from minesearch.data import Dataset, Split, load_dataset, split_by_class
from minesearch.model import EmbeddingNet, build_model
from minesearch.spec import SpaceSpec

EVAL_CHUNK = 1024  # rows embedded at once when scoring
CHECKPOINT_FILE = "checkpoint.pt"  # in every checkpoint a worker reports


@dataclass(frozen=True, eq=False)
class Parts:
    """The loaded data and its class-disjoint split."""

    data: Dataset
    split: Split

    def part(self, name: str) -> Dataset:
        return self.data.subset(getattr(self.split, name))


def load_parts(spec: SpaceSpec) -> Parts:
    d = spec.data
    data = load_dataset(d.source, d.path, d.label_column, d.features_column)
    return Parts(data, split_by_class(data.labels, d.split.val, d.split.test, d.split.seed))


def build_embedder(spec: SpaceSpec, data: Dataset) -> EmbeddingNet:
    m = spec.model
    return build_model(data.input_shape, m.backbone, m.embedding_dim, m.hidden_dim)


@torch.no_grad()
def embed(model: nn.Module, inputs: np.ndarray, device: torch.device) -> torch.Tensor:
    """Eval-mode embeddings of `inputs`, in chunks so scoring a large split stays bounded."""
    model.eval()
    chunks = [
        model(torch.from_numpy(inputs[i : i + EVAL_CHUNK]).to(device)).cpu()
        for i in range(0, len(inputs), EVAL_CHUNK)
    ]
    return torch.cat(chunks)  # [N, E]
