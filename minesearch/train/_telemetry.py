"""Mining telemetry: how hard the batch's triplets are, and how many tuples the loss still uses.

For every trial, whatever its miner, each step classifies the batch's candidate triplets (a, p, n)
by m = d(a, n) - d(a, p) under the trial's margin, as TripletMarginMiner does: hard m <= 0,
semihard 0 < m <= margin, easy m > margin. Logged per epoch, the shares show mining difficulty
evolving as the embedding learns. Bounded cost: at most ~4M candidate triplets per step (anchors
are subsampled on large batches), on detached embeddings.

And the worker's view of the machine and the trial's cost (`SystemSampler`), for each report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from minesearch.config.vocab import GPU_SECONDS, SYSTEM_PREFIX, WORKER_SECONDS

MAX_CANDIDATES = 4_000_000
DEFAULT_MARGIN = 0.2  # TripletMarginMiner's default, for recipes without a margin


@dataclass
class Difficulty:
    """Running counts of candidate triplets over an epoch."""

    hard: int = 0
    semihard: int = 0
    easy: int = 0
    nonzero: list[float] = field(default_factory=list)

    def add(self, counts: tuple[int, int, int]) -> None:
        self.hard += counts[0]
        self.semihard += counts[1]
        self.easy += counts[2]

    def shares(self) -> dict[str, float]:
        total = self.hard + self.semihard + self.easy
        if total == 0:
            return {}
        shares = {
            "mining.hard": self.hard / total,
            "mining.semihard": self.semihard / total,
            "mining.easy": self.easy / total,
        }
        if self.nonzero:
            shares["mining.nonzero_loss"] = sum(self.nonzero) / len(self.nonzero)
        return shares


@torch.no_grad()
def triplet_difficulty(
    emb: torch.Tensor, labels: torch.Tensor, margin: float
) -> tuple[int, int, int]:
    """(hard, semihard, easy) counts among the candidate triplets of one batch."""
    dist = torch.cdist(emb.detach().float(), emb.detach().float())  # [B, B] Euclidean
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    anchors = max(1, min(len(labels), MAX_CANDIDATES // max(1, len(labels) ** 2)))
    # Evenly spaced anchors: the class-balanced batch is laid out class by class.
    a = torch.linspace(0, len(labels) - 1, anchors, device=labels.device).long()
    m = dist[a, None, :] - dist[a, :, None]  # [A, P, N]: d(a, n) - d(a, p)
    valid = positive[a][:, :, None] & ~same[a][:, None, :]
    hard = int((valid & (m <= 0)).sum())
    semihard = int((valid & (m > 0) & (m <= margin)).sum())
    easy = int((valid & (m > margin)).sum())
    return hard, semihard, easy


def nonzero_loss_share(loss_fn: nn.Module) -> float | None:
    """Share of the loss's elements (tuples) with a non-zero loss, from PML's reducer statistics
    (recorded when `pytorch_metric_learning.utils.common_functions.COLLECT_STATS` is on); None for
    losses whose reducer keeps none (e.g. mean reducers of classification losses)."""
    loss = getattr(loss_fn, "loss", loss_fn)  # under PML's DistributedLossWrapper
    reducer = getattr(loss, "reducer", None)
    reducers: list[Any] = list(getattr(reducer, "reducers", {}).values()) or [reducer]
    past = [getattr(r, "num_past_filter", None) for r in reducers]
    size = [getattr(r, "losses_size", None) for r in reducers]
    pairs = [(p, s) for p, s in zip(past, size, strict=True) if p is not None and s]
    if not pairs:
        return None
    return sum(float(p) for p, _ in pairs) / sum(float(s) for _, s in pairs)


def recipe_margin(loss_params: dict[str, Any], miner_params: dict[str, Any]) -> float:
    """The margin the telemetry classifies under: the miner's, else the loss's, else 0.2."""
    for params in (miner_params, loss_params):
        margin = params.get("margin")
        if isinstance(margin, int | float) and not isinstance(margin, bool):
            return float(margin)
    return DEFAULT_MARGIN


def rss_anon_mb() -> float | None:
    """This process's anonymous resident memory (heap, tensors), in MiB; None off Linux.

    Anonymous, not total RSS: the pages of a memory-mapped Parquet cache are file-backed page
    cache that the kernel reclaims, so they say nothing about whether a worker fits its memory.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        return None
    return None


class SystemSampler:
    """The machine as a worker sees it, and what the trial has cost so far: metrics named as
    MLflow's system metrics (``system/...``) plus ``cost.*``, sampled at each report.

    MLflow's own monitor (`log_system_metrics`) samples the process that holds the run, which is
    the driver here; a trial's child run is written by the driver, so the worker measures and
    reports. CPU and memory are the whole machine's (psutil when installed, else /proc on Linux;
    nothing elsewhere), CPU averaged since the last sample; GPU memory is this worker's peak
    allocated by torch since the last sample (not NVML's used memory, which counts other
    processes and the allocator's cache), GPU utilisation only when pynvml is installed.
    """

    def __init__(self, device: torch.device, world: int, started: float | None = None) -> None:
        """`started`: `time.monotonic()` when the worker began (default: now)."""
        self.world = world
        self.started = time.monotonic() if started is None else started
        self._cpu = _cpu_times()
        self._gpu: int | None = None
        if device.type == "cuda":
            self._gpu = 0 if device.index is None else device.index

    def sample(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.started
        metrics = {WORKER_SECONDS: elapsed * self.world}
        cpu = _cpu_times()
        if cpu is not None and self._cpu is not None:
            busy, total = cpu[0] - self._cpu[0], cpu[1] - self._cpu[1]
            if total > 0:
                metrics[f"{SYSTEM_PREFIX}cpu_utilization_percentage"] = 100.0 * busy / total
        self._cpu = cpu
        if (memory := _memory_mb()) is not None:
            used, total_mb = memory
            metrics[f"{SYSTEM_PREFIX}system_memory_usage_megabytes"] = used
            metrics[f"{SYSTEM_PREFIX}system_memory_usage_percentage"] = 100.0 * used / total_mb
        if self._gpu is not None:
            metrics[GPU_SECONDS] = elapsed * self.world  # one GPU per worker (train.use_gpu)
            metrics |= _gpu_metrics(self._gpu)
        return metrics


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) CPU time of the whole machine so far; None where neither source exists."""
    try:
        import psutil

        t = psutil.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0)
        return sum(t) - idle, sum(t)
    except ImportError:
        pass
    try:
        with open("/proc/stat") as stat:
            fields = [float(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _memory_mb() -> tuple[float, float] | None:
    """(used, total) MB of the machine: total minus available, as `free` shows it."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        return (vm.total - vm.available) / 1e6, vm.total / 1e6
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as meminfo:
            kb = {line.split(":")[0]: float(line.split()[1]) for line in meminfo}
        return (kb["MemTotal"] - kb["MemAvailable"]) * 1024 / 1e6, kb["MemTotal"] * 1024 / 1e6
    except (OSError, ValueError, KeyError, IndexError):
        return None


def _gpu_metrics(index: int) -> dict[str, float]:
    """This worker's peak torch memory on its GPU since the last call, and NVML's utilisation
    when pynvml is installed."""
    name = f"{SYSTEM_PREFIX}gpu_{index}"
    peak = torch.cuda.max_memory_allocated(index)
    total = torch.cuda.get_device_properties(index).total_memory
    torch.cuda.reset_peak_memory_stats(index)
    metrics = {
        f"{name}_memory_usage_megabytes": peak / 1e6,
        f"{name}_memory_usage_percentage": 100.0 * peak / total,
    }
    try:
        import pynvml

        pynvml.nvmlInit()
        # NVML numbers the physical GPUs; torch's index is within CUDA_VISIBLE_DEVICES (Ray's)
        uuid = str(torch.cuda.get_device_properties(index).uuid)
        handle = pynvml.nvmlDeviceGetHandleByUUID(
            uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
        )
        rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
        metrics[f"{name}_utilization_percentage"] = float(rates.gpu)
    except Exception:  # not installed, no driver, or NVML refusing: the metric is left out
        pass
    return metrics
