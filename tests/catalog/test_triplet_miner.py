"""The catalog's TripletMarginMiner gives PML's triplets, in PML's order, in bounded memory."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import torch
from pytorch_metric_learning import distances, miners
from pytorch_metric_learning.utils import distributed as pml_dist

from minesearch import catalog
from minesearch.catalog._triplet_miner import TripletMarginMiner

TYPES = ("all", "hard", "semihard", "easy")
MARGINS = (0.0, 0.05, 0.2, 1.0)
Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def batches() -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """Seeded batches: uneven classes, exact ties, duplicates, one class, no positive pair."""
    for seed in range(6):
        gen = torch.Generator().manual_seed(seed)
        size = int(torch.randint(8, 70, (1,), generator=gen))
        labels = torch.randint(0, int(torch.randint(2, 9, (1,), generator=gen)), (size,))
        yield f"random{seed}", torch.randn(size, 6, generator=gen), labels
    axes = torch.cat([torch.eye(4), -torch.eye(4)])  # all distances 0, sqrt(2) or 2: exact ties
    yield "axes", torch.cat([axes, axes, axes[:3]]), torch.arange(19) % 3
    gen = torch.Generator().manual_seed(10)
    base = torch.randn(5, 6, generator=gen)
    yield "duplicates", base[torch.randint(0, 5, (40,), generator=gen)], torch.arange(40) % 4
    yield "one class", torch.randn(12, 6, generator=gen), torch.zeros(12, dtype=torch.long)
    yield "no positive pair", torch.randn(7, 6, generator=gen), torch.arange(7)
    yield (
        "class-contiguous",
        torch.randn(32, 6, generator=gen),
        torch.arange(4).repeat_interleave(8),
    )


BATCHES = list(batches())
IDS = [name for name, _, _ in BATCHES]


def assert_same(got: Triplets, want: Triplets) -> None:
    assert len(got) == 3
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype == torch.int64
        assert g.device == w.device
        assert torch.equal(g, w)  # the same triplets, in the same order


@pytest.mark.parametrize(("name", "emb", "labels"), BATCHES, ids=IDS)
@pytest.mark.parametrize("type_of_triplets", TYPES)
def test_same_triplets_as_pml(
    name: str, emb: torch.Tensor, labels: torch.Tensor, type_of_triplets: str
) -> None:
    for margin in MARGINS:
        pml = miners.TripletMarginMiner(margin=margin, type_of_triplets=type_of_triplets)
        want = pml(emb, labels)
        # Blocks of a few pairs, all pairs at once, and one pair (slow: the small batches only).
        one_pair = margin == 0.2 and not name.startswith("random")
        for chunk_elements in (500, 2**22, 1) if one_pair else (500, 2**22):
            ours = TripletMarginMiner(
                margin=margin, type_of_triplets=type_of_triplets, chunk_elements=chunk_elements
            )
            assert_same(ours(emb, labels), want)


def test_batches_exercise_every_outcome() -> None:
    """The comparison above is not vacuous: each type mines triplets somewhere, and the axes
    batch has triplets exactly on the threshold m = 0 (hard keeps them, semihard does not)."""
    for type_of_triplets in TYPES:
        mined = [
            len(miners.TripletMarginMiner(type_of_triplets=type_of_triplets)(e, y)[0])
            for _, e, y in BATCHES
        ]
        assert sum(mined) > 0, type_of_triplets
    _, axes, labels = BATCHES[IDS.index("axes")]
    hard = miners.TripletMarginMiner(margin=0.0, type_of_triplets="hard")(axes, labels)
    dist = torch.cdist(axes, axes)
    on_zero = dist[hard[0], hard[2]] == dist[hard[0], hard[1]]
    assert on_zero.any()


@pytest.mark.parametrize("type_of_triplets", TYPES)
def test_same_triplets_with_a_reference_set(type_of_triplets: str) -> None:
    gen = torch.Generator().manual_seed(3)
    emb, labels = torch.randn(20, 5, generator=gen), torch.randint(0, 4, (20,), generator=gen)
    ref_emb, ref_labels = (
        torch.randn(33, 5, generator=gen),
        torch.randint(0, 4, (33,), generator=gen),
    )
    for margin in MARGINS:
        pml = miners.TripletMarginMiner(margin=margin, type_of_triplets=type_of_triplets)
        ours = TripletMarginMiner(
            margin=margin, type_of_triplets=type_of_triplets, chunk_elements=40
        )
        assert_same(ours(emb, labels, ref_emb, ref_labels), pml(emb, labels, ref_emb, ref_labels))
        # The batch passed as its own reference: PML keeps (a, a) as a positive pair then.
        assert_same(
            ours(emb, labels, emb.clone(), labels.clone()),
            pml(emb, labels, emb.clone(), labels.clone()),
        )


@pytest.mark.parametrize("type_of_triplets", TYPES)
def test_same_triplets_with_a_similarity(type_of_triplets: str) -> None:
    """An inverted distance flips the margin (d(a, p) - d(a, n)), in both."""
    _, emb, labels = BATCHES[0]
    for margin in MARGINS:
        kwargs = {"margin": margin, "type_of_triplets": type_of_triplets}
        pml = miners.TripletMarginMiner(distance=distances.CosineSimilarity(), **kwargs)
        ours = TripletMarginMiner(distance=distances.CosineSimilarity(), **kwargs)
        assert_same(ours(emb, labels), pml(emb, labels))


@pytest.mark.parametrize(("name", "emb", "labels"), BATCHES, ids=IDS)
def test_same_stats_as_pml(name: str, emb: torch.Tensor, labels: torch.Tensor) -> None:
    pml = miners.TripletMarginMiner(margin=0.1, collect_stats=True)
    ours = TripletMarginMiner(margin=0.1, collect_stats=True, chunk_elements=64)
    pml(emb, labels)
    ours(emb, labels)
    for stat in ("pos_pair_dist", "neg_pair_dist", "avg_triplet_margin", "num_triplets"):
        assert getattr(ours, stat) == pytest.approx(
            getattr(pml, stat), rel=1e-5, abs=1e-6, nan_ok=True
        )
    assert ours.num_triplets_before_cap == pml.num_triplets


@pytest.mark.parametrize("efficient", [False, True])
def test_same_triplets_under_pml_distributed_miner_wrapper(
    efficient: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ranks without processes: this rank's batch plus the other rank's, as all_gather gives."""
    gen = torch.Generator().manual_seed(7)
    emb, labels = torch.randn(16, 6, generator=gen), torch.arange(4).repeat_interleave(4)
    other_emb, other_labels = (
        torch.randn(16, 6, generator=gen),
        torch.arange(2, 6).repeat_interleave(4),
    )
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *args: 2)
    monkeypatch.setattr(
        pml_dist, "all_gather_embeddings_and_labels", lambda e, y: (other_emb, other_labels)
    )
    for type_of_triplets in TYPES:
        want = pml_dist.DistributedMinerWrapper(
            miners.TripletMarginMiner(type_of_triplets=type_of_triplets), efficient=efficient
        )(emb, labels)
        got = pml_dist.DistributedMinerWrapper(
            TripletMarginMiner(type_of_triplets=type_of_triplets, chunk_elements=32),
            efficient=efficient,
        )(emb, labels)
        assert len(want[0]) > 0
        assert_same(got, want)


def test_blocks_bound_the_working_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """No (pairs x references) mask is larger than chunk_elements (nor the B^3 PML builds)."""
    sizes: list[int] = []
    original = TripletMarginMiner._mined

    def spy(self: TripletMarginMiner, *args: torch.Tensor) -> torch.Tensor:
        mined = original(self, *args)
        sizes.append(mined.numel())
        return mined

    monkeypatch.setattr(TripletMarginMiner, "_mined", spy)
    emb, labels = torch.randn(128, 8), torch.arange(16).repeat_interleave(8)
    TripletMarginMiner(chunk_elements=1_000)(emb, labels)
    assert len(sizes) > 2 and max(sizes) <= 1_000


def test_cap_keeps_a_uniform_sample_in_pml_order(caplog: pytest.LogCaptureFixture) -> None:
    gen = torch.Generator().manual_seed(5)
    emb, labels = torch.randn(24, 4, generator=gen), torch.arange(6).repeat_interleave(4)
    want = miners.TripletMarginMiner(margin=0.5)(emb, labels)
    total = len(want[0])
    position = {t: i for i, t in enumerate(map(tuple, torch.stack(want, dim=1).tolist()))}
    cap = total // 4
    miner = TripletMarginMiner(margin=0.5, max_triplets=cap, chunk_elements=150, collect_stats=True)
    torch.manual_seed(0)
    chosen = torch.zeros(total)
    draws = 200
    with caplog.at_level(logging.WARNING, logger="minesearch.catalog._triplet_miner"):
        for _ in range(draws):
            got = miner(emb, labels)
            rows = [tuple(t) for t in torch.stack(got, dim=1).tolist()]
            assert len(rows) == cap and len(set(rows)) == cap  # exactly cap, no repeats
            assert set(rows) <= position.keys()  # PML's triplets only
            indices = [position[t] for t in rows]
            assert indices == sorted(indices)  # in PML's order
            chosen[indices] += 1
    assert miner.num_triplets_before_cap == total
    assert len([r for r in caplog.records if "max_triplets" in r.getMessage()]) == 1  # once
    # Uniform: each triplet is kept with probability cap/total (binomial: within 5 sd).
    p = cap / total
    sd = (draws * p * (1 - p)) ** 0.5
    assert (chosen - draws * p).abs().max() < 5 * sd
    assert chosen.min() > 0
    # Reproducible from torch's seed.
    torch.manual_seed(1)
    first = miner(emb, labels)
    torch.manual_seed(1)
    assert_same(miner(emb, labels), first)


def test_no_cap_below_max_triplets_and_none_disables_it() -> None:
    _, emb, labels = BATCHES[0]
    want = miners.TripletMarginMiner()(emb, labels)
    assert_same(TripletMarginMiner(max_triplets=len(want[0]))(emb, labels), want)
    assert_same(TripletMarginMiner(max_triplets=None)(emb, labels), want)
    assert (
        len(TripletMarginMiner(max_triplets=len(want[0]) - 1)(emb, labels)[0]) == len(want[0]) - 1
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type_of_triplets": "semi-hard"}, "type_of_triplets must be one of"),
        ({"max_triplets": 0}, "max_triplets must be positive"),
        ({"chunk_elements": 0}, "chunk_elements must be positive"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TripletMarginMiner(**kwargs)  # type: ignore[arg-type]


def test_catalog_builds_this_miner() -> None:
    miner = catalog.build_miner("TripletMarginMiner", {"margin": 0.3, "type_of_triplets": "hard"})
    assert type(miner) is TripletMarginMiner
    assert isinstance(miner, miners.BaseMiner)  # PML's wrappers require it
    assert catalog.miner_info("TripletMarginMiner").cls is TripletMarginMiner
    assert catalog.miner_info("BatchHardMiner").cls is miners.BatchHardMiner
