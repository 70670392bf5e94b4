"""The contracts between a data source, its preprocessing and a backbone.

A *source* keeps only labels (and an optional per-row split) in memory and hands over raw inputs by
row index, so a data set larger than a worker's memory still trains: the worker asks for the rows
of one batch at a time. A *preprocess* turns those raw inputs into what the backbone's forward
takes, differently at train time (augmentation) and eval time (deterministic), and describes
itself as JSON so that an exported model can be fed the same way outside minesearch.

Raw inputs by kind:
- ``tensor``: a float32 ndarray ``[B, *input_shape]`` (precomputed vectors, digits' 8x8 images);
- ``image``: a list of encoded image files (``bytes``: PNG, JPEG, ...), decoded by the preprocess;
- ``text``: a list of ``str``, tokenised by the preprocess that belongs to the text backbone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Union

import numpy as np

from minesearch.config.vocab import InputKind

if TYPE_CHECKING:
    import torch

__all__ = ["ModelInput", "Preprocess", "RawInputs", "Source"]

RawInputs = Union[np.ndarray, list[bytes], list[str]]  # noqa: UP007 - a runtime alias
ModelInput = Union["torch.Tensor", dict[str, "torch.Tensor"]]


class Source(Protocol):
    """A labelled data set: labels in memory, inputs fetched by row."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> InputKind: ...

    @property
    def labels(self) -> np.ndarray:
        """int64 [N], in memory."""
        ...

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """class_names[i] names label i when labels were strings."""
        ...

    @property
    def splits(self) -> np.ndarray | None:
        """str [N] of "train"/"val"/"test" when the data names its own split."""
        ...

    def __len__(self) -> int: ...

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Shape of one sample for ``tensor`` sources; None for images and text."""
        ...

    def take(self, rows: np.ndarray) -> RawInputs:
        """Raw inputs of `rows` (int64 row positions), in that order."""
        ...


class Preprocess(Protocol):
    """Raw inputs of one batch -> the backbone's input."""

    def __call__(
        self, raw: RawInputs, train: bool, generator: torch.Generator | None = None
    ) -> ModelInput:
        """`train` switches augmentation on; `generator` makes it reproducible per step."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able settings that reproduce the eval-time path (written next to an export)."""
        ...
