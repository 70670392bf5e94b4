"""A space's embedding network and its preprocessing, built the same way wherever a model is
trained, scored or exported.

A checkpoint holds weights, not architecture: the worker, the test-split scoring and the export
all rebuild a trial's network from the space with this one function, so a checkpoint loads
wherever it goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from minesearch.config import SpaceSpec
from minesearch.data import Preprocess, Source
from minesearch.data.preprocess import ImagePreprocess, TensorPreprocess
from minesearch.models._backbone import Backbone
from minesearch.models._backbones import build_backbone
from minesearch.models._heads import EmbeddingNet


@dataclass(eq=False)
class Network:
    """The embedding model, its backbone (for freezing and its learning rate) and the inputs'
    preprocessing."""

    model: EmbeddingNet
    backbone: Backbone
    preprocess: Preprocess


def backbone_name(spec: SpaceSpec, source: Source) -> str:
    """`auto`: the convnet for images (encoded, or [C, H, W] tensors), the MLP for vectors."""
    name = spec.model.backbone
    if name != "auto":
        return name
    shape = source.input_shape
    return "convnet" if source.kind == "image" or (shape and len(shape) == 3) else "mlp"


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
