"""Stand-in for faiss's exact search (bench/gpu_stubs/README.md): `knn` only."""

from __future__ import annotations

import numpy as np
import torch

BLOCK = 2048  # queries at once: a (BLOCK, N) float32 distance block and its sort


def knn(xq: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, rows) of the k nearest rows of `xb` to each row of `xq`: squared L2 as
    ||q||^2 + ||x||^2 - 2 q.x in float32 (faiss's formula), nearest first, ties by ascending row."""
    queries, base = torch.from_numpy(xq), torch.from_numpy(xb)
    base_norms = (base * base).sum(1)  # (N,)
    values, rows = [], []
    for start in range(0, len(queries), BLOCK):
        q = queries[start : start + BLOCK]  # (b, D)
        dist = ((q * q).sum(1)[:, None] + base_norms[None, :]).sub_(2 * q @ base.T)  # (b, N)
        found = torch.sort(dist.clamp_min_(0), dim=1, stable=True)
        values.append(found.values[:, :k])
        rows.append(found.indices[:, :k])
    return torch.cat(values).numpy(), torch.cat(rows).numpy()
