"""Retrieval scores checked against a brute-force implementation written from the definitions."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import load_bench

from minesearch.train import RetrievalScores, _evaluation, retrieval_scores

KS = (1, 2, 4, 8)
TOL = 1e-5


@dataclass(frozen=True)
class Expected:
    precision_at_1: float
    r_precision: float
    mean_average_precision_at_r: float
    recall_at_k: dict[int, float]
    num_queries: int
    skipped_lone_queries: int


def brute_force(emb: np.ndarray, labels: np.ndarray, ks: Sequence[int] = KS) -> Expected:
    """Leave-one-out retrieval from a full distance matrix, one query at a time."""
    emb = emb.astype(np.float64)
    dist = np.linalg.norm(emb[:, None, :] - emb[None, :, :], axis=-1)  # (N, N)
    p1: list[float] = []
    rp: list[float] = []
    mapr: list[float] = []
    recall: dict[int, list[float]] = {k: [] for k in ks}
    skipped = 0
    for i in range(len(emb)):
        others = np.delete(np.arange(len(emb)), i)
        ranked = others[np.argsort(dist[i, others], kind="stable")]
        rel = labels[ranked] == labels[i]  # relevance of the ranked neighbours
        r = int(rel.sum())  # = class size - 1
        if r == 0:
            skipped += 1
            continue
        p1.append(float(rel[0]))
        rp.append(rel[:r].mean())
        precision_at_i = np.cumsum(rel[:r]) / np.arange(1, r + 1)
        mapr.append((precision_at_i * rel[:r]).sum() / r)
        for k in ks:
            recall[k].append(float(rel[:k].any()))
    return Expected(
        precision_at_1=float(np.mean(p1)),
        r_precision=float(np.mean(rp)),
        mean_average_precision_at_r=float(np.mean(mapr)),
        recall_at_k={k: float(np.mean(v)) for k, v in recall.items()},
        num_queries=len(p1),
        skipped_lone_queries=skipped,
    )


def assert_matches(got: RetrievalScores, want: Expected) -> None:
    assert got.num_queries == want.num_queries
    assert got.skipped_lone_queries == want.skipped_lone_queries
    assert got.precision_at_1 == pytest.approx(want.precision_at_1, abs=TOL)
    assert got.r_precision == pytest.approx(want.r_precision, abs=TOL)
    assert got.mean_average_precision_at_r == pytest.approx(
        want.mean_average_precision_at_r, abs=TOL
    )
    assert got.recall_at_k.keys() == want.recall_at_k.keys()
    for k, value in want.recall_at_k.items():
        assert got.recall_at_k[k] == pytest.approx(value, abs=TOL), f"recall@{k}"


def assert_no_near_ties(emb: np.ndarray, labels: np.ndarray) -> None:
    """No near tie between a same-class and an other-class neighbour of any query.

    faiss ranks squared distances in float32 (error ~1e-6 for unit vectors), the brute force in
    float64: such a tie could rank differently and make the comparison flaky. Ties between
    neighbours of equal relevance cannot change any score, so only adjacent pairs whose relevance
    differs are checked (any swap that matters implies one of those).
    """
    emb = emb.astype(np.float64)
    sq_dist = ((emb[:, None, :] - emb[None, :, :]) ** 2).sum(-1)  # (N, N)
    for i, row in enumerate(sq_dist):
        others = np.delete(np.arange(len(emb)), i)
        ranked = others[np.argsort(row[others])]
        relevance_changes = np.diff(labels[ranked] == labels[i]) != 0
        gaps = np.diff(row[ranked])[relevance_changes]
        assert gaps.size == 0 or gaps.min() > 1e-5, "data has a near tie; pick another seed"


def random_split(
    seed: int, class_sizes: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised float32 embeddings (N, D) with uneven classes, as the model would emit."""
    rng = np.random.default_rng(seed)
    if class_sizes is None:
        num_classes = int(rng.integers(3, 7))
        class_sizes = rng.integers(2, 16, size=num_classes).tolist()
    labels = np.repeat(np.arange(len(class_sizes)), class_sizes)
    dim = int(rng.integers(4, 9))
    centres = rng.normal(size=(len(class_sizes), dim))
    emb = centres[labels] + rng.normal(scale=0.8, size=(len(labels), dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    emb = emb.astype(np.float32)
    perm = rng.permutation(len(labels))
    return emb[perm], labels[perm]


@pytest.mark.parametrize("seed", range(8))
def test_random_splits_match_brute_force(seed: int) -> None:
    emb, labels = random_split(seed)
    assert_no_near_ties(emb, labels)
    assert_matches(retrieval_scores(emb, labels), brute_force(emb, labels))


@pytest.mark.parametrize("seed", range(3))
def test_recall_at_8_sees_8_neighbours_when_classes_are_small(seed: int) -> None:
    # Largest class has 3 samples: PML's k="max_bin_count" alone would fetch only 2 neighbours.
    emb, labels = random_split(100 + seed, class_sizes=[2, 3, 2, 3, 2, 2, 3, 2, 3, 2, 2, 2])
    assert_no_near_ties(emb, labels)
    want = brute_force(emb, labels)
    assert want.recall_at_k[8] > want.recall_at_k[2]  # the test would be vacuous otherwise
    assert_matches(retrieval_scores(emb, labels), want)


def test_hand_built_line_with_known_answer() -> None:
    # Points on a line. Class 0 at 0, 2, 3; class 1 at 0.9, 5.  Ranked relevances (self removed):
    #   0 -> [0,1,1,0] R=2: P@1 0, RP 1/2, MAP@R (0 + 1/2)/2 = 1/4
    #   2 -> [1,0,1,0] R=2: P@1 1, RP 1/2, MAP@R (1 + 0)/2 = 1/2
    #   3 -> [1,0,0,1] R=2: P@1 1, RP 1/2, MAP@R 1/2
    #   0.9 -> [0,0,0,1] R=1, 5 -> [0,0,1,0] R=1: all zero, found only by recall@4.
    xs = np.array([0.0, 2.0, 3.0, 0.9, 5.0], dtype=np.float32)
    emb = np.stack([xs, np.zeros_like(xs)], axis=1)  # (5, 2)
    labels = np.array([0, 0, 0, 1, 1])
    got = retrieval_scores(emb, labels)
    assert got.precision_at_1 == pytest.approx(0.4, abs=TOL)
    assert got.r_precision == pytest.approx(0.3, abs=TOL)
    assert got.mean_average_precision_at_r == pytest.approx(0.25, abs=TOL)
    # recall@8 with only 4 other samples: every one of them is retrieved.
    expected_recall = {1: 0.4, 2: 0.6, 4: 1.0, 8: 1.0}
    assert got.recall_at_k == pytest.approx(expected_recall, abs=TOL)
    assert (got.num_queries, got.skipped_lone_queries) == (5, 0)
    assert_matches(got, brute_force(emb, labels))


def test_perfectly_separated_clusters_score_one() -> None:
    rng = np.random.default_rng(0)
    sizes = [2, 5, 3, 9]
    labels = np.repeat(np.arange(len(sizes)), sizes)
    centres = 100.0 * np.eye(len(sizes), 6)
    emb = centres[labels] + rng.normal(scale=0.01, size=(len(labels), 6))
    got = retrieval_scores(torch.from_numpy(emb), torch.from_numpy(labels))
    assert got.precision_at_1 == pytest.approx(1.0, abs=TOL)
    assert got.r_precision == pytest.approx(1.0, abs=TOL)
    assert got.mean_average_precision_at_r == pytest.approx(1.0, abs=TOL)
    assert got.recall_at_k == pytest.approx(dict.fromkeys(KS, 1.0), abs=TOL)
    assert (got.num_queries, got.skipped_lone_queries) == (len(labels), 0)


def test_lone_queries_are_skipped_and_counted_but_stay_retrievable() -> None:
    emb, labels = random_split(7)
    rng = np.random.default_rng(70)
    lone = rng.normal(size=(4, emb.shape[1])).astype(np.float32)
    lone /= np.linalg.norm(lone, axis=1, keepdims=True)
    lone_labels = labels.max() + 1 + np.arange(4)  # four classes of one sample each
    all_emb = np.concatenate([lone[:2], emb, lone[2:]])
    all_labels = np.concatenate([lone_labels[:2], labels, lone_labels[2:]])
    assert_no_near_ties(all_emb, all_labels)
    got = retrieval_scores(all_emb, all_labels)
    # Lone samples are not queries, but they remain in the reference set as distractors.
    assert_matches(got, brute_force(all_emb, all_labels))
    assert (got.num_queries, got.skipped_lone_queries) == (len(labels), 4)


def test_far_away_lone_queries_do_not_change_other_scores() -> None:
    emb, labels = random_split(3)
    far = (
        np.full((3, emb.shape[1]), 50.0, dtype=np.float32) + np.arange(3, dtype=np.float32)[:, None]
    )
    with_lone = retrieval_scores(
        np.concatenate([emb, far]), np.concatenate([labels, labels.max() + 1 + np.arange(3)])
    )
    without = retrieval_scores(emb, labels)
    assert with_lone.skipped_lone_queries == 3
    assert with_lone.num_queries == without.num_queries == len(labels)
    assert with_lone.as_metrics() | {"skipped_lone_queries": 0.0} == pytest.approx(
        without.as_metrics(), abs=TOL
    )


@pytest.mark.parametrize("n", [1, 5])
def test_all_lone_queries_raise(n: int) -> None:
    emb = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="no query can be scored"):
        retrieval_scores(emb, np.arange(n))


def test_labels_beyond_float32_precision_stay_distinct() -> None:
    # PML casts labels to float32, where 2**24 and 2**24 + 1 are equal; we relabel first.
    emb, labels = random_split(11)
    assert_no_near_ties(emb, labels)
    huge = labels.astype(np.int64) + 2**24
    assert_matches(retrieval_scores(emb, huge), brute_force(emb, labels))


def test_custom_ks_and_metric_names() -> None:
    emb, labels = random_split(5)
    assert_no_near_ties(emb, labels)
    got = retrieval_scores(torch.from_numpy(emb).double(), labels, ks=(3, 1, 16))
    assert_matches(got, brute_force(emb, labels, ks=(1, 3, 16)))
    assert list(got.as_metrics()) == [
        "precision_at_1",
        "r_precision",
        "mean_average_precision_at_r",
        "recall_at_1",
        "recall_at_3",
        "recall_at_16",
        "num_queries",
        "skipped_lone_queries",
    ]


@pytest.mark.parametrize(
    ("embeddings", "labels", "ks", "message"),
    [
        (np.zeros((4, 2)), np.array([0, 0, 1]), KS, "labels must have shape"),
        (np.zeros(4), np.array([0, 0, 1, 1]), KS, "embeddings must have shape"),
        (np.full((4, 2), np.nan), np.array([0, 0, 1, 1]), KS, "NaN"),
        (np.eye(4), np.array([0, 0, 1, 1]), (), "ks must be"),
        (np.eye(4), np.array([0, 0, 1, 1]), (0, 1), "ks must be"),
    ],
)
def test_bad_input_raises_clear_error(
    embeddings: np.ndarray, labels: np.ndarray, ks: Sequence[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        retrieval_scores(embeddings, labels, ks=ks)


def test_every_selectable_metric_is_computed() -> None:
    """`search.metric` may name any of vocab.METRICS: the evaluation must produce each."""
    from minesearch.config.vocab import METRICS

    emb = torch.nn.functional.normalize(torch.randn(12, 4), dim=1)
    scores = retrieval_scores(emb, np.repeat(np.arange(3), 4)).as_metrics()
    assert set(METRICS) <= set(scores)


# --- the chunked evaluator against PML's AccuracyCalculator (the code it replaced) ---------------

BENCH = Path(__file__).resolve().parents[2] / "bench"
PML_TOL = 1e-6


@pytest.fixture(scope="module")
def pml_scores() -> Callable[..., dict[str, Any]]:
    """`pml_retrieval_scores` of bench/evaluation.py: the PML-based evaluation minesearch had."""
    reference: Callable[..., dict[str, Any]] = load_bench("evaluation").pml_retrieval_scores
    return reference


def assert_matches_pml(got: RetrievalScores, want: dict[str, Any]) -> None:
    for name in ("precision_at_1", "r_precision", "mean_average_precision_at_r"):
        assert getattr(got, name) == pytest.approx(want[name], abs=PML_TOL), name
    assert got.recall_at_k == pytest.approx(want["recall_at_k"], abs=PML_TOL)


def dense(labels: np.ndarray) -> np.ndarray:
    return np.unique(labels, return_inverse=True)[1].reshape(-1)


def tie_split() -> tuple[np.ndarray, np.ndarray]:
    """Exact ties everywhere: signed unit axes (every distance is 0, sqrt(2) or 2, computed
    exactly in float32), each axis twice (duplicates), classes that cut across the ties."""
    axes = np.concatenate([np.eye(4), -np.eye(4)]).astype(np.float32)  # (8, 4)
    emb = np.concatenate([axes, axes[::-1], axes[:3]])  # (19, 4): duplicates, in another order
    labels = np.array([0, 1, 0, 1, 2, 2, 3, 3, 1, 0, 1, 0, 3, 2, 3, 2, 4, 0, 5])
    return emb, labels


def duplicate_split() -> tuple[np.ndarray, np.ndarray]:
    """Queries with more exact duplicates (lower rows) than neighbours fetched, so that faiss's
    k + 1 nearest may not even contain the query: the case where PML drops the last one."""
    emb, labels = random_split(21, class_sizes=[3, 4, 2, 5])
    copies = np.repeat(emb[:1], 12, axis=0)  # 12 copies of row 0, of classes 0 and 1 alternately
    copy_labels = np.tile(labels[:1], 12)
    copy_labels[1::2] = labels.max() + 1
    return np.concatenate([copies, emb]), np.concatenate([copy_labels, labels])


def huge_class_split() -> tuple[np.ndarray, np.ndarray]:
    """One class of 40 among classes of 2 and 3, and a lone sample."""
    return random_split(22, class_sizes=[2, 40, 3, 2, 3, 1, 2])


EDGE_CASES = {
    "ties": tie_split,
    "duplicates": duplicate_split,
    "huge class": huge_class_split,
    "fewer samples than max ks": lambda: random_split(23, class_sizes=[2, 3]),
}


@pytest.mark.parametrize("seed", range(8))
def test_random_splits_match_pml(seed: int, pml_scores: Callable[..., dict[str, Any]]) -> None:
    emb, labels = random_split(seed)
    assert_matches_pml(retrieval_scores(emb, labels), pml_scores(emb, dense(labels)))


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_match_brute_force_and_pml(
    case: str, pml_scores: Callable[..., dict[str, Any]]
) -> None:
    emb, labels = EDGE_CASES[case]()
    got = retrieval_scores(emb, labels)
    assert_matches(got, brute_force(emb, labels))
    assert_matches_pml(got, pml_scores(emb, dense(labels)))


def test_ties_are_broken_by_row_order() -> None:
    # Row 0 at the origin; rows 1-4 all at distance 1 from it; only row 3 shares its class.
    emb = np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1], [5, 5]], dtype=np.float32)
    labels = np.array([0, 1, 1, 0, 1, 1])
    got = retrieval_scores(emb, labels, ks=(1, 2, 3))
    swapped = retrieval_scores(emb[[0, 3, 2, 1, 4, 5]], labels[[0, 3, 2, 1, 4, 5]], ks=(1, 2, 3))
    # Query 0 (R=1): its tied neighbours in row order are 1, 2, 3, 4: the partner comes third;
    # with rows 1 and 3 swapped it comes first. Query 3's (R=1) nearest is row 0 either way.
    assert got.recall_at_k[2] < got.recall_at_k[3]
    assert swapped.precision_at_1 > got.precision_at_1
    assert_matches(got, brute_force(emb, labels, ks=(1, 2, 3)))
    assert_matches(
        swapped, brute_force(emb[[0, 3, 2, 1, 4, 5]], labels[[0, 3, 2, 1, 4, 5]], (1, 2, 3))
    )


@pytest.mark.parametrize("chunk_elements", [1, 5, 64, 1000])
def test_chunking_does_not_change_scores(chunk_elements: int) -> None:
    emb, labels = huge_class_split()
    whole = retrieval_scores(emb, labels)
    chunked = retrieval_scores(emb, labels, chunk_elements=chunk_elements)
    assert chunked.as_metrics() == pytest.approx(whole.as_metrics(), abs=1e-12)


def test_queries_are_searched_only_as_deep_as_their_class_needs() -> None:
    sizes = np.repeat([2, 3, 50, 1, 200], [10, 9, 50, 5, 200])  # the class size of each row
    budget = 4_000
    chunks = list(_evaluation._query_chunks(sizes, 8, budget))
    rows = np.concatenate([r for r, _ in chunks])
    assert sorted(rows) == list(np.flatnonzero(sizes > 1))  # every scored query, once
    for chunk_rows, k in chunks:
        need = np.minimum(np.maximum(sizes[chunk_rows] - 1, 8), len(sizes) - 1)
        assert k >= need.max()  # enough neighbours for R and for recall@8
        assert k <= 2 * need.min()  # never twice deeper than a query of the chunk needs
        assert len(chunk_rows) == 1 or len(chunk_rows) * (k + 1) <= budget
    assert {k for _, k in chunks} == {8, 49, 199}  # PML would search every query 199 deep


def test_torch_search_gives_faiss_neighbours(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path CUDA embeddings take (`_torch_knn`), run on CPU against faiss's."""
    cases = [random_split(seed) for seed in range(4)] + [f() for f in EDGE_CASES.values()]
    faiss_scores = [retrieval_scores(emb, labels) for emb, labels in cases]
    monkeypatch.setattr(_evaluation, "_knn_for", lambda emb: _evaluation._torch_knn)
    for (emb, labels), want in zip(cases, faiss_scores, strict=True):
        got = retrieval_scores(emb, labels, chunk_elements=37)  # several distance blocks
        assert got.as_metrics() == pytest.approx(want.as_metrics(), abs=1e-12)


def test_drop_self_keeps_the_k_nearest_others() -> None:
    found = torch.tensor([[0, 1, 2], [0, 1, 2], [5, 6, 1], [2, 3, 4]])  # (Q, k + 1)
    rows = torch.tensor([0, 1, 2, 3])
    assert _evaluation._drop_self(found, rows).tolist() == [[1, 2], [0, 2], [5, 6], [2, 4]]


def test_worker_path_imports_neither_sklearn_nor_pml_accuracy_calculator() -> None:
    code = (
        "import sys, numpy as np\n"
        "from minesearch.train import retrieval_scores\n"
        "retrieval_scores(np.eye(4, dtype=np.float32), np.array([0, 0, 1, 1]))\n"
        "print(sorted(m for m in sys.modules if m.startswith('sklearn') or 'accuracy_calc' in m))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BENCH.parent,  # this checkout's minesearch, not an installed one
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert done.stdout.strip() == "[]"
