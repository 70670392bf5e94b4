"""Retrieval evaluation on held-out classes (docs/architecture.md, "Evaluation protocol").

Every sample of a split is a query against all the *other* samples of the same split (itself
excluded), as in Musgrave et al., "A Metric Learning Reality Check" (2020). Precision@1,
R-Precision and MAP@R follow PML's ``AccuracyCalculator`` definitions (R = the query's class size
- 1), so our numbers are comparable with the literature; Recall@K (Song et al. 2016) is the share
of queries with a same-class sample among their K nearest.

Queries whose class has no other member in the split ("lone" queries) cannot be scored by any
retrieval metric: they are excluded everywhere and counted, never silently averaged in. They stay
in the reference set, as distractors.

Why not PML's calculator itself (which this module used until it was measured at scale): it counts
labels with a classes x N int64 comparison (+1.9 GB at N=100k) and fetches one k = largest class
- 1 neighbours for *every* query (20k rows with one class of 5,000: 55 s and +6 GB), and importing
it imports sklearn.metrics (~1.7 s of each worker's start-up). Here labels are counted with
``np.unique``, queries are visited in chunks sorted by the k they need (k = max(R, max ks), capped
at N - 1), and the metrics are summed chunk by chunk: memory is O(chunk_elements) plus the
embeddings. The scores are the same as PML's (tests/train/test_evaluate.py checks it).

Neighbour order (what decides ties): the other samples ranked by squared Euclidean distance as
faiss's exact flat search computes it in float32, equal distances by ascending row index, the
query itself excluded. faiss 1.15 (``faiss.knn``, the engine of IndexFlatL2.search) returns that
order, and the PML-based code ranked the same way: faiss's k + 1 nearest, the query dropped (or
the last one when exact duplicates with lower rows pushed the query out). Exact ties (duplicates,
symmetric points) therefore rank as before; near ties within float32 rounding may not, because
faiss's BLAS distances move by ~1e-6 with the queries searched together (its chunks differ from
PML's one search): in bench/evaluation.py this moves MAP@R by ~1e-8. Embeddings on a CUDA device
are searched with torch (same formula, stable sort, same order); that path is tested on CPU only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DEFAULT_KS", "RetrievalScores", "retrieval_scores"]

DEFAULT_KS: tuple[int, ...] = (1, 2, 4, 8)
# Neighbours (query x k) held at once: faiss's results and the chunk's relevance arrays take about
# 40 bytes each, so ~80 MB; the distance blocks of the torch path are bounded by the same number.
CHUNK_ELEMENTS = 2**21

# (embeddings (N, D), query rows (Q,), k, chunk_elements) -> (Q, k) row indices, nearest first,
# the query excluded
Knn = Callable[[torch.Tensor, np.ndarray, int, int], torch.Tensor]


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


def retrieval_scores(
    embeddings: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> RetrievalScores:
    """Score leave-one-out retrieval within one split (each sample queries all the others).

    ``embeddings`` (N, D) are expected L2-normalised upstream; distances are Euclidean.
    ``chunk_elements`` bounds the neighbours (queries x k) held at once, hence the memory.
    Raises ValueError on malformed input or when no query has a same-class partner.
    """
    ks = _check_ks(ks)
    if chunk_elements < 1:
        raise ValueError(f"chunk_elements must be positive, got {chunk_elements}")
    emb = _as_float32(embeddings)  # (N, D)
    label_ids, class_sizes = _dense_labels(labels, len(emb))  # (N,), (N,)
    lone = int((class_sizes == 1).sum())
    if lone == len(label_ids):
        raise ValueError(
            f"no query can be scored: all {lone} samples are alone in their class, so none has "
            "a same-class sample to retrieve; the split needs classes with at least 2 samples"
        )
    sums = _Sums(ks)
    knn = _knn_for(emb)
    device_labels = torch.from_numpy(label_ids).to(emb.device)  # (N,)
    for rows, k in _query_chunks(class_sizes, max(ks), chunk_elements):
        neighbours = knn(emb, rows, k, chunk_elements)  # (Q, k)
        query_labels = device_labels[torch.from_numpy(rows).to(emb.device)]  # (Q,)
        relevant = device_labels[neighbours] == query_labels[:, None]  # (Q, k) bool
        r = torch.from_numpy(class_sizes[rows] - 1).to(emb.device)  # (Q,) same-class others
        sums.add(relevant, r)
    return sums.scores(num_queries=len(label_ids) - lone, lone=lone)


def _query_chunks(
    class_sizes: np.ndarray, max_k: int, chunk_elements: int
) -> Iterator[tuple[np.ndarray, int]]:
    """(query rows, k) chunks covering every query that can be scored, by ascending k.

    A query needs k = max(R, max ks) neighbours (R = its class size - 1), never more than the N - 1
    that exist. A chunk takes the next queries while (queries x its largest k) fits the budget and
    that k is at most twice its first query's, so a query is never searched more than twice as
    deep as it needs (PML searched every query as deep as the largest class needs), and classes of
    similar sizes share one search. A single query may exceed the budget.
    """
    n = len(class_sizes)
    need = np.minimum(np.maximum(class_sizes - 1, max_k), n - 1)  # (N,)
    queries = np.flatnonzero(class_sizes > 1)
    order = queries[np.argsort(need[queries], kind="stable")]  # (Q,) by ascending k
    need_sorted = need[order]
    start = 0
    while start < len(order):
        window = need_sorted[start : start + max(1, chunk_elements // (need_sorted[start] + 1))]
        window = window[: np.searchsorted(window, 2 * window[0], side="right")]
        # count x (k + 1) grows with count (k never decreases): the fitting counts are a prefix.
        fits = np.arange(1, len(window) + 1) * (window + 1) <= chunk_elements
        count = max(1, int(fits.sum()))
        yield order[start : start + count], int(window[count - 1])
        start += count


def _knn_for(emb: torch.Tensor) -> Knn:
    """faiss's exact search on CPU; torch on the embeddings' device otherwise (CUDA)."""
    return _torch_knn if emb.device.type != "cpu" else _faiss_knn


def _faiss_knn(emb: torch.Tensor, rows: np.ndarray, k: int, chunk_elements: int) -> torch.Tensor:
    """The k nearest other rows of each query row, by faiss's exact L2 search (ties: lower row)."""
    import faiss  # only when scoring: a worker starts without it

    data = emb.numpy()  # (N, D) float32, shared with the tensor
    _, found = faiss.knn(data[rows], data, k + 1)  # (Q, k + 1), nearest first
    return _drop_self(torch.from_numpy(found), torch.from_numpy(rows))


def _drop_self(found: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(Q, k + 1) -> (Q, k): remove the query from its own neighbours, as PML does.

    The query is at distance 0, so it comes first unless exact duplicates with lower rows tie with
    it; they can even push it out of the k + 1: then the last neighbour goes instead, which leaves
    the k nearest others.
    """
    if bool((found[:, 0] == rows).all()):
        return found[:, 1:]  # the usual case: a view, no copy
    is_self = found == rows[:, None]  # (Q, k + 1)
    is_self[~is_self.any(dim=1), -1] = True
    return found[~is_self].view(len(found), -1)


def _torch_knn(emb: torch.Tensor, rows: np.ndarray, k: int, chunk_elements: int) -> torch.Tensor:
    """The same neighbours as `_faiss_knn`, with torch on the embeddings' device.

    Squared distances ||q||^2 + ||x||^2 - 2 q.x (faiss's formula), the query itself set to +inf,
    a stable sort (equal distances: lower row first). Blocks of queries x N are bounded by
    `chunk_elements`.
    """
    query_rows = torch.from_numpy(rows).to(emb.device)  # (Q,)
    sq_norms = (emb * emb).sum(dim=1)  # (N,)
    block = max(1, chunk_elements // len(emb))
    found = []
    for start in range(0, len(query_rows), block):
        q = query_rows[start : start + block]  # (b,)
        dist = (sq_norms[q, None] + sq_norms[None, :] - 2 * emb[q] @ emb.T).clamp_min_(0)  # (b, N)
        dist[torch.arange(len(q), device=emb.device), q] = torch.inf
        found.append(torch.sort(dist, dim=1, stable=True).indices[:, :k])  # (b, k)
    return torch.cat(found)


class _Sums:
    """Per-query scores summed over the chunks (float64, as PML averages them)."""

    def __init__(self, ks: tuple[int, ...]) -> None:
        self.ks = ks
        self.precision_at_1 = 0.0
        self.r_precision = 0.0
        self.average_precision_at_r = 0.0
        self.recall = dict.fromkeys(ks, 0)

    def add(self, relevant: torch.Tensor, r: torch.Tensor) -> None:
        """Add a chunk: `relevant` (Q, k) ranked relevance, nearest first; `r` (Q,) = R >= 1."""
        num_queries, num_k = relevant.shape
        rank = torch.arange(1, num_k + 1, device=relevant.device)  # (k,)
        # The relevant neighbours among the first R, row-major: each row's hits in rank order.
        row, col = torch.nonzero(relevant & (rank[None, :] <= r[:, None]), as_tuple=True)  # (H,)
        hits_in_r = torch.bincount(row, minlength=num_queries)  # (Q,)
        # MAP@R = (1/R) sum over those hits of precision at the hit = (hits so far) / rank.
        first_of_row = torch.cumsum(hits_in_r, dim=0) - hits_in_r  # (Q,)
        hits_so_far = torch.arange(1, len(row) + 1, device=row.device) - first_of_row[row]  # (H,)
        precision_at_hit = hits_so_far.double() / (col + 1).double()  # (H,)
        average_precision = torch.zeros(num_queries, dtype=torch.float64, device=row.device)
        average_precision.index_add_(0, row, precision_at_hit)
        # Recall@K: the first relevant rank (max(ks) when none is that near) below K.
        head = relevant[:, : max(self.ks)]  # (Q, <= max ks)
        first_hit = torch.where(head.any(dim=1), head.byte().argmax(dim=1), max(self.ks))  # (Q,)
        self.precision_at_1 += float(relevant[:, 0].sum())
        self.r_precision += float((hits_in_r.double() / r).sum())
        self.average_precision_at_r += float((average_precision / r).sum())
        for k in self.ks:
            self.recall[k] += int((first_hit < k).sum())

    def scores(self, num_queries: int, lone: int) -> RetrievalScores:
        return RetrievalScores(
            precision_at_1=self.precision_at_1 / num_queries,
            r_precision=self.r_precision / num_queries,
            mean_average_precision_at_r=self.average_precision_at_r / num_queries,
            recall_at_k={k: hits / num_queries for k, hits in self.recall.items()},
            num_queries=num_queries,
            skipped_lone_queries=lone,
        )


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Validate ks early: a bad k would otherwise surface deep inside the kNN search."""
    if len(ks) == 0 or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks!r}")
    return tuple(sorted(set(ks)))


def _as_float32(embeddings: torch.Tensor | np.ndarray) -> torch.Tensor:
    """float32, contiguous, on the embeddings' device (faiss needs that on CPU); no gradient."""
    emb = torch.as_tensor(embeddings).detach().to(dtype=torch.float32).contiguous()
    if emb.ndim != 2 or len(emb) == 0:
        raise ValueError(f"embeddings must have shape (N, D) with N > 0, got {tuple(emb.shape)}")
    if not torch.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or inf; retrieval scores would be meaningless")
    return emb


def _dense_labels(labels: torch.Tensor | np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Map labels to 0..C-1 and give each sample its class size.

    Dense ids keep distinct labels distinct whatever their type (PML cast them to float32, which
    merges ids above 2**24), and the counts cost O(N), not a classes x N comparison.
    """
    raw = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if raw.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match embeddings, got {raw.shape}")
    _, label_ids, counts = np.unique(raw, return_inverse=True, return_counts=True)
    label_ids = label_ids.reshape(-1).astype(np.int64)  # (N,)
    return label_ids, counts[label_ids]
