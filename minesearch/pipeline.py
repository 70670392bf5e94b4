"""Data, split, network and preprocessing of a space, built the same way wherever a model is
trained, scored or exported.

The worker, the test-split scoring of the chosen recipes (holdout.py) and the export all rebuild a
trial's model from the space alone: a checkpoint holds weights, not architecture, so one function
building both keeps a checkpoint loadable wherever it goes. Sources keep only labels in memory;
rows are fetched batch by batch (`embed_rows`, the worker's training steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import torch
from torch import nn

from minesearch.backbones import Backbone, build_backbone
from minesearch.data import Split, load_digits_dataset, split_by_class, split_by_column
from minesearch.image_transforms import ImagePreprocess
from minesearch.inputs import ModelInput, Preprocess, RawInputs, Source
from minesearch.model import EmbeddingNet
from minesearch.spec import SpaceSpec

EVAL_CHUNK = 256  # rows embedded at once when scoring (images and text are larger than vectors)
CHECKPOINT_FILE = "checkpoint.pt"  # in every checkpoint a worker reports
TEXT_TOPICS = ("text_topics.parquet", "label", "text")  # the shipped text set: file, label, input


class TensorPreprocess:
    """Tensor sources feed the network as they are (float32 arrays)."""

    def __call__(
        self, raw: RawInputs, train: bool, generator: torch.Generator | None = None
    ) -> ModelInput:
        assert isinstance(raw, np.ndarray)
        return torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))

    def describe(self) -> dict[str, Any]:
        return {"kind": "tensor", "dtype": "float32"}


def open_source(spec: SpaceSpec, scan: bool = False) -> Source:
    """The data set the space names. `scan` checks every row (the driver does it once, before a
    search starts; workers then skip it)."""
    from minesearch.parquet_source import ParquetSource

    d = spec.data
    if d.source == "digits":
        return load_digits_dataset()
    if d.source == "image_folder":
        from minesearch.image_folder import ImageFolderSource

        assert d.path is not None  # DataSpec requires it
        return ImageFolderSource.open(d.path, scan=scan)
    if d.source == "text_topics":
        name, label, text = TEXT_TOPICS
        path = str(resources.files("minesearch") / "assets" / name)
        return ParquetSource.open(path, label, text, "text", cache_dir=d.cache_dir, scan=scan)
    assert d.path is not None
    return ParquetSource.open(
        d.path, d.label_column, d.input_column, d.input_type, d.split_column, d.cache_dir, scan
    )


@dataclass(frozen=True, eq=False)
class Parts:
    """A source and its split: row positions per part, labels at hand."""

    source: Source
    split: Split

    def rows(self, name: str) -> np.ndarray:
        rows: np.ndarray = getattr(self.split, name)
        return rows

    def labels(self, name: str) -> np.ndarray:
        return self.source.labels[self.rows(name)]


def load_parts(spec: SpaceSpec, scan: bool = False) -> Parts:
    source = open_source(spec, scan)
    if spec.data.split_column is not None and source.splits is not None:
        return Parts(source, split_by_column(source.splits, source.labels))
    s = spec.data.split
    return Parts(source, split_by_class(source.labels, s.val, s.test, s.seed))


def backbone_name(spec: SpaceSpec, source: Source) -> str:
    """`auto`: the convnet for images (encoded, or [C, H, W] tensors), the MLP for vectors."""
    name = spec.model.backbone
    if name != "auto":
        return name
    shape = source.input_shape
    return "convnet" if source.kind == "image" or (shape and len(shape) == 3) else "mlp"


@dataclass(eq=False)
class Network:
    """The embedding model, its backbone (for freezing and its learning rate) and the inputs'
    preprocessing."""

    model: EmbeddingNet
    backbone: Backbone
    preprocess: Preprocess


def build_network(spec: SpaceSpec, source: Source) -> Network:
    m = spec.model
    backbone = build_backbone(
        backbone_name(spec, source),
        kind=source.kind,
        input_shape=source.input_shape,
        hidden_dim=m.hidden_dim,
        max_length=m.max_length,
    )
    preprocess = backbone.preprocess or default_preprocess(spec, source)
    model = EmbeddingNet(backbone.trunk, backbone.out_dim, m.embedding_dim)
    return Network(model, backbone, preprocess)


def default_preprocess(spec: SpaceSpec, source: Source) -> Preprocess:
    if source.kind == "image":
        image = spec.data.image
        return ImagePreprocess(size=image.size, augment=image.augment)
    return TensorPreprocess()


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
) -> torch.Tensor:
    """Eval-mode embeddings of `rows`, fetched and embedded in chunks so memory stays bounded."""
    model.eval()
    chunks = [
        model(to_device(preprocess(source.take(rows[i : i + EVAL_CHUNK]), False), device)).cpu()
        for i in range(0, len(rows), EVAL_CHUNK)
    ]
    return torch.cat(chunks) if chunks else torch.empty(0)  # [N, E]
