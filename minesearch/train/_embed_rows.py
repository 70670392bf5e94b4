"""A model's eval-mode embeddings of a split's rows, fetched and embedded in chunks.

`embed_sharded` splits the rows among a trial's workers: each embeds its contiguous share and the
shares are gathered, so the epoch's evaluation pass takes 1/world of the time one worker would
(before, rank 0 embedded the whole split while the others waited at the report barrier).

A trial embeds in its training precision (`_precision`: the forward under autocast) and hands the
scores fp32 embeddings; the default is fp32.

Token inputs (a dict with an `attention_mask`, as `TextPreprocess` makes) are embedded on the CPU
in sub-batches of rows of similar length, each cut to its own longest row (`by_length`). A chunk
of 256 descriptions is padded to its longest: on package_topics (11 tokens on average, 51 at most)
that is ~4x the tokens that carry information, and the forward is compute-bound. Sorted
sub-batches of 32 embed the 420 val rows of text_minilm.yaml in 0.97 s instead of 1.6 s (2 CPU
threads), equal to 1.3e-6. Every epoch's evaluation, the reference and the test scoring go through
here. An accelerator keeps whole chunks: it wants large batches, and this was measured on CPUs.
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
EVAL_CPU_ROWS = 32  # rows of similar length per forward on a CPU (16: the same, 64: 15% slower)


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
    per_forward = EVAL_CPU_ROWS if device.type == "cpu" else EVAL_CHUNK
    chunks = []
    for i in range(0, len(rows), EVAL_CHUNK):
        inputs = preprocess(source.take(rows[i : i + EVAL_CHUNK]), False)
        parts = [
            (index, precision.embed(model, to_device(part, device)).cpu())
            for index, part in by_length(inputs, per_forward)
        ]
        chunks.append(reassemble(parts))
    return torch.cat(chunks) if chunks else torch.empty(0)  # [N, E]


def by_length(inputs: ModelInput, size: int) -> list[tuple[torch.Tensor | None, ModelInput]]:
    """`inputs` as sub-batches of at most `size` rows of similar length, each cut to the columns
    where one of its rows has a token, with the rows' positions in `inputs`. Right or left
    padding alike: the attention mask says which columns carry tokens, and a masked column
    changes no real token's output. Anything else (tensors, dicts without a [B, T] mask and
    same-shaped fields) is one part, index None."""
    mask = inputs.get("attention_mask") if isinstance(inputs, dict) else None
    if (
        mask is None
        or not isinstance(inputs, dict)
        or mask.dim() != 2
        or any(v.shape != mask.shape for v in inputs.values())
        or len(mask) <= size
    ):
        return [(None, inputs)]
    order = torch.argsort(mask.sum(1), stable=True)
    parts: list[tuple[torch.Tensor | None, ModelInput]] = []
    for index in order.split(size):
        columns = mask[index].bool().any(0)
        parts.append((index, {k: v[index][:, columns] for k, v in inputs.items()}))
    return parts


def reassemble(parts: list[tuple[torch.Tensor | None, torch.Tensor]]) -> torch.Tensor:
    """`by_length`'s parts embedded, back in the rows' order."""
    if len(parts) == 1 and parts[0][0] is None:
        return parts[0][1]
    index = torch.cat([i for i, _ in parts if i is not None])
    embedded = torch.cat([e for _, e in parts])
    out = torch.empty_like(embedded)
    out[index] = embedded
    return out


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
