"""The untrained network's val scores, kept by the process: a trial's epoch 0 without evaluating.

Every trial reports its epoch 0, the network before any step: the floor its selection keeps. When
that network does not depend on the recipe or the seed (a pretrained encoder with no head,
vectors through an identity-started head), every trial of a search evaluates the same network
on the same rows. On text that is 1.4 s of a trial's ~45 s (MiniLM on package_topics' 420 val
descriptions, 2 threads), paid by each of the 6 trials and 3 test-estimate runs of
text_minilm.yaml. A process that runs trial after trial (a reused Tune trial actor) keeps the
scores under what determines them: the space's data and model sections, the val rows and their
labels, the precision and device, and a digest of every weight and buffer of the network. A
fresh head drawn from the trial's seed has another digest, so it is evaluated as before.

Only for one worker: in a data-parallel trial the evaluation is a collective over ranks whose
processes need not have run the same trials, so a rank that skipped it would leave the others
waiting.
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


def weights_digest(model: nn.Module) -> str:
    """A digest of the module's state: every parameter's and buffer's name, dtype, shape and bytes
    (on the CPU; ~0.1 s for MiniLM's 90 MB)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def val_digest(parts: Parts) -> str:
    """A digest of the val rows (positions in the source) and their labels."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (parts.rows("val"), parts.labels("val")):
        data = np.ascontiguousarray(array)
        digest.update(f"{data.dtype}:{data.shape};".encode())
        digest.update(data.tobytes())
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
    ) -> UntrainedScores:
        """The keys of a trial's untrained fold models, each with the data it is scored on."""
        common = (spec.data.model_dump_json(), spec.model.model_dump_json(), precision, device.type)
        return cls(tuple((*common, val_digest(p), weights_digest(m)) for m, p in folds))

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
