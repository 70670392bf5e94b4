"""models: backbones by name, the embedding head, and a space's network built from the space.

`build_network(spec, source)` is the one way a trial's network is made (training, scoring and
export all use it, so a checkpoint's weights always fit). Backbones: minesearch's own `mlp` and
`convnet`, pretrained `timm:`/`torchvision:` image models and Hugging Face text encoders (`hf:`,
`sentence-transformers:`, `minilm`), loaded from local files only; and the user's own module from
a factory (`python:`: `BackboneInputs` in, `PythonBackbone` out), which `network_errors` checks
on a sample batch for `minesearch validate`.

Runs in the Ray Train workers, the driver's scoring tasks and `minesearch export`. Imports torch,
`config` and `data`; timm and torchvision only when such a backbone is built, and transformers
only for a text encoder that is not BERT (`_bert` builds BERT's, MiniLM's among them, in plain
torch: transformers' import costs ~3.5 s in every fresh process).
"""

from minesearch.models._backbone import Backbone, BackboneError
from minesearch.models._backbones import build_backbone, freeze
from minesearch.models._heads import EmbeddingNet, Residual, make_head
from minesearch.models._network import (
    Network,
    backbone_name,
    build_network,
    is_pretrained,
    reference_network,
    resolve_head,
)
from minesearch.models._probe import network_errors
from minesearch.models._python_backbone import BackboneInputs, PythonBackbone
from minesearch.models._text_encoder import MINILM_PACKAGE, MeanPooledEncoder, minilm_path
from minesearch.models._trunks import conv_trunk, mlp_trunk

__all__ = [
    "MINILM_PACKAGE",
    "Backbone",
    "BackboneError",
    "BackboneInputs",
    "EmbeddingNet",
    "MeanPooledEncoder",
    "Network",
    "PythonBackbone",
    "Residual",
    "backbone_name",
    "build_backbone",
    "build_network",
    "conv_trunk",
    "freeze",
    "is_pretrained",
    "make_head",
    "minilm_path",
    "mlp_trunk",
    "network_errors",
    "reference_network",
    "resolve_head",
]
