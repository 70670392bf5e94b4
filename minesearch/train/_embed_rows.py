"""A model's eval-mode embeddings of a split's rows, fetched and embedded in chunks.

`embed_sharded` splits the rows among a trial's workers: each embeds its contiguous share and the
shares are gathered, so the epoch's evaluation pass takes 1/world of the time one worker would
(before, rank 0 embedded the whole split while the others waited at the report barrier).

A trial embeds in its training precision (`_precision`: the forward under autocast) and hands the
scores fp32 embeddings; the default is fp32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from minesearch.train._precision import FP32, Precision

if TYPE_CHECKING:  # types only: bench/gpu_check.py imports this module without pydantic
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
    precision: Precision = FP32,
) -> torch.Tensor:
    """Eval-mode fp32 embeddings of `rows`, the forward in `precision`, fetched and embedded in
    chunks so memory stays bounded."""
    model.eval()
    chunks = [
        precision.embed(
            model, to_device(preprocess(source.take(rows[i : i + EVAL_CHUNK]), False), device)
        ).cpu()
        for i in range(0, len(rows), EVAL_CHUNK)
    ]
    return torch.cat(chunks) if chunks else torch.empty(0)  # [N, E]


def shares(n: int, world: int) -> list[int]:
    """Rows per rank: contiguous, sizes differing by at most one (np.array_split's rule)."""
    return [len(part) for part in np.array_split(np.arange(n), world)]


@torch.no_grad()
def embed_sharded(
    model: nn.Module,
    preprocess: Preprocess,
    source: Source,
    rows: np.ndarray,
    device: torch.device,
    rank: int,
    world: int,
    precision: Precision = FP32,
) -> torch.Tensor:
    """`embed_rows(rows)` computed by `world` workers together; every rank returns all of it.

    A collective: every rank of the process group must call it with the same `rows`. `model` must be
    the plain module (not DDP: its forward would enter DDP's own collectives). Shares are padded to
    the largest so one all_gather (gloo and NCCL alike) moves them; padding is cut off after.
    """
    if world == 1 or len(rows) == 0 or not dist.is_available() or not dist.is_initialized():
        return embed_rows(model, preprocess, source, rows, device, precision)
    sizes = shares(len(rows), world)
    start = sum(sizes[:rank])
    share = rows[start : start + sizes[rank]]
    own = embed_rows(model, preprocess, source, share, device, precision)
    dim = _embedding_dim(model, preprocess, source, rows, device, own, precision)
    padded = torch.zeros(max(sizes), dim, device=device)
    if len(own):
        padded[: len(own)] = own.to(device)
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return torch.cat([part[:size].cpu() for part, size in zip(gathered, sizes, strict=True)])


def _embedding_dim(
    model: nn.Module,
    preprocess: Preprocess,
    source: Source,
    rows: np.ndarray,
    device: torch.device,
    own: torch.Tensor,
    precision: Precision,
) -> int:
    """The embedding width, also on a rank whose share is empty (fewer rows than workers)."""
    if len(own):
        return int(own.shape[1])
    return int(embed_rows(model, preprocess, source, rows[:1], device, precision).shape[1])
