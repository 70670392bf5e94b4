"""A model's eval-mode embeddings of a split's rows, fetched and embedded in chunks."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from minesearch.data import ModelInput, Preprocess, Source

EVAL_CHUNK = 256  # rows embedded at once when scoring (images and text are larger than vectors)


def to_device(x: ModelInput, device: torch.device) -> ModelInput:
    if isinstance(x, dict):
        return {k: v.to(device) for k, v in x.items()}
    return x.to(device)


@torch.no_grad()
def embed_rows(
    model: nn.Module,
    preprocess: Preprocess,
    source: Source,
    rows: np.ndarray,
    device: torch.device,
) -> torch.Tensor:
    """Eval-mode embeddings of `rows`, fetched and embedded in chunks so memory stays bounded."""
    model.eval()
    chunks = [
        model(to_device(preprocess(source.take(rows[i : i + EVAL_CHUNK]), False), device)).cpu()
        for i in range(0, len(rows), EVAL_CHUNK)
    ]
    return torch.cat(chunks) if chunks else torch.empty(0)  # [N, E]
