"""Mixed precision: the dtype a trial's forward passes run in, and the loss scale fp16 needs.

`train.precision` is auto, fp32, bf16 or fp16. auto is bf16 on a CUDA device with native bf16
(torch.cuda.is_bf16_supported without emulation: Ampere and later), else fp32, so CPU trials stay
fp32. The network's parameters stay fp32: the forward runs under `torch.autocast`, which casts the
inputs of matrix products and convolutions per op (half the memory traffic, the tensor cores) and
keeps reductions and normalisations in fp32; the optimiser updates fp32 weights.

Only the network's forward runs under autocast. Its embeddings leave it as fp32 and the miner, the
loss and the evaluation's scores all work on fp32, because that is where 8 (bf16) or 11 (fp16)
significant bits fail:
- distances: Euclidean distances of unit vectors come from 2 - 2 cos (cdist, PML's LpDistance),
  which cancels for near neighbours, and a matrix product in bf16 rounds a cosine to ~0.004;
- margins and thresholds: triplet margins (0.05 to 0.2), the MultiSimilarity miner's epsilon (0.1)
  and BatchHard's argmax compare distances that differ by less than that rounding, so the same
  batch would mine other tuples;
- exponentials and log-sum-exps with a scale: MultiSimilarity (beta 50), ProxyAnchor (alpha 32),
  ArcFace/CosFace (s 64), NTXent/SupCon (1 / temperature, ~14) exponentiate scale x similarity,
  which multiplies the rounding of a similarity by the scale (64 x 0.004 = 0.25 in a logit), and
  exp(64) overflows fp16 (its largest value is 65504 ~ e^11);
- ArcFace's arccos has an unbounded slope at cos = +-1, where bf16 rounds many cosines to.
The cast costs one [B, E] copy per step, and the miner and loss are O(B^2 E) against the
backbone's forward and backward (bench/gpu_check.py prints their share of a step).

fp16 has a narrow range (largest 65504, smallest normal 6e-5): small gradients underflow to zero.
Its loss is multiplied by a scale before backward and the gradients divided by it before the step
(torch.amp.GradScaler); a step whose gradients overflowed (inf/NaN) is skipped and the scale
halved. bf16 has fp32's range and needs no scaler.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch

if TYPE_CHECKING:
    from torch import nn

    from minesearch.data import ModelInput

__all__ = ["FP32", "SETTINGS", "LossScaler", "Precision", "PrecisionName"]

PrecisionName = Literal["fp32", "bf16", "fp16"]
# what train.precision accepts (config/_schema.py; tests/train/test_precision.py keeps them equal)
SETTINGS: tuple[str, ...] = ("auto", *get_args(PrecisionName))
_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


@dataclass(frozen=True)
class Precision:
    """A resolved precision on one kind of device: what `autocast` and `scaler` give."""

    name: PrecisionName = "fp32"
    device_type: str = "cpu"  # torch.device.type: cpu, cuda, ...

    @classmethod
    def resolve(cls, setting: str, device: torch.device) -> Precision:
        """`train.precision` on `device`: auto picks bf16 on a CUDA device that has it natively,
        fp32 anywhere else. Raises ValueError on an unknown setting or a device without
        autocast."""
        if setting not in SETTINGS:
            raise ValueError(f"train.precision must be one of {list(SETTINGS)}, got {setting!r}")
        if setting == "auto":
            setting = "bf16" if device.type == "cuda" and _native_bf16() else "fp32"
        if setting != "fp32" and not torch.amp.is_autocast_available(device.type):
            raise ValueError(f"train.precision {setting!r}: no autocast on {device.type} devices")
        name: PrecisionName = setting  # type: ignore[assignment]  # checked against SETTINGS
        return cls(name, device.type)

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.name]

    def autocast(self) -> AbstractContextManager[object]:
        """The context a forward pass runs in: autocast to `dtype`, nothing for fp32."""
        if self.name == "fp32":
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def embed(self, model: nn.Module, x: ModelInput) -> torch.Tensor:
        """`model(x)` under autocast, returned as fp32 for the miner, the loss and the scores."""
        with self.autocast():
            out = model(x)
        return out.float()

    def scaler(self) -> LossScaler:
        """A new loss scaler for one trial: a GradScaler for fp16, a plain backward otherwise."""
        if self.name != "fp16":
            return LossScaler()
        return LossScaler(torch.amp.GradScaler(self.device_type))


FP32 = Precision()  # today's behaviour: no autocast, no scaling


def _native_bf16() -> bool:
    """bf16 in hardware on the current CUDA device; emulated bf16 is slower than fp32."""
    return bool(torch.cuda.is_bf16_supported(including_emulation=False))


class LossScaler:
    """Backward and optimiser step, through fp16's loss scale when there is one.

    Mutable (the scale adapts), so one per trial; its `state_dict` belongs in the checkpoint, so
    that a restarted fp16 trial does not start again from 65536 and skip steps finding its scale.
    Without a GradScaler it is `loss.backward()` and `optimizer.step()`.
    """

    def __init__(self, grad_scaler: torch.amp.GradScaler | None = None) -> None:
        self._scaler = grad_scaler

    @property
    def enabled(self) -> bool:
        return self._scaler is not None

    @property
    def scale(self) -> float:
        """The current loss scale (1.0 without scaling)."""
        return 1.0 if self._scaler is None else float(self._scaler.get_scale())

    def backward(self, loss: torch.Tensor) -> None:
        """Gradients of `loss`, multiplied by the scale: `step` divides them again."""
        (loss if self._scaler is None else self._scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Unscale the gradients and step, or skip the step when a gradient is inf/NaN (the
        scale then shrinks). True when the step was taken.

        GradScaler checks every parameter of the optimiser (a loss's proxies too) and halves the
        scale exactly when it skipped: a smaller scale after `update` is the skip. Under DDP the
        all-reduced gradients carry an overflow to every worker, so all skip together.
        """
        if self._scaler is None:
            optimizer.step()
            return True
        before = self._scaler.get_scale()
        self._scaler.step(optimizer)
        self._scaler.update()
        return self._scaler.get_scale() >= before

    def state_dict(self) -> dict[str, Any]:
        return {} if self._scaler is None else self._scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint's scale; a checkpoint without one (fp32, bf16) leaves it."""
        if self._scaler is not None and state:
            self._scaler.load_state_dict(state)
