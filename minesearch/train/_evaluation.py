"""Retrieval evaluation on held-out classes (docs/architecture.md, "Evaluation protocol").

Every sample of a split is a query against all the *other* samples of the same split (itself
excluded), as in Musgrave et al., "A Metric Learning Reality Check" (2020). Precision@1,
R-Precision and MAP@R come straight from PML's ``AccuracyCalculator`` so that our numbers are
comparable with the literature; Recall@K (Song et al. 2016) is added as a custom metric of the
same calculator, so that one kNN search serves every metric.

Queries whose class has no other member in the split ("lone" queries) cannot be scored by any
retrieval metric: they are excluded everywhere and counted, never silently averaged in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

__all__ = ["RetrievalScores", "retrieval_scores"]

DEFAULT_KS: tuple[int, ...] = (1, 2, 4, 8)
_PML_METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r")
_RECALL = "recall_at_k"


@dataclass(frozen=True)
class RetrievalScores:
    """Retrieval scores of one split, averaged over the queries that could be scored."""

    precision_at_1: float
    r_precision: float
    mean_average_precision_at_r: float
    recall_at_k: dict[int, float]  # k -> recall@k
    num_queries: int  # queries that were scored
    skipped_lone_queries: int  # queries whose class has no other member in the split

    def as_metrics(self) -> dict[str, float]:
        """Flatten to MLflow-ready names (``recall_at_8``, ...); MLflow metrics must be scalars."""
        metrics = {
            "precision_at_1": self.precision_at_1,
            "r_precision": self.r_precision,
            "mean_average_precision_at_r": self.mean_average_precision_at_r,
        }
        metrics.update({f"recall_at_{k}": v for k, v in sorted(self.recall_at_k.items())})
        metrics["num_queries"] = float(self.num_queries)
        metrics["skipped_lone_queries"] = float(self.skipped_lone_queries)
        return metrics


class _RecallAccuracyCalculator(AccuracyCalculator):
    """``AccuracyCalculator`` plus Recall@K, sharing PML's kNN search and lone-query mask.

    PML picks k for ``k="max_bin_count"`` as (largest class size - 1), which can be smaller than
    max(ks) when classes are small; ``determine_k`` is widened so Recall@K sees K neighbours.
    """

    def __init__(self, ks: Sequence[int], **kwargs: Any) -> None:
        self.ks = tuple(ks)
        super().__init__(**kwargs)

    def requires_knn(self) -> list[str]:
        """Tell PML that ``recall_at_k`` needs ``knn_labels`` (otherwise no kNN is run for it)."""
        return [*super().requires_knn(), _RECALL]

    def determine_k(
        self, bin_counts: torch.Tensor, num_reference_embeddings: int, ref_includes_query: bool
    ) -> int:
        """Enough neighbours for R-Precision/MAP@R *and* Recall@max(ks), but never more than exist.

        faiss pads a search for more neighbours than the index holds with index -1, which PML
        would read as the label of the last sample. Those fake neighbours come after every real
        one, so no score changes today, but the cap keeps ``knn_labels`` free of garbage.
        """
        k_for_r = int(super().determine_k(bin_counts, num_reference_embeddings, ref_includes_query))
        available = num_reference_embeddings - int(ref_includes_query)
        return min(max(k_for_r, max(self.ks)), available)

    def calculate_recall_at_k(
        self,
        knn_labels: torch.Tensor,  # (N, k) labels of each query's neighbours, nearest first
        query_labels: torch.Tensor,  # (N,)
        not_lone_query_mask: torch.Tensor,  # (N,) bool
        **kwargs: Any,
    ) -> dict[int, float]:
        """Fraction of scored queries with at least one same-class sample in their top K."""
        knn_labels = knn_labels[not_lone_query_mask]  # (Q, k)
        query_labels = query_labels[not_lone_query_mask]  # (Q,)
        hits = self.label_comparison_fn(query_labels[:, None], knn_labels)  # (Q, k) bool
        return {k: hits[:, :k].any(dim=1).double().mean().item() for k in self.ks}


def retrieval_scores(
    embeddings: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
) -> RetrievalScores:
    """Score leave-one-out retrieval within one split (each sample queries all the others).

    ``embeddings`` (N, D) are expected L2-normalised upstream; distances are Euclidean.
    Raises ValueError on malformed input or when no query has a same-class partner.
    """
    ks = _check_ks(ks)
    emb = _as_float32_cpu(embeddings)  # (N, D)
    label_ids, class_sizes = _dense_labels(labels, len(emb))  # (N,), (N,)
    lone = int((class_sizes == 1).sum())
    if lone == len(label_ids):
        raise ValueError(
            f"no query can be scored: all {lone} samples are alone in their class, so none has "
            "a same-class sample to retrieve; the split needs classes with at least 2 samples"
        )
    calculator = _RecallAccuracyCalculator(
        ks=ks,
        include=(*_PML_METRICS, _RECALL),
        k="max_bin_count",
        device=torch.device("cpu"),
    )
    # reference=None: query == reference, ref_includes_query=True (self is removed from the kNN).
    result = calculator.get_accuracy(emb, torch.from_numpy(label_ids))
    return RetrievalScores(
        precision_at_1=float(result["precision_at_1"]),
        r_precision=float(result["r_precision"]),
        mean_average_precision_at_r=float(result["mean_average_precision_at_r"]),
        recall_at_k=dict(result[_RECALL]),
        num_queries=len(label_ids) - lone,
        skipped_lone_queries=lone,
    )


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Validate ks early: a bad k would otherwise surface deep inside the kNN search."""
    if len(ks) == 0 or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks!r}")
    return tuple(sorted(set(ks)))


def _as_float32_cpu(embeddings: torch.Tensor | np.ndarray) -> torch.Tensor:
    """faiss needs float32, contiguous, on CPU; gradients are irrelevant for evaluation."""
    emb = torch.as_tensor(embeddings).detach().to(device="cpu", dtype=torch.float32).contiguous()
    if emb.ndim != 2 or len(emb) == 0:
        raise ValueError(f"embeddings must have shape (N, D) with N > 0, got {tuple(emb.shape)}")
    if not torch.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or inf; retrieval scores would be meaningless")
    return emb


def _dense_labels(labels: torch.Tensor | np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Map labels to 0..C-1 and give each sample its class size.

    PML casts labels to float32, which merges distinct ids above 2**24; dense ids avoid that.
    """
    raw = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if raw.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match embeddings, got {raw.shape}")
    _, label_ids, counts = np.unique(raw, return_inverse=True, return_counts=True)
    label_ids = label_ids.reshape(-1).astype(np.int64)  # (N,)
    return label_ids, counts[label_ids]
