"""Sentences -> token ids for a Hugging Face text backbone.

The tokenizer must be the one the backbone was trained with, so it is loaded from the backbone's own
directory (or Hugging Face cache entry), never from the network. It is loaded lazily and left out
of the pickled state: Ray ships the preprocess to every worker, and a tokenizer object is large,
not always picklable, and cheap to reload from local files.

A BERT WordPiece tokenizer saved as tokenizer.json is run by the `tokenizers` library directly
(`wordpiece_tokenizer`): transformers' `AutoTokenizer` runs the same file through the same library,
but importing transformers costs ~3.5 s in every fresh process (`minesearch.models._bert` says
why that matters). Anything else goes through `AutoTokenizer`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minesearch.data._contracts import RawInputs

__all__ = ["TextPreprocess"]

# what a BERT tokenizer directory holds for AutoTokenizer (`TextPreprocess.save_tokenizer`)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


class TextPreprocess:
    """A list of ``str`` -> ``{"input_ids", "attention_mask"}``, both int64 ``[B, T]``.

    Pads to the longest sentence of the batch (not to `max_length`: short sentences stay cheap) and
    truncates to `max_length` tokens. Train and eval are the same: text gets no augmentation here,
    so ``train`` and ``generator`` are accepted for the protocol and ignored.
    """

    def __init__(self, tokenizer_path: str, max_length: int = 128) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 ([CLS] and [SEP]), got {max_length}")
        self.tokenizer_path = tokenizer_path
        self.max_length = max_length
        self._tokenizer: Any = None  # loaded on first call, in the process that tokenises

    def __call__(
        self, raw: RawInputs, train: bool, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Tokenise one batch; the output's keys are what the text trunk's forward reads."""
        texts = _as_texts(raw)
        if isinstance(self.tokenizer, WordPiece):
            return self.tokenizer(texts)
        encoded = self.tokenizer(
            texts,
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {
            "input_ids": encoded["input_ids"].long(),  # [B, T]
            "attention_mask": encoded["attention_mask"].long(),  # [B, T], 1 = real token
        }

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (`WordPiece`, else AutoTokenizer's), from local files only: a missing one
        fails, never fetches."""
        if self._tokenizer is None:
            self._tokenizer = wordpiece_tokenizer(Path(self.tokenizer_path), self.max_length)
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(
                self.tokenizer_path, local_files_only=True
            )
        return self._tokenizer

    def save_tokenizer(self, target: Path) -> None:
        """The tokenizer's files in `target` (an export's own copy). A tokenizer.json this class
        runs directly is copied with the files AutoTokenizer reads beside it, without importing
        transformers; any other tokenizer is saved by AutoTokenizer."""
        source = Path(self.tokenizer_path)
        if isinstance(self.tokenizer, WordPiece):
            target.mkdir(parents=True, exist_ok=True)
            for name in TOKENIZER_FILES:
                if (source / name).is_file():
                    shutil.copyfile(source / name, target / name)
            return
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
        tokenizer.save_pretrained(str(target))

    def describe(self) -> dict[str, Any]:
        """Enough to tokenise the same way with ``AutoTokenizer`` outside minesearch."""
        return {"kind": "text", "tokenizer": self.tokenizer_path, "max_length": self.max_length}

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the settings only; each process reloads the tokenizer from local files."""
        return {"tokenizer_path": self.tokenizer_path, "max_length": self.max_length}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.tokenizer_path = state["tokenizer_path"]
        self.max_length = state["max_length"]
        self._tokenizer = None

    def __repr__(self) -> str:
        return f"TextPreprocess({self.tokenizer_path!r}, max_length={self.max_length})"


def _as_texts(raw: RawInputs) -> list[str]:
    """Accept a list of str (or a str ndarray, as a parquet column may come); reject the rest."""
    items: list[object] = raw.tolist() if isinstance(raw, np.ndarray) else list(raw)
    texts: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"text preprocess expects str per sample; item {i} is {type(item)}")
        texts.append(item)
    if not texts:
        raise ValueError("text preprocess got an empty batch")
    return texts


class WordPiece:
    """A BERT tokenizer.json run by `tokenizers`, as `AutoTokenizer(texts, padding="longest",
    truncation=True, max_length=...)` runs it: [CLS] ... [SEP], truncated to `max_length` tokens
    with the special ones, padded on the right to the batch's longest."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}


_BERT_TOKENIZERS = (None, "BertTokenizer", "BertTokenizerFast")


def wordpiece_tokenizer(directory: Path, max_length: int) -> WordPiece | None:
    """The directory's tokenizer.json, run directly, when transformers would tokenise the same:
    a BERT tokenizer (by tokenizer_config.json's class) whose file's normaliser already has the
    config's lower-casing, accent and Chinese-character settings (transformers would otherwise
    rebuild it) and which adds [CLS]/[SEP] itself. None for anything else."""
    try:
        text = (directory / "tokenizer.json").read_text()
        spec = json.loads(text)
        config_file = directory / "tokenizer_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    except (OSError, ValueError):
        return None
    normalizer = spec.get("normalizer") or {}
    processor = (spec.get("post_processor") or {}).get("type")
    pad = config.get("pad_token", "[PAD]")
    exact = (
        config.get("tokenizer_class") in _BERT_TOKENIZERS
        and (spec.get("model") or {}).get("type") == "WordPiece"
        and normalizer.get("type") == "BertNormalizer"
        and normalizer.get("lowercase") == config.get("do_lower_case", True)
        and normalizer.get("strip_accents") == config.get("strip_accents")
        and normalizer.get("handle_chinese_chars") == config.get("tokenize_chinese_chars", True)
        and processor in ("TemplateProcessing", "BertProcessing")
        and config.get("padding_side", "right") == "right"
        and config.get("truncation_side", "right") == "right"
        and isinstance(pad, str)
    )
    if not exact:
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:  # AutoTokenizer will say what to install
        return None
    tokenizer = Tokenizer.from_str(text)  # the file as read above, not read again
    pad_id = tokenizer.token_to_id(pad)
    if pad_id is None:
        return None
    tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
    tokenizer.enable_padding(direction="right", pad_id=pad_id, pad_type_id=0, pad_token=pad)
    return WordPiece(tokenizer)
