"""A BERT encoder in plain torch, for model directories Hugging Face's `BertModel` reads.

Why not transformers: importing it (5.x) costs 3.5-3.9 s of CPU in every fresh process before
the first weight is read (`AutoModel` + `AutoTokenizer` in a cold process, against 0.04 s for
safetensors + tokenizers; docs/measurements.md). A text search starts such a process for the
pretrained reference, for each Tuner's trial actor, for each scoring task and for the export:
~20 s of a MiniLM search's wall time on 2 cores went to that import. BERT's encoder is a few
dozen lines; this is that, for the BERT checkpoints it can read exactly (`bert_config`), and the
text backbone keeps transformers for every other architecture.

The module tree and parameter names are `BertModel`'s (`embeddings.word_embeddings.weight`,
`encoder.layer.0.attention.self.query.weight`, ...) without the pooler, which mean pooling never
uses, so state dicts, checkpoints and exports are interchangeable with a transformers-built
encoder; tests/models/test_bert.py checks outputs and gradients against transformers' in eval
and in training (a seeded MiniLM's training output is the same bit for bit). Attention is
`scaled_dot_product_attention` with the padding mask, as transformers' default "sdpa" is; the
dropouts are the config's. Forward returns the last hidden states [B, T, H].
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

WEIGHTS_FILE = "model.safetensors"
_UNUSED = ("pooler.", "cls.")  # BERT's [CLS] pooler and pre-training heads: mean pooling skips them
# buffers some weights files carry (transformers recomputes them too)
_BUFFERS = {"embeddings.position_ids", "embeddings.token_type_ids"}


@dataclass(frozen=True)
class BertConfig:
    """The fields of a BERT config.json that the encoder's shape and forward depend on."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_dropout_prob: float
    attention_probs_dropout_prob: float
    pad_token_id: int


def bert_config(model_dir: Path) -> BertConfig | None:
    """The directory's config when this module computes what transformers' `BertModel` would: a
    BERT encoder (not a decoder) with absolute positions, exact GELU and safetensors weights; None
    for anything else (transformers builds it)."""
    try:
        raw: dict[str, Any] = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    exact = (
        raw.get("model_type") == "bert"
        and raw.get("hidden_act", "gelu") == "gelu"
        and raw.get("position_embedding_type", "absolute") == "absolute"
        and not raw.get("is_decoder", False)
        and not raw.get("add_cross_attention", False)
        and raw.get("chunk_size_feed_forward", 0) == 0
        and (model_dir / WEIGHTS_FILE).is_file()
    )
    if not exact:
        return None
    try:
        return BertConfig(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            num_attention_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            max_position_embeddings=int(raw["max_position_embeddings"]),
            type_vocab_size=int(raw.get("type_vocab_size", 2)),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            hidden_dropout_prob=float(raw.get("hidden_dropout_prob", 0.1)),
            attention_probs_dropout_prob=float(raw.get("attention_probs_dropout_prob", 0.1)),
            pad_token_id=int(raw.get("pad_token_id", 0) or 0),
        )
    except (KeyError, TypeError, ValueError):
        return None


def load_bert(model_dir: Path, config: BertConfig) -> BertModel | None:
    """The encoder with the directory's weights; None when the weights file does not hold exactly
    the encoder's parameters in float32 (less the pooler and heads, with or without a ``bert.``
    prefix).

    The modules are made on the meta device and take the file's tensors as they are: no weights
    are drawn and thrown away, and the global generator is left where it was, as transformers'
    `from_pretrained` leaves it, so a trial seeded before building its network draws the same
    dropout masks with either."""
    from safetensors.torch import load_file

    with torch.device("meta"):
        model = BertModel(config)
    weights = load_file(str(model_dir / WEIGHTS_FILE))
    if weights and all(k.startswith("bert.") or k.startswith(_UNUSED) for k in weights):
        weights = {k.removeprefix("bert."): v for k, v in weights.items()}
    expected = model.state_dict()
    kept = {k: v for k, v in weights.items() if k in expected}
    extra = set(weights) - set(expected)
    # old checkpoints keep the position ids buffer; transformers ignores it too
    if set(kept) != set(expected) or any(not k.startswith(_UNUSED) for k in extra - _BUFFERS):
        return None
    if any(kept[k].shape != v.shape or kept[k].dtype != torch.float32 for k, v in expected.items()):
        return None
    model.load_state_dict(kept, assign=True)
    model.embeddings.position_ids = torch.arange(config.max_position_embeddings).unsqueeze(0)
    return model


def embedding(rows: int, width: int, padding_idx: int | None = None) -> nn.Embedding:
    """An embedding table; on the meta device (`load_bert`) without drawing its initial weights,
    which the file's replace: `normal_` on a meta tensor imports torch._dynamo, ~1 s of every
    process that builds the encoder (a trial's, each scoring task's, the driver's export)."""
    if not torch.empty(0).is_meta:  # the default device is not meta: initialised as usual
        return nn.Embedding(rows, width, padding_idx=padding_idx)
    weight = torch.empty(rows, width)  # meta: no storage, nothing drawn
    return nn.Embedding.from_pretrained(weight, freeze=False, padding_idx=padding_idx)


class BertEmbeddings(nn.Module):
    """Word + position + token-type (all type 0) embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.word_embeddings = embedding(config.vocab_size, hidden, config.pad_token_id)
        self.position_embeddings = embedding(config.max_position_embeddings, hidden)
        self.token_type_embeddings = embedding(config.type_vocab_size, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_ids: torch.Tensor
        positions = torch.arange(config.max_position_embeddings).unsqueeze(0)
        self.register_buffer("position_ids", positions, persistent=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = self.position_ids[:, : input_ids.shape[1]]
        summed = (
            self.word_embeddings(input_ids)
            + self.token_type_embeddings(torch.zeros_like(input_ids))
            + self.position_embeddings(positions)
        )
        return self.dropout(self.LayerNorm(summed))


class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention over the unmasked tokens."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        hidden, heads = config.hidden_size, config.num_attention_heads
        if hidden % heads:
            raise ValueError(f"hidden_size {hidden} is not a multiple of {heads} heads")
        self.heads, self.head_size = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, states: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """`keep`: bool [B, 1, 1, T], True for the keys every query may attend to."""
        batch, length, hidden = states.shape

        def split(x: torch.Tensor) -> torch.Tensor:  # [B, T, H] -> [B, heads, T, head_size]
            return x.view(batch, length, self.heads, self.head_size).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            split(self.query(states)),
            split(self.key(states)),
            split(self.value(states)),
            attn_mask=keep,
            dropout_p=self.dropout_p if self.training else 0.0,
            scale=1.0 / math.sqrt(self.head_size),
        )
        return attended.transpose(1, 2).reshape(batch, length, hidden)


class BertOutput(nn.Module):
    """Dense back to the hidden width, dropout, the residual added, LayerNorm: after attention
    (BertModel's `BertSelfOutput`, from `hidden_size`) and after the feed-forward's widening
    (its `BertOutput`, from `intermediate_size`)."""

    def __init__(self, config: BertConfig, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(states)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertOutput(config, config.hidden_size)

    def forward(self, states: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(states, keep), states)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(states))  # exact (erf) GELU: BERT's "gelu"


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config, config.intermediate_size)

    def forward(self, states: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        attended = self.attention(states, keep)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, states: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            states = layer(states, keep)
        return states


class BertModel(nn.Module):
    """input_ids and attention_mask (int [B, T], 1 = a real token) -> hidden states [B, T, H]."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        keep = attention_mask.bool()[:, None, None, :]  # [B, 1, 1, T]: which keys are real
        return self.encoder(self.embeddings(input_ids), keep)
