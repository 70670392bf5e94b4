"""The untrained network's val scores, kept by the process: a trial's epoch 0 without evaluating.

Every trial reports its epoch 0, the network before any step: the floor its selection keeps. When
that network does not depend on the recipe or the seed (a pretrained encoder with no head,
vectors through an identity-started head), every trial of a search evaluates the same network
on the same rows: for text, a forward pass over the val split in each of a search's runs
(docs/measurements.md). A process that runs trial after trial (a reused Tune trial actor) keeps
the scores under what determines them: the space's data and model sections, the val rows and
their labels, the precision and device, and a digest of every parameter and buffer of the
network. A fresh head drawn from the trial's seed has another digest, so it is evaluated as
before; a network with state the digest cannot see (a module's extra state, sparse or quantised
tensors) is never kept. Digesting costs a pass over the weights (no copy on the CPU) per trial.

Only for one worker: in a data-parallel trial the evaluation is a collective over ranks whose
processes need not have run the same trials, so a rank that skipped it would leave the others
waiting. The scores are the process's own, as `minesearch.search._in_actor` keeps its data: a
module-level dict by design, never shared, and emptied by `forget_untrained` (tests).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from minesearch.config import SpaceSpec
from minesearch.data import Parts

_KEPT = 16  # scores of this many untrained networks per process (a search has one or a few)
_SCORES: dict[tuple[str, ...], dict[str, float]] = {}


def weights_digest(model: nn.Module) -> str | None:
    """A digest of every parameter and buffer (persistent or not): name, dtype, shape and bytes.
    None when the module holds state it cannot see: a submodule's extra state
    (`get_extra_state`), a sparse or quantised tensor."""
    if any(type(m).get_extra_state is not nn.Module.get_extra_state for m in model.modules()):
        return None
    digest = hashlib.blake2b(digest_size=16)
    for kind, named in (("p", model.named_parameters()), ("b", model.named_buffers())):
        for name, tensor in named:
            if tensor.layout != torch.strided or tensor.is_quantized:
                return None
            data = tensor.detach().to("cpu").contiguous()
            digest.update(f"{kind}:{name}:{data.dtype}:{tuple(data.shape)};".encode())
            digest.update(data.reshape(-1).view(torch.uint8).numpy().data)  # a view, not a copy
    return digest.hexdigest()


def val_digest(parts: Parts) -> str:
    """A digest of the val rows (positions in the source) and their labels."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (parts.rows("val"), parts.labels("val")):
        data = np.ascontiguousarray(array)
        digest.update(f"{data.dtype}:{data.shape};".encode())
        digest.update(repr(data.tolist()).encode() if data.dtype.hasobject else data.data)
    return digest.hexdigest()


@dataclass(frozen=True)
class UntrainedScores:
    """One trial's view of the process's scores: a key per fold."""

    keys: tuple[tuple[str, ...], ...]

    @classmethod
    def of(
        cls,
        spec: SpaceSpec,
        folds: list[tuple[nn.Module, Parts]],
        precision: str,
        device: torch.device,
    ) -> UntrainedScores | None:
        """The keys of a trial's untrained fold models, each with the data it is scored on; None
        when a model's digest cannot see all of its state."""
        common = (spec.data.model_dump_json(), spec.model.model_dump_json(), precision, device.type)
        keys = []
        for model, parts in folds:
            if (weights := weights_digest(model)) is None:
                return None
            keys.append((*common, val_digest(parts), weights))
        return cls(tuple(keys))

    def get(self, fold: int) -> dict[str, float] | None:
        found = _SCORES.get(self.keys[fold])
        return None if found is None else dict(found)

    def put(self, fold: int, scores: dict[str, float]) -> None:
        if len(_SCORES) >= _KEPT and self.keys[fold] not in _SCORES:
            _SCORES.pop(next(iter(_SCORES)))  # the oldest
        _SCORES[self.keys[fold]] = dict(scores)


def forget_untrained() -> None:
    """Drop every kept score (tests)."""
    _SCORES.clear()
