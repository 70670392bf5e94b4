"""The catalog: every usable loss x miner trains, kinds/defaults/distances agree with PML 2.9."""

from __future__ import annotations

import inspect
import itertools
import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import torch
from pytorch_metric_learning import distances, losses, miners
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from minesearch import catalog
from minesearch.catalog import ParamInfo, UnknownNameError, did_you_mean

# PML 2.9's own warnings: HistogramLoss indexes with a list, LargeMarginSoftmaxLoss calls scipy on
# tensors. Nothing minesearch can change.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning"),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
]

CLASSES, PER_CLASS, DIM = 4, 4, 8

ALL_PAIRS = list(itertools.product(catalog.LOSSES, catalog.MINER_NAMES))
USABLE = [
    (loss, miner)
    for loss, miner in ALL_PAIRS
    if catalog.compatibility(loss, miner, weight_miners=True) != "invalid"
]
ENTRIES: list[tuple[str, catalog.LossInfo | catalog.MinerInfo]] = [
    *catalog.LOSSES.items(),
    *catalog.MINERS.items(),
]


def _ids(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"{a}+{b}" for a, b in pairs]


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """CLASSES x PER_CLASS rows, class-contiguous like ClassBalancedBatches; classes overlap a bit.

    Pure noise would make hard miners pick negatives closer than every positive, where e.g.
    HistogramLoss has no gradient at all; real batches (and this one) have some class structure.
    """
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(CLASSES).repeat_interleave(PER_CLASS)  # [B=16]
    centers = torch.randn(CLASSES, DIM, generator=gen)
    return centers[labels] + torch.randn(len(labels), DIM, generator=gen), labels  # [16, 8]


INPUTS, LABELS = _batch()
EMBEDDINGS = torch.nn.functional.normalize(INPUTS, dim=1)  # [16, 8], fixed: no gradient needed


def defaults(params: Mapping[str, ParamInfo]) -> dict[str, Any]:
    return {name: info.default for name, info in params.items()}


def build_loss(name: str) -> torch.nn.Module:
    info = catalog.loss_info(name)
    return catalog.build_loss(name, defaults(info.params), CLASSES, DIM)


def build_miner(name: str) -> torch.nn.Module | None:
    info = catalog.miner_info(name)
    return catalog.build_miner(name, defaults(info.params) if info else {})


@pytest.mark.parametrize(("loss_name", "miner_name"), USABLE, ids=_ids(USABLE))
def test_every_usable_combination_takes_an_optimisation_step(
    loss_name: str, miner_name: str
) -> None:
    torch.manual_seed(0)
    loss_fn, miner = build_loss(loss_name), build_miner(miner_name)
    assert (miner is None) == (miner_name == catalog.NO_MINER)
    model = torch.nn.Linear(DIM, DIM)
    params = [*model.parameters(), *loss_fn.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.1)
    before = [p.detach().clone() for p in params]

    embeddings = torch.nn.functional.normalize(model(INPUTS), dim=1)  # [16, 8]
    tuples = miner(embeddings, LABELS) if miner is not None else None
    loss = loss_fn(embeddings, LABELS, tuples)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(torch.isfinite(p).all() for p in params)
    unchanged = [
        i for i, (b, p) in enumerate(zip(before, params, strict=True)) if torch.equal(b, p)
    ]
    assert not unchanged, f"parameters {unchanged} did not move (loss {loss.item():.4g})"


# --- compatibility ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "miner", "weight_miners", "expected"),
    [
        ("TripletMarginLoss", "MultiSimilarityMiner", False, "converted"),
        ("TripletMarginLoss", "TripletMarginMiner", False, "native"),
        ("TripletMarginLoss", "BatchHardMiner", False, "native"),
        ("ContrastiveLoss", "MultiSimilarityMiner", False, "native"),
        ("ContrastiveLoss", "TripletMarginMiner", False, "converted"),
        ("MultiSimilarityLoss", "MultiSimilarityMiner", False, "native"),
        ("MultiSimilarityLoss", "BatchHardMiner", False, "converted"),
        ("HistogramLoss", "PairMarginMiner", False, "converted"),
        ("ArcFaceLoss", "TripletMarginMiner", False, "invalid"),
        ("ArcFaceLoss", "TripletMarginMiner", True, "converted"),
        ("ArcFaceLoss", "MultiSimilarityMiner", True, "converted"),
        ("RankedListLoss", "BatchHardMiner", False, "invalid"),
        ("RankedListLoss", "BatchHardMiner", True, "invalid"),
        ("P2SGradLoss", "MultiSimilarityMiner", True, "invalid"),
    ],
)
def test_compatibility(loss: str, miner: str, weight_miners: bool, expected: str) -> None:
    assert catalog.compatibility(loss, miner, weight_miners) == expected


@pytest.mark.parametrize("loss", list(catalog.LOSSES))
def test_no_miner_is_native(loss: str) -> None:
    assert catalog.compatibility(loss, catalog.NO_MINER) == "native"
    assert catalog.compatibility(loss, catalog.NO_MINER, weight_miners=True) == "native"


def test_invalid_combinations_follow_the_policy() -> None:
    for loss, miner in ALL_PAIRS:
        kind = catalog.loss_info(loss).consumes
        strict = catalog.compatibility(loss, miner)
        relaxed = catalog.compatibility(loss, miner, weight_miners=True)
        if miner == catalog.NO_MINER or kind in ("pairs", "triplets"):
            assert strict == relaxed != "invalid", (loss, miner)
        elif kind == "weights":
            assert (strict, relaxed) == ("invalid", "converted"), (loss, miner)
        else:
            assert strict == relaxed == "invalid", (loss, miner)


# --- the declared kinds are what PML does -------------------------------------------------------

_CONVERTERS = {
    "pairs": "convert_to_pairs",
    "triplets": "convert_to_triplets",
    "weights": "convert_to_weights",
}


def _spy_on_converters(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Record which lmu converter each loss applies to a miner's output (also where imported)."""
    seen: set[str] = set()
    modules = [m for n, m in list(sys.modules.items()) if n.startswith("pytorch_metric_learning")]
    for kind, fn_name in _CONVERTERS.items():
        original = getattr(lmu, fn_name)

        def spy(
            indices_tuple: Any, *args: Any, _f: Callable = original, _k: str = kind, **kw: Any
        ) -> Any:
            if indices_tuple is not None:
                seen.add(_k)
            return _f(indices_tuple, *args, **kw)

        for module in modules:
            if getattr(module, fn_name, None) is original:
                monkeypatch.setattr(module, fn_name, spy)
    return seen


@pytest.mark.parametrize("loss_name", list(catalog.LOSSES))
@pytest.mark.parametrize("miner_name", ["BatchHardMiner", "MultiSimilarityMiner"])
def test_declared_kind_is_what_pml_does_with_miner_output(
    loss_name: str, miner_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    loss_fn, miner = build_loss(loss_name), build_miner(miner_name)
    assert miner is not None
    tuples = miner(EMBEDDINGS, LABELS)
    kind = catalog.loss_info(loss_name).consumes
    seen = _spy_on_converters(monkeypatch)
    if kind == "none":
        with pytest.raises(ValueError, match="indices_tuple is not supported"):
            loss_fn(EMBEDDINGS, LABELS, tuples)
        return
    loss_fn(EMBEDDINGS, LABELS, tuples)
    assert seen == {kind}


@pytest.mark.parametrize("name", list(catalog.MINERS))
def test_miner_output_shape_matches_declared_kind(name: str) -> None:
    miner = build_miner(name)
    assert miner is not None
    tuples = miner(EMBEDDINGS, LABELS)
    assert len(tuples) == (3 if catalog.MINERS[name].emits == "triplets" else 4)
    assert len(tuples[0]) > 0, "the tiny batch should yield tuples for every miner"


def test_tuple_kinds_match_design_facts() -> None:
    """DESIGN §5, checked against the registry (the two tests above check it against PML)."""
    kinds = {name: info.emits for name, info in catalog.MINERS.items()}
    assert {n for n, k in kinds.items() if k == "triplets"} == {
        "TripletMarginMiner",
        "BatchHardMiner",
        "AngularMiner",
        "DistanceWeightedMiner",
    }
    consumes = {name: info.consumes for name, info in catalog.LOSSES.items()}
    for name in ["ContrastiveLoss", "MultiSimilarityLoss", "CircleLoss", "NTXentLoss"]:
        assert consumes[name] == "pairs"
    for name in ["TripletMarginLoss", "MarginLoss", "DynamicSoftMarginLoss", "HistogramLoss"]:
        assert consumes[name] == "triplets"
    for name in ["ArcFaceLoss", "ProxyAnchorLoss", "SoftTripleLoss", "NormalizedSoftmaxLoss"]:
        assert consumes[name] == "weights"
    for name in ["InstanceLoss", "PNPLoss", "P2SGradLoss", "RankedListLoss"]:
        assert consumes[name] == "none"


# --- defaults, distances, trainable: as in PML ----------------------------------------------------


def pml_default(cls: type, name: str) -> Any:
    """The default of constructor argument `name`, following **kwargs up to where it is defined."""
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is not None and name in inspect.signature(init).parameters:
            return inspect.signature(init).parameters[name].default
    raise AssertionError(f"{cls.__name__} has no constructor argument {name!r}")


@pytest.mark.parametrize(("name", "info"), ENTRIES, ids=[n for n, _ in ENTRIES])
def test_defaults_match_pml_signatures(name: str, info: Any) -> None:
    for param, p in info.params.items():
        pml = pml_default(info.cls, param)
        if pml is inspect.Parameter.empty or pml is None:
            assert p.default_note, f"{name}.{param}: PML has no default; say where ours is from"
        else:
            assert p.default == pml, (name, param)
            assert p.default_note is None, (name, param)
        assert p.check(p.default) is None, (name, param)
        assert not p.integer or isinstance(p.default, int), (name, param)


@pytest.mark.parametrize(("name", "info"), list(catalog.LOSSES.items()), ids=list(catalog.LOSSES))
def test_loss_constructor_arguments_exist(name: str, info: catalog.LossInfo) -> None:
    for arg in [*info.sizes, *info.fixed]:
        pml_default(info.cls, arg)  # raises when the argument does not exist


def _distance_name(distance: torch.nn.Module) -> str:
    if isinstance(distance, distances.SNRDistance):
        return "snr"
    if isinstance(distance, distances.CosineSimilarity):  # a DotProductSimilarity: check first
        return "cosine"
    if isinstance(distance, distances.DotProductSimilarity):
        return "dot"
    assert isinstance(distance, distances.LpDistance)
    return {1: "lp", 2: "squared_lp"}[distance.power]


COMPUTES_OWN_DISTANCE = {"P2SGradLoss"}  # cosines by hand; its (unused) PML distance is Lp


@pytest.mark.parametrize(("name", "info"), ENTRIES, ids=[n for n, _ in ENTRIES])
def test_distance_is_pml_default(name: str, info: Any) -> None:
    obj = build_loss(name) if name in catalog.LOSSES else build_miner(name)
    assert obj is not None
    distance: Any = obj.distance
    assert distance.normalize_embeddings
    if name not in COMPUTES_OWN_DISTANCE:
        assert _distance_name(distance) == info.distance


@pytest.mark.parametrize("name", list(catalog.LOSSES))
def test_trainable_iff_the_loss_owns_parameters(name: str) -> None:
    info = catalog.loss_info(name)
    assert any(True for _ in build_loss(name).parameters()) == info.trainable
    assert bool(info.sizes) == info.trainable


def test_pml_choice_lists_match() -> None:
    assert set(catalog.STRATEGIES) == set(miners.BatchEasyHardMiner.all_batch_mining_strategies)
    assert catalog.LOSSES["PNPLoss"].params["variant"].choices == tuple(losses.PNPLoss.VARIANTS)


# --- building -----------------------------------------------------------------------------------


def test_build_passes_parameters() -> None:
    loss = catalog.build_loss("ContrastiveLoss", {"pos_margin": 0.1, "neg_margin": 0.7})
    assert loss.pos_margin == 0.1 and loss.neg_margin == 0.7
    miner = catalog.build_miner(
        "TripletMarginMiner", {"margin": 0.3, "type_of_triplets": "semihard"}
    )
    assert miner is not None
    assert miner.margin == 0.3 and miner.type_of_triplets == "semihard"


def test_build_trainable_loss_needs_sizes() -> None:
    with pytest.raises(ValueError, match=r"ArcFaceLoss .* needs num_classes and embedding_size"):
        catalog.build_loss("ArcFaceLoss", {})
    with pytest.raises(ValueError, match="needs embedding_size"):
        catalog.build_loss("ProxyAnchorLoss", {}, num_classes=4)
    p2s: Any = catalog.build_loss("P2SGradLoss", {}, num_classes=5, embedding_size=7)
    assert tuple(p2s.weight.shape) == (7, 5)
    margin: Any = catalog.build_loss("MarginLossLearnedBeta", {}, num_classes=5)
    assert margin.learn_beta and tuple(margin.beta.shape) == (5,)
    plain = catalog.build_loss("TripletMarginLoss", {}, num_classes=5, embedding_size=7)
    assert not list(plain.parameters())  # sizes are ignored by losses without parameters


def test_build_checks_parameters_and_makes_integers() -> None:
    loss = catalog.build_loss("SoftTripleLoss", {"centers_per_class": 3.0}, 4, 8)
    assert loss.centers_per_class == 3 and isinstance(loss.centers_per_class, int)
    with pytest.raises(ValueError, match=r"SoftTripleLoss.centers_per_class: 2.5 must be an int"):
        catalog.build_loss("SoftTripleLoss", {"centers_per_class": 2.5}, 4, 8)
    with pytest.raises(ValueError, match=r"unknown parameter 'margn' .*did you mean 'margin'"):
        catalog.build_loss("TripletMarginLoss", {"margn": 0.1})
    with pytest.raises(ValueError, match=r"temperature: 0 must be > 0\.0"):
        catalog.build_loss("NTXentLoss", {"temperature": 0})
    with pytest.raises(ValueError, match="type_of_triplets: 'semi-hard' must be one of"):
        catalog.build_miner("TripletMarginMiner", {"type_of_triplets": "semi-hard"})


@pytest.mark.parametrize(
    ("pos", "neg"), list(itertools.product(catalog.STRATEGIES, catalog.STRATEGIES))
)
def test_batch_easy_hard_constraint_mirrors_pml(pos: str, neg: str) -> None:
    params = {"pos_strategy": pos, "neg_strategy": neg}
    info = catalog.MINERS["BatchEasyHardMiner"]
    errors = catalog.constructor_errors("BatchEasyHardMiner", info.params, params, info.constraint)
    try:
        miners.BatchEasyHardMiner(**params)
    except ValueError:
        assert errors
        with pytest.raises(ValueError, match="BatchEasyHardMiner: "):
            catalog.build_miner("BatchEasyHardMiner", params)
    else:
        assert not errors


# --- registry completeness and exclusions ---------------------------------------------------------


def test_every_pml_class_is_catalogued_or_excluded() -> None:
    """A new PML release that adds a loss or miner fails here until it is classified."""
    pml = {n for module in (losses, miners) for n, _ in inspect.getmembers(module, inspect.isclass)}
    catalogued = {info.cls.__name__ for _, info in ENTRIES}
    assert pml == catalogued | set(catalog.EXCLUDED)
    assert not catalogued & set(catalog.EXCLUDED)
    assert not set(catalog.EXCLUDED) & {*catalog.LOSSES, *catalog.MINERS}
    assert all(reason for reason in catalog.EXCLUDED.values())


def test_excluded_losses_cannot_run_on_a_labelled_batch() -> None:
    with pytest.raises(ValueError, match="labels"):
        losses.ManifoldLoss(l=DIM)(EMBEDDINGS, LABELS)
    with pytest.raises(ValueError, match="labels"):
        losses.VICRegLoss()(EMBEDDINGS, LABELS)
    packaged = miners.EmbeddingsAlreadyPackagedAsTriplets()
    with pytest.raises(AssertionError):
        packaged(EMBEDDINGS, LABELS)  # 16 rows are not whole (a, p, n) triples
    a, _, n = packaged(EMBEDDINGS[:12], LABELS[:12])
    assert (LABELS[a] == LABELS[n]).any()  # "negatives" of the anchor's own class


# --- PML limitations the catalog records --------------------------------------------------------


def _smooth_ap_reference(embeddings: torch.Tensor, labels: torch.Tensor, tau: float) -> float:
    """Smooth-AP (Brown et al. 2020) by brute force: the query itself counts as a positive."""
    normed = torch.nn.functional.normalize(embeddings, dim=1)
    sims = normed @ normed.T  # [B, B] cosine similarities
    aps = []
    for q in range(len(labels)):
        pos = (labels == labels[q]).nonzero().flatten().tolist()
        ratios = []
        for k in pos:
            ahead = torch.sigmoid((sims[q] - sims[q, k]) / tau)  # [B]
            ahead[k] = 0
            ratios.append((1 + ahead[pos].sum()) / (1 + ahead.sum()))
        aps.append(torch.stack(ratios).mean())
    return float(1 - torch.stack(aps).mean())


@pytest.mark.parametrize(("classes", "per_class"), [(4, 4), (8, 4), (3, 5)])
def test_smooth_ap_is_right_only_on_square_batches(classes: int, per_class: int) -> None:
    gen = torch.Generator().manual_seed(1)
    embeddings = torch.randn(classes * per_class, DIM, generator=gen)
    labels = torch.arange(classes).repeat_interleave(per_class)
    pml = float(losses.SmoothAPLoss()(embeddings, labels))
    right = abs(pml - _smooth_ap_reference(embeddings, labels, 0.01)) < 1e-5
    assert right == (catalog.batch_error("SmoothAPLoss", classes, per_class) is None)
    assert catalog.batch_error("TripletMarginLoss", classes, per_class) is None


def test_noted_pml_crashes_still_happen() -> None:
    """If PML fixes these, drop the notes on HistogramLoss and DynamicSoftMarginLoss."""
    duplicated = EMBEDDINGS.clone()
    duplicated[1] = duplicated[0]  # a class drawn with replacement: cosine similarity 1
    with pytest.raises(RuntimeError, match="out of bounds"):
        build_loss("HistogramLoss")(duplicated, LABELS)
    extreme = torch.zeros(4, DIM)
    extreme[:, 0] = torch.tensor([1.0, -1.0, 1.0, 1.0])  # d(a, p) = 2, d(a, n) = 0
    with pytest.raises(RuntimeError, match="out of bounds"):
        build_loss("DynamicSoftMarginLoss")(extreme, torch.tensor([0, 0, 1, 1]))


# --- names --------------------------------------------------------------------------------------


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
    assert str(list(catalog.MINER_NAMES)) in msg
    assert catalog.MINER_NAMES[0] == catalog.NO_MINER
    with pytest.raises(UnknownNameError):
        catalog.build_miner("Nope", {})
    with pytest.raises(UnknownNameError):
        catalog.compatibility("NopeLoss", "none")
    with pytest.raises(UnknownNameError):
        catalog.batch_error("NopeLoss", 4, 4)


def test_unknown_name_error_is_a_value_error() -> None:
    assert issubclass(UnknownNameError, ValueError)


def test_none_miner() -> None:
    assert catalog.miner_info("none") is None
    assert catalog.build_miner("none", {}) is None


def test_entry_names_can_be_scoped_keys() -> None:
    """`Class.param` keys of a space file split on the first dot."""
    assert not any("." in name for name in [*catalog.LOSSES, *catalog.MINERS])


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
    assert info.check(float("nan")) == "must be a finite number"
    assert ParamInfo(1.0).check(1e9) is None  # no bounds


def test_param_info_check_open_bounds_and_integers() -> None:
    positive = ParamInfo(0.1, low=0.0, low_open=True)
    assert positive.check(0.0) == "must be > 0.0" and positive.check(1e-9) is None
    below = ParamInfo(40, low=0.0, high=90.0, high_open=True)
    assert below.check(90) == "must be < 90.0" and below.check(89.9) is None
    count = ParamInfo(10, low=1, integer=True)
    assert count.check(3) is None and count.check(3.0) is None  # a YAML range end is a float
    assert count.check(2.5) == "must be an integer"
    assert count.check(0) == "must be >= 1"


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
