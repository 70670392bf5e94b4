"""Retrieval scores checked against a brute-force implementation written from the definitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from minesearch.train import RetrievalScores, retrieval_scores

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
