"""The catalog: every loss x miner trains, compatibility, name lookup and parameter checks."""

from __future__ import annotations

import itertools

import pytest
import torch

from minesearch import catalog
from minesearch.catalog import ParamInfo, UnknownNameError, did_you_mean

PAIRS = list(itertools.product(catalog.LOSSES, catalog.MINER_NAMES))


def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(16, 5, generator=gen)  # [B=16, 5]
    labels = torch.arange(4).repeat_interleave(4)  # 4 classes x 4 samples
    return inputs, labels


def default_params(params: dict[str, ParamInfo]) -> dict[str, float | str]:
    return {name: info.default for name, info in params.items()}


@pytest.mark.parametrize(("loss_name", "miner_name"), PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_every_combination_takes_an_optimisation_step(loss_name: str, miner_name: str) -> None:
    torch.manual_seed(0)
    info = catalog.miner_info(miner_name)
    loss_fn = catalog.build_loss(
        loss_name, default_params(dict(catalog.loss_info(loss_name).params))
    )
    miner = catalog.build_miner(miner_name, default_params(dict(info.params)) if info else {})
    assert (miner is None) == (miner_name == catalog.NO_MINER)
    model = torch.nn.Linear(5, 8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    inputs, labels = tiny_batch()

    embeddings = model(inputs)  # [16, 8]
    tuples = miner(embeddings, labels) if miner is not None else None
    loss = loss_fn(embeddings, labels, tuples)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    assert torch.isfinite(loss)
    assert loss.ndim == 0
    assert torch.isfinite(model.weight).all()
    if loss.item() > 0:  # a batch can yield zero tuples: loss 0, no gradient (PML#268)
        assert not torch.equal(model.weight, before)


@pytest.mark.parametrize(
    ("loss", "miner", "expected"),
    [
        ("TripletMarginLoss", "MultiSimilarityMiner", "converted"),
        ("TripletMarginLoss", "TripletMarginMiner", "native"),
        ("TripletMarginLoss", "BatchHardMiner", "native"),
        ("ContrastiveLoss", "MultiSimilarityMiner", "native"),
        ("ContrastiveLoss", "TripletMarginMiner", "converted"),
        ("MultiSimilarityLoss", "MultiSimilarityMiner", "native"),
        ("MultiSimilarityLoss", "BatchHardMiner", "converted"),
    ],
)
def test_compatibility(loss: str, miner: str, expected: str) -> None:
    assert catalog.compatibility(loss, miner) == expected


@pytest.mark.parametrize("loss", list(catalog.LOSSES))
def test_no_miner_is_native(loss: str) -> None:
    assert catalog.compatibility(loss, catalog.NO_MINER) == "native"


def test_tuple_kinds_match_pml_facts() -> None:
    assert catalog.LOSSES["TripletMarginLoss"].consumes == "triplets"
    assert catalog.LOSSES["ContrastiveLoss"].consumes == "pairs"
    assert catalog.LOSSES["MultiSimilarityLoss"].consumes == "pairs"
    assert catalog.MINERS["TripletMarginMiner"].emits == "triplets"
    assert catalog.MINERS["BatchHardMiner"].emits == "triplets"
    assert catalog.MINERS["MultiSimilarityMiner"].emits == "pairs"


def test_miner_output_shape_matches_declared_kind() -> None:
    inputs, labels = tiny_batch()
    embeddings = torch.nn.functional.normalize(inputs, dim=1)
    for name, info in catalog.MINERS.items():
        tuples = info.cls()(embeddings, labels)
        assert len(tuples) == (3 if info.emits == "triplets" else 4), name


def test_defaults_match_pml_constructors() -> None:
    """The catalog's defaults are what PML uses when the argument is not given."""
    infos: list[tuple[str, catalog.LossInfo | catalog.MinerInfo]] = [
        *catalog.LOSSES.items(),
        *catalog.MINERS.items(),
    ]
    for name, info in infos:
        obj = info.cls()
        for param, p in info.params.items():
            assert getattr(obj, param) == p.default, (name, param)


def test_unknown_loss_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        catalog.loss_info("TripletMarginLos")
    msg = str(info.value)
    assert "unknown loss 'TripletMarginLos'" in msg
    assert "did you mean 'TripletMarginLoss'?" in msg
    assert str(sorted(catalog.LOSSES)) in msg


def test_unknown_miner_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        catalog.miner_info("TripletMarginMinr")
    msg = str(info.value)
    assert "did you mean 'TripletMarginMiner'?" in msg
    assert "['none', 'TripletMarginMiner', 'BatchHardMiner', 'MultiSimilarityMiner']" in msg
    with pytest.raises(UnknownNameError):
        catalog.build_miner("Nope", {})
    with pytest.raises(UnknownNameError):
        catalog.compatibility("NopeLoss", "none")


def test_unknown_name_error_is_a_value_error() -> None:
    assert issubclass(UnknownNameError, ValueError)


def test_none_miner() -> None:
    assert catalog.miner_info("none") is None
    assert catalog.build_miner("none", {}) is None


def test_build_passes_parameters() -> None:
    loss = catalog.build_loss("ContrastiveLoss", {"pos_margin": 0.1, "neg_margin": 0.7})
    assert loss.pos_margin == 0.1 and loss.neg_margin == 0.7
    miner = catalog.build_miner(
        "TripletMarginMiner", {"margin": 0.3, "type_of_triplets": "semihard"}
    )
    assert miner is not None
    assert miner.margin == 0.3 and miner.type_of_triplets == "semihard"


# --- ParamInfo.check --------------------------------------------------------------------------


def test_param_info_check_numbers() -> None:
    info = ParamInfo(0.5, low=-1.0, high=1.0)
    assert info.check(0.0) is None
    assert info.check(-1.0) is None and info.check(1.0) is None  # bounds inclusive
    assert info.check(3) == "must be <= 1.0"  # ints are numbers too
    assert info.check(1.5) == "must be <= 1.0"
    assert info.check(-2) == "must be >= -1.0"
    assert info.check("0.5") == "must be a number"
    assert info.check(True) == "must be a number"  # bool is an int in Python, not a margin
    assert ParamInfo(1.0).check(1e9) is None  # no bounds


def test_param_info_check_choices() -> None:
    info = catalog.MINERS["TripletMarginMiner"].params["type_of_triplets"]
    for ok in catalog.TRIPLET_TYPES:
        assert info.check(ok) is None
    why = info.check("semi-hard")
    assert why is not None
    assert why.startswith("must be one of ['all', 'hard', 'semihard', 'easy']")
    assert why.endswith("(did you mean 'semihard'?)")
    assert info.check(1) == "must be one of ['all', 'hard', 'semihard', 'easy']"


# --- did_you_mean -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "valid", "expected"),
    [
        ("trian", ["train", "data"], " (did you mean 'train'?)"),
        ("TripletMarginMinr", list(catalog.MINER_NAMES), " (did you mean 'TripletMarginMiner'?)"),
        ("semi_hard", list(catalog.TRIPLET_TYPES), " (did you mean 'semihard'?)"),
        ("HARD", list(catalog.TRIPLET_TYPES), " (did you mean 'hard'?)"),
        ("zzz", ["train", "data"], ""),
        (3, ["train"], ""),
        ("x", [], ""),
    ],
)
def test_did_you_mean(given: object, valid: list[str], expected: str) -> None:
    assert did_you_mean(given, valid) == expected
