"""Sentences -> token ids for a Hugging Face text backbone.

The tokenizer must be the one the backbone was trained with, so it is loaded from the backbone's own
directory (or Hugging Face cache entry), never from the network. It is loaded lazily and left out
of the pickled state: Ray ships the preprocess to every worker, and a tokenizer object is large,
not always picklable, and cheap to reload from local files.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from minesearch.data._contracts import RawInputs

__all__ = ["TextPreprocess"]


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
        """The Hugging Face tokenizer, from local files only: a missing one fails, never fetches."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(
                self.tokenizer_path, local_files_only=True
            )
        return self._tokenizer

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
