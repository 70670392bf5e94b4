"""Tensor inputs (precomputed vectors, digits' pixels) fed to the network as they are."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from minesearch.data._contracts import ModelInput, RawInputs


class TensorPreprocess:
    """float32 arrays [B, *shape] -> a tensor; with `shape`, flat rows [B, D] are reshaped to it
    first (an export embeds Parquet vectors with a model trained on [B, 1, 8, 8] digits)."""

    def __init__(self, shape: tuple[int, ...] | None = None) -> None:
        self.shape = shape

    def __call__(
        self, raw: RawInputs, train: bool, generator: torch.Generator | None = None
    ) -> ModelInput:
        assert isinstance(raw, np.ndarray)
        if self.shape is not None:
            raw = raw.reshape(len(raw), *self.shape)
        return torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))

    def describe(self) -> dict[str, Any]:
        return {"kind": "tensor", "dtype": "float32"}
