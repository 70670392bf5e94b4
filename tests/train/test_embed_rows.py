"""Token inputs are embedded in length-sorted sub-batches cut to their longest row, and the
embeddings equal the brute-force answer: each row embedded alone, with no padding at all.

The encoder is a tiny BERT with random weights (transformers, no files), mean-pooled over the
attention mask as minesearch's text trunk pools; padding on the right and on the left, more rows
than one sub-batch and than one evaluation chunk, and rows of very different lengths.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from minesearch.train import EVAL_CHUNK, embed_rows
from minesearch.train._embed_rows import EVAL_CPU_ROWS, by_length

transformers = pytest.importorskip("transformers")

VOCAB, MAX_LEN = 40, 24
CPU = torch.device("cpu")


class TinyEncoder(nn.Module):
    """A 1-layer BERT, mean-pooled over the mask; records the width of every forward."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        config = transformers.BertConfig(
            vocab_size=VOCAB,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=MAX_LEN,
        )
        self.bert = transformers.BertModel(config)
        self.widths: list[tuple[int, int]] = []  # (rows, columns) of each forward

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        self.widths.append(tuple(x["input_ids"].shape))  # type: ignore[arg-type]
        mask = x["attention_mask"]
        left = not bool(mask[:, 0].all())  # left padding: positions start at the first token
        positions = (mask.cumsum(1) - 1).clamp(min=0) if left else None
        hidden = self.bert(
            input_ids=x["input_ids"], attention_mask=mask, position_ids=positions
        ).last_hidden_state
        weights = mask.unsqueeze(-1).float()
        return (hidden * weights).sum(1) / weights.sum(1)


class Sentences:
    """Rows of token ids of lengths 1..MAX_LEN, skewed short as real descriptions are."""

    def __init__(self, n: int) -> None:
        gen = np.random.default_rng(n)
        lengths = np.minimum(1 + gen.geometric(0.2, n), MAX_LEN)
        lengths[gen.integers(n)] = MAX_LEN  # one long row, as package descriptions have
        self.rows = [gen.integers(1, VOCAB, size=k) for k in lengths]

    def take(self, rows: np.ndarray) -> list[np.ndarray]:
        return [self.rows[i] for i in rows]


def padder(side: str):  # type: ignore[no-untyped-def]
    """A preprocess that pads a batch to its longest row, on `side`, as a tokenizer does."""

    def preprocess(raw: list[np.ndarray], train: bool) -> dict[str, torch.Tensor]:
        width = max(len(r) for r in raw)
        ids = torch.zeros(len(raw), width, dtype=torch.long)
        mask = torch.zeros(len(raw), width, dtype=torch.long)
        for i, r in enumerate(raw):
            span = slice(0, len(r)) if side == "right" else slice(width - len(r), width)
            ids[i, span] = torch.from_numpy(r)
            mask[i, span] = 1
        return {"input_ids": ids, "attention_mask": mask}

    return preprocess


@torch.no_grad()
def alone(model: TinyEncoder, source: Sentences, rows: np.ndarray) -> torch.Tensor:
    """The brute force: each row embedded by itself, unpadded."""
    model.eval()
    one = padder("right")
    return torch.cat([model(one(source.take(np.array([r])), False)) for r in rows])


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("n", [5, EVAL_CPU_ROWS + 7, EVAL_CHUNK + 9])
def test_sorted_sub_batches_equal_rows_embedded_alone(side: str, n: int) -> None:
    model, source = TinyEncoder(), Sentences(n)
    rows = np.random.default_rng(1).permutation(n)  # any order: the output keeps it
    got = embed_rows(model, padder(side), source, rows, CPU)
    assert got.shape == (n, 16)
    torch.testing.assert_close(got, alone(model, source, rows), atol=1e-5, rtol=0)


def test_each_forward_is_cut_to_its_longest_row() -> None:
    """With more rows than a sub-batch, no forward is wider than its longest row, and most are
    far narrower than the chunk's longest (the point: fewer padded tokens)."""
    n = EVAL_CHUNK + 9
    model, source = TinyEncoder(), Sentences(n)
    embed_rows(model, padder("right"), source, np.arange(n), CPU)
    assert all(rows <= EVAL_CPU_ROWS for rows, _ in model.widths)
    assert sum(rows for rows, _ in model.widths) == n
    tokens = sum(rows * cols for rows, cols in model.widths)
    padded = sum(
        len(chunk) * max(len(source.rows[i]) for i in chunk)
        for chunk in np.array_split(np.arange(n), [EVAL_CHUNK])
    )
    assert tokens < 0.6 * padded
    assert max(cols for _, cols in model.widths) == MAX_LEN  # the long row keeps its tokens


def test_other_inputs_are_one_part_unchanged() -> None:
    x = torch.randn(70, 3)
    assert by_length(x, 8) == [(None, x)]
    ragged = {"attention_mask": torch.ones(70, 4), "pixel_values": torch.randn(70, 3, 2, 2)}
    [(index, part)] = by_length(ragged, 8)
    assert index is None and part is ragged
    few = {"input_ids": torch.ones(3, 4), "attention_mask": torch.ones(3, 4)}
    assert by_length(few, 8) == [(None, few)]
