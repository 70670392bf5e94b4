"""PML's distributed wrappers are built only by a multi-worker step, which gpu_check never takes
(bench/gpu_stubs/README.md)."""

from __future__ import annotations

from typing import Any


class DistributedLossWrapper:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("the PML stand-in has no distributed wrappers")


class DistributedMinerWrapper(DistributedLossWrapper):
    pass
