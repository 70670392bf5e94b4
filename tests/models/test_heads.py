"""Heads that start where the pretrained model is: with none, linear (equal widths) and residual,
epoch 0 *is* the pretrained reference, on precomputed vectors and on the shipped MiniLM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from minesearch.config import SpecError, parse_spec
from minesearch.data import load_parts
from minesearch.models import (
    Residual,
    backbone_name,
    build_network,
    make_head,
    reference_network,
    resolve_head,
)
from minesearch.recipe import Recipe
from minesearch.train import build_state, fold_metric, score_network, split_scores

IDENTITY_START = ("none", "linear", "residual")


def vectors(tmp_path: Path, n_classes: int = 6, per_class: int = 8, dim: int = 12) -> str:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((n_classes, dim))
    rows = np.repeat(centers, per_class, axis=0) + 0.7 * rng.standard_normal(
        (n_classes * per_class, dim)
    )
    path = tmp_path / "vectors.parquet"
    pq.write_table(
        pa.table({"label": np.repeat(np.arange(n_classes), per_class), "features": list(rows)}),
        path,
    )
    return str(path)


def vector_space(path: str, **model: Any) -> Any:
    return parse_spec(
        {
            "name": "heads",
            "data": {"source": "parquet", "path": path, "split": {"val": 0.5, "test": 0.0}},
            "model": model,
            "train": {"batch": {"classes": 2, "per_class": 4}},
        }
    )


def text_space(**model: Any) -> Any:
    return parse_spec(
        {
            "name": "heads-text",
            "data": {"source": "text_topics", "split": {"val": 0.2, "test": 0.0}},
            "model": {"backbone": "minilm", "max_length": 32, **model},
            "train": {"batch": {"classes": 4, "per_class": 2}},
        }
    )


def embeddings(spec: Any, head: str | None) -> torch.Tensor:
    parts = load_parts(spec)
    network = (
        build_network(spec, parts.source, head) if head else reference_network(spec, parts.source)
    )
    rows = parts.rows("val")[:24]
    with torch.no_grad():
        network.model.eval()
        return network.model(network.preprocess(parts.source.take(rows), False))


@pytest.mark.parametrize("head", IDENTITY_START)
def test_vector_heads_start_at_the_vectors(tmp_path: Path, head: str) -> None:
    spec = vector_space(vectors(tmp_path), head=head)
    reference = embeddings(spec, None)
    torch.testing.assert_close(embeddings(spec, head), reference, atol=1e-6, rtol=0)
    raw = load_parts(spec)
    given = torch.nn.functional.normalize(
        torch.from_numpy(raw.source.take(raw.rows("val")[:24])), dim=1
    )
    torch.testing.assert_close(reference, given, atol=1e-6, rtol=0)  # the reference: the vectors


@pytest.mark.parametrize("head", ["linear", "residual"])
def test_epoch_0_scores_equal_the_pretrained_reference(tmp_path: Path, head: str) -> None:
    """Through the worker's own state and scoring: the first report equals the reference."""
    spec = vector_space(vectors(tmp_path), head=head)
    state = build_state(spec, Recipe("TripletMarginLoss"))
    epoch0 = split_scores(state.parts, "val", state.model, state.preprocess, state.device)
    reference = score_network(spec, "val")
    assert epoch0.keys() == reference.keys()
    for key, value in reference.items():
        assert epoch0[key] == pytest.approx(value, abs=1e-6), key


def test_vectors_as_they_are_with_no_head_train_nothing_and_are_bad_input(tmp_path: Path) -> None:
    from minesearch.data import data_errors

    spec = vector_space(vectors(tmp_path), head="none")
    assert any("leaves nothing to train" in p for p in data_errors(spec))
    with pytest.raises(ValueError, match="nothing trains"):
        build_state(spec, Recipe("TripletMarginLoss"))


def test_a_fresh_mlp_head_does_not_start_at_the_vectors(tmp_path: Path) -> None:
    spec = vector_space(vectors(tmp_path), head="mlp", embedding_dim=12)
    assert not torch.allclose(embeddings(spec, "mlp"), embeddings(spec, None), atol=1e-3)


@pytest.mark.parametrize("head", IDENTITY_START)
def test_minilm_heads_start_at_the_encoder(head: str) -> None:
    pytest.importorskip("transformers")
    spec = text_space(head=head)
    torch.testing.assert_close(embeddings(spec, head), embeddings(spec, None), atol=1e-6, rtol=0)


def test_the_default_head_starts_at_the_vectors(
    tmp_path: Path,
) -> None:
    spec = vector_space(vectors(tmp_path))
    source = load_parts(spec).source
    assert backbone_name(spec, source) == "identity"  # vectors: start at them
    assert resolve_head(spec) == "linear"  # the identity: epoch 0 is the vectors
    torch.testing.assert_close(embeddings(spec, "auto"), embeddings(spec, None), atol=1e-6, rtol=0)
    assert resolve_head(spec, "residual") == "residual"


def test_linear_is_the_identity_when_widths_match_else_semi_orthogonal() -> None:
    same = make_head("linear", 6, 6, 4)
    assert isinstance(same, torch.nn.Linear)
    torch.testing.assert_close(same.weight, torch.eye(6))
    narrow = make_head("linear", 8, 3, 4)
    assert isinstance(narrow, torch.nn.Linear)
    torch.testing.assert_close(narrow.weight @ narrow.weight.T, torch.eye(3), atol=1e-5, rtol=0)
    residual = make_head("residual", 5, 5, 7)
    assert isinstance(residual, Residual)
    x = torch.randn(3, 5)
    torch.testing.assert_close(residual(x), x)
    with pytest.raises(ValueError, match="keeps the backbone's width"):
        make_head("residual", 5, 4, 7)


def test_a_width_for_a_head_that_keeps_the_width_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="head 'residual' keeps the backbone's width"):
        vector_space(vectors(tmp_path), head="residual", embedding_dim=8)
    with pytest.raises(SpecError, match="head 'none' keeps the backbone's width"):
        parse_spec(
            {
                "name": "x",
                "model": {"embedding_dim": 8},
                "search": {"params": {"head": ["linear", "none"]}},
            }
        )


def test_with_folds_the_reference_scores_the_mean_over_the_folds_val(tmp_path: Path) -> None:
    """Trials report the mean over their K folds' val classes, so the pretrained reference they
    are judged against must too: the mean of each fold's epoch 0 (identity-started head)."""
    from minesearch.data import load_parts

    spec = vector_space(vectors(tmp_path), head="linear")
    spec = spec.model_copy(update={"search": spec.search.model_copy(update={"folds": 2})})
    per_fold = []
    for fold in range(2):
        parts = load_parts(spec, fold=fold, folds=2)
        state = build_state(spec, Recipe("TripletMarginLoss"), parts=parts)
        per_fold.append(split_scores(parts, "val", state.model, state.preprocess, state.device))
    assert per_fold[0] != per_fold[1]  # the folds validate on different classes
    reference = score_network(spec, "val")
    for key in per_fold[0]:
        mean = (per_fold[0][key] + per_fold[1][key]) / 2
        assert reference[key] == pytest.approx(mean, abs=1e-6), key
    assert reference[fold_metric(1, "mean_average_precision_at_r")] == pytest.approx(
        per_fold[1]["mean_average_precision_at_r"], abs=1e-6
    )
