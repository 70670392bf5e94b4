"""One training step of metric learning under data parallelism, with global-batch mining.

Each worker holds a shard of the global batch. PML's distributed wrappers all-gather embeddings so
that the miner and the loss see the whole batch; gradients flow back only to the worker's own
embeddings, the wrapper scales the loss by the world size, and DDP's averaging of the model
gradients then yields the gradient of the global loss. The loss's own parameters (proxies) are
outside DDP and are synchronised here.

Under mixed precision (`_precision`) only the network's forward runs under autocast: the miner and
the loss get fp32 embeddings, and an fp16 loss goes backward through the trial's loss scaler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from pytorch_metric_learning.utils import distributed as pml_dist
from torch import nn

from minesearch.train._precision import FP32, LossScaler, Precision

if TYPE_CHECKING:  # a type only: bench/gpu_check.py imports this module without pydantic
    from minesearch.data import ModelInput


@dataclass(frozen=True)
class StepOutcome:
    loss: float  # the global batch's loss (not scaled by world size)
    tuples: int | None  # tuples the miner found in the global batch; None without a miner
    embeddings: torch.Tensor  # [b, E] this worker's, detached (for telemetry)


def for_world(
    loss_fn: nn.Module, miner: nn.Module | None, world: int
) -> tuple[nn.Module, nn.Module | None]:
    """Wrap loss and miner so that they see the global batch when there are several workers."""
    if world == 1:
        return loss_fn, miner
    wrapped_miner = pml_dist.DistributedMinerWrapper(miner) if miner is not None else None
    return pml_dist.DistributedLossWrapper(loss_fn), wrapped_miner


def loss_and_grads(
    model: nn.Module,
    loss_fn: nn.Module,
    miner: nn.Module | None,
    x: ModelInput,
    y: torch.Tensor,
    world: int,
    precision: Precision = FP32,
    scaler: LossScaler | None = None,
) -> StepOutcome:
    """Forward, mine, loss, backward and sync; raises FloatingPointError on a non-finite loss.

    The forward runs in `precision`; mining and the loss in fp32. With fp16 the gradients are
    multiplied by `scaler`'s scale (the trial's `precision.scaler()`). The caller zeroes
    gradients before and steps after: `scaler.step(optimizer)` (which skips a step whose scaled
    gradients overflowed), or `optimizer.step()` without a scaler.
    """
    if precision.name == "fp16" and (scaler is None or not scaler.enabled):
        raise ValueError("fp16 needs its loss scaler: pass precision.scaler(), kept per trial")
    if world > 1:
        check_equal_shards(len(y), world, y.device)
    emb = precision.embed(model, x)  # [b, E] fp32: this worker's shard
    mined = miner(emb, y) if miner is not None else None
    loss = loss_fn(emb, y, mined)  # world x the global loss under the distributed wrapper
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {loss.item()}")
    (scaler or LossScaler()).backward(loss)
    sync_loss_grads(loss_fn, world)
    tuples = None if mined is None else mined_count(mined)
    return StepOutcome(loss.item() / world, tuples, emb.detach())


def mined_count(mined: tuple[torch.Tensor, ...]) -> int:
    """Tuples a miner emitted: triplets (a, p, n), or positive plus negative pairs
    (a1, p, a2, n)."""
    if len(mined) == 4:
        return int(mined[0].numel() + mined[2].numel())
    return int(mined[0].numel())


def check_equal_shards(rows: int, world: int, device: torch.device) -> None:
    """PML's all_gather sizes every rank's receive buffer like the caller's own shard, so shards of
    different lengths abort gloo (SIGABRT, "Received data size doesn't match expected size") and
    are a collective mismatch on any backend. ClassBalancedBatches gives unequal shards when the
    batch's classes are not a multiple of the workers. Every rank sees all sizes, so all raise
    together instead of one waiting forever for the others.
    """
    sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world)]
    torch.distributed.all_gather(sizes, torch.tensor([rows], dtype=torch.int64, device=device))
    counts = [int(s.item()) for s in sizes]
    if len(set(counts)) > 1:
        raise ValueError(
            f"workers hold shards of {counts} rows; PML's distributed wrappers need equal shards: "
            f"make the batch's classes a multiple of the number of workers ({world})"
        )


def sync_loss_grads(loss_fn: nn.Module, world: int) -> None:
    """Gradients of a loss's own parameters (proxies), which DDP does not manage.

    Every worker computes the global loss times `world`, so each worker's proxy gradient is `world`
    times the true one. Sum over workers and divide by world**2: the true gradient, identical on
    every worker, so the proxies stay in sync.
    fp16's scaled gradients sum and divide alike (the scale is a common factor), and an overflow
    on one worker reaches all, so every scaler skips the same step.
    """
    if world == 1:
        return
    for param in loss_fn.parameters():
        if param.grad is not None:
            torch.distributed.all_reduce(param.grad)
            param.grad /= world * world
