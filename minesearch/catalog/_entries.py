"""The registry data: every PML 2.9 loss and miner minesearch can search, and what was left out.

Kinds, defaults and distances were read from PML's source and checked by running each class
(tests/catalog/test_catalog.py). Defaults equal PML's constructor defaults unless `default_note`
says why. Classes are named, not imported: `minesearch validate` and `minesearch catalog` read this
registry and must not pay for importing torch; `LossInfo.cls` resolves a name when a loss is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minesearch.catalog._types import (
    NO_MINER,
    LossInfo,
    MinerInfo,
    ParamInfo,
    Size,
)


def _nonneg(default: float) -> ParamInfo:
    return ParamInfo(default, low=0.0)


def _positive(default: float) -> ParamInfo:
    return ParamInfo(default, low=0.0, low_open=True)


def _fraction(default: float) -> ParamInfo:
    return ParamInfo(default, low=0.0, high=1.0)


def _count(default: int) -> ParamInfo:
    return ParamInfo(default, low=1, integer=True)


def _degrees(default: float) -> ParamInfo:
    return ParamInfo(default, low=0.0, high=90.0)


def _square_batch(classes: int, per_class: int) -> str | None:
    """PML 2.9's SmoothAPLoss views the batch as (B // n_classes) groups: right only if equal."""
    if classes == per_class:
        return None
    return (
        f"needs classes == per_class in each batch it sees (PML 2.9 groups the batch wrongly "
        f"otherwise and computes a different AP silently); got classes={classes}, "
        f"per_class={per_class}"
    )


_CLASSIFIER: Mapping[str, Size] = {"num_classes": "num_classes", "embedding_size": "embedding_size"}
_MARGINS = {"pos_margin": _nonneg(0), "neg_margin": _nonneg(1)}

LOSSES: Mapping[str, LossInfo] = {
    # --- consume triplets (PML joins pairs into triplets: P x N per anchor, can explode) ------
    "TripletMarginLoss": LossInfo("TripletMarginLoss", "triplets", {"margin": _nonneg(0.05)}),
    "DynamicSoftMarginLoss": LossInfo(
        "DynamicSoftMarginLoss",
        "triplets",
        {"num_bins": _count(10), "momentum": _fraction(0.01)},
        note="PML 2.9 fails ('index out of bounds') when a triplet has d(a,p) - d(a,n) >= 1.6 "
        "(its top bin), common with very low embedding dims; a trial can fail mid-training",
    ),
    "HistogramLoss": LossInfo(
        "HistogramLoss",
        "triplets",
        {"n_bins": ParamInfo(100, low=1, integer=True, default_note="PML: None -> 100 bins")},
        distance="cosine",
        note="PML 2.9 fails ('index out of bounds') when a positive pair has cosine similarity 1 "
        "(duplicate samples, e.g. a class drawn with replacement); no gradient where mined "
        "positive and negative similarities do not overlap (hard mining, untrained model)",
    ),
    "MarginLoss": LossInfo(
        "MarginLoss", "triplets", {"margin": _nonneg(0.2), "beta": _nonneg(1.2)}
    ),
    "MarginLossLearnedBeta": LossInfo(
        "MarginLoss",
        "triplets",
        {"margin": _nonneg(0.2), "nu": _nonneg(0), "beta": _nonneg(1.2)},
        trainable=True,
        sizes={"num_classes": "num_classes"},
        fixed={"learn_beta": True},
        note="MarginLoss with one learned beta per class (learn_beta=True); beta is its start",
    ),
    # --- consume pairs (PML splits triplets into (a, p) and (a, n) pairs) ---------------------
    "ContrastiveLoss": LossInfo("ContrastiveLoss", "pairs", dict(_MARGINS)),
    "MultiSimilarityLoss": LossInfo(
        "MultiSimilarityLoss",
        "pairs",
        {
            "alpha": _nonneg(2.0),
            "beta": _nonneg(50.0),
            "base": ParamInfo(0.5, low=-1.0, high=1.0),
        },
        distance="cosine",
    ),
    "AngularLoss": LossInfo(
        "AngularLoss",
        "pairs",
        {"alpha": ParamInfo(40, low=0.0, high=90.0, high_open=True)},
        note="uses the miner's positive pairs only; negatives are every other-class sample",
    ),
    "CircleLoss": LossInfo(
        "CircleLoss",
        "pairs",
        {"m": _fraction(0.4), "gamma": _positive(80)},
        distance="cosine",
    ),
    "GeneralizedLiftedStructureLoss": LossInfo(
        "GeneralizedLiftedStructureLoss", "pairs", dict(_MARGINS)
    ),
    "IntraPairVarianceLoss": LossInfo(
        "IntraPairVarianceLoss",
        "pairs",
        {"pos_eps": _fraction(0.01), "neg_eps": _fraction(0.01)},
        distance="cosine",
    ),
    "LiftedStructureLoss": LossInfo("LiftedStructureLoss", "pairs", dict(_MARGINS)),
    "NPairsLoss": LossInfo(
        "NPairsLoss",
        "pairs",
        distance="dot",
        note="keeps one positive pair per class; the other pairs' positives are its negatives",
    ),
    "NTXentLoss": LossInfo(
        "NTXentLoss", "pairs", {"temperature": _positive(0.07)}, distance="cosine"
    ),
    "SignalToNoiseRatioContrastiveLoss": LossInfo(
        "SignalToNoiseRatioContrastiveLoss", "pairs", dict(_MARGINS), distance="snr"
    ),
    "SupConLoss": LossInfo(
        "SupConLoss", "pairs", {"temperature": _positive(0.1)}, distance="cosine"
    ),
    "ThresholdConsistentMarginLoss": LossInfo(
        "ThresholdConsistentMarginLoss",
        "pairs",
        {
            "lambda_plus": _nonneg(1.0),
            "lambda_minus": _nonneg(1.0),
            "margin_plus": ParamInfo(0.9, low=-1.0, high=1.0),
            "margin_minus": ParamInfo(0.5, low=-1.0, high=1.0),
        },
        distance="cosine",
        note="the paper adds it to another loss as a regulariser; alone it is a contrastive "
        "loss on cosine thresholds",
    ),
    "TupletMarginLoss": LossInfo(
        "TupletMarginLoss",
        "pairs",
        {"margin": _degrees(5.73), "scale": _positive(64)},
        distance="cosine",
    ),
    # --- turn a miner's output into sample weights (proxy / classification / AP losses) --------
    "ArcFaceLoss": LossInfo(
        "ArcFaceLoss",
        "weights",
        {"margin": _degrees(28.6), "scale": _positive(64)},
        trainable=True,
        distance="cosine",
        sizes=_CLASSIFIER,
    ),
    "CosFaceLoss": LossInfo(
        "CosFaceLoss",
        "weights",
        {"margin": _fraction(0.35), "scale": _positive(64)},
        trainable=True,
        distance="cosine",
        sizes=_CLASSIFIER,
    ),
    "FastAPLoss": LossInfo(
        "FastAPLoss", "weights", {"num_bins": _count(10)}, distance="squared_lp"
    ),
    "LargeMarginSoftmaxLoss": LossInfo(
        "LargeMarginSoftmaxLoss",
        "weights",
        {"margin": _count(4), "scale": _positive(1)},
        trainable=True,
        distance="cosine",
        sizes=_CLASSIFIER,
    ),
    "NCALoss": LossInfo(
        "NCALoss", "weights", {"softmax_scale": _positive(1)}, distance="squared_lp"
    ),
    "NormalizedSoftmaxLoss": LossInfo(
        "NormalizedSoftmaxLoss",
        "weights",
        {"temperature": _positive(0.05)},
        trainable=True,
        distance="dot",
        sizes=_CLASSIFIER,
    ),
    "ProxyAnchorLoss": LossInfo(
        "ProxyAnchorLoss",
        "weights",
        {"margin": _nonneg(0.1), "alpha": _positive(32)},
        trainable=True,
        distance="cosine",
        sizes=_CLASSIFIER,
        note="a miner's weights enter as (weight - 1) inside the exponent: unmined samples are "
        "down-weighted, not dropped",
    ),
    "ProxyNCALoss": LossInfo(
        "ProxyNCALoss",
        "weights",
        {"softmax_scale": _positive(1)},
        trainable=True,
        distance="squared_lp",
        sizes=_CLASSIFIER,
    ),
    "SmoothAPLoss": LossInfo(
        "SmoothAPLoss",
        "weights",
        {"temperature": _positive(0.01)},
        distance="cosine",
        batch_rule=_square_batch,
        note="needs a class-contiguous batch with classes == per_class; memory grows as B^3",
    ),
    "SoftTripleLoss": LossInfo(
        "SoftTripleLoss",
        "weights",
        {
            "centers_per_class": _count(10),
            "la": _positive(20),
            "gamma": _positive(0.1),
            "margin": _nonneg(0.01),
        },
        trainable=True,
        distance="cosine",
        sizes=_CLASSIFIER,
    ),
    "SphereFaceLoss": LossInfo(
        "SphereFaceLoss",
        "weights",
        {"margin": _count(4), "scale": _positive(1)},
        trainable=True,
        distance="cosine",
        sizes=_CLASSIFIER,
    ),
    "SubCenterArcFaceLoss": LossInfo(
        "SubCenterArcFaceLoss",
        "weights",
        {"margin": _degrees(28.6), "scale": _positive(64), "sub_centers": _count(3)},
        trainable=True,
        distance="cosine",
        sizes=_CLASSIFIER,
    ),
    # --- reject any miner output (ValueError "indices_tuple is not supported") -----------------
    "InstanceLoss": LossInfo("InstanceLoss", "none", {"gamma": _positive(64)}, distance="cosine"),
    "P2SGradLoss": LossInfo(
        "P2SGradLoss",
        "none",
        trainable=True,
        distance="cosine",  # computes cosines itself; its (unused) PML distance is LpDistance
        sizes={"num_classes": "num_classes", "descriptors_dim": "embedding_size"},
    ),
    "PNPLoss": LossInfo(
        "PNPLoss",
        "none",
        {
            "b": _positive(2),
            "alpha": _positive(1),
            "anneal": _positive(0.01),
            "variant": ParamInfo("O", choices=("Ds", "Dq", "Iu", "Ib", "O")),
        },
        distance="cosine",
        note="b is used by variant Ib only, alpha by Dq only; memory grows as B^3",
    ),
    "RankedListLoss": LossInfo(
        "RankedListLoss",
        "none",
        {
            "margin": ParamInfo(0.4, low=0.0, default_note="PML: required; 0.4 as in the paper"),
            "Tn": ParamInfo(
                1.0, low=0.0, default_note="PML: required (warns above 5); 1.0 by minesearch"
            ),
            "imbalance": _fraction(0.5),
            "Tp": _nonneg(0),
        },
        note="alpha is left to PML (1 + margin / 2, the paper's RLL-Simpler)",
    ),
}

TRIPLET_TYPES = ("all", "hard", "semihard", "easy")
STRATEGIES = ("hard", "semihard", "easy", "all")  # BatchEasyHardMiner's pos/neg strategies


def _strategy_conflict(params: Mapping[str, Any]) -> str | None:
    """The combinations BatchEasyHardMiner.__init__ rejects (a semihard side needs a bound)."""
    pair = {params.get("pos_strategy", "easy"), params.get("neg_strategy", "semihard")}
    if pair == {"semihard"}:
        return "pos_strategy and neg_strategy cannot both be 'semihard'"
    if pair == {"semihard", "all"}:
        return "'semihard' cannot be combined with 'all'"
    return None


MINERS: Mapping[str, MinerInfo] = {
    # --- emit triplets (a, p, n) ----------------------------------------------------------------
    # PML's semantics in O(B^2) memory instead of B^3, output capped (catalog/_triplet_miner.py).
    "TripletMarginMiner": MinerInfo(
        "TripletMarginMiner",
        "triplets",
        {
            "margin": _nonneg(0.2),
            "type_of_triplets": ParamInfo("all", choices=TRIPLET_TYPES),
        },
        module="minesearch.catalog._triplet_miner",
    ),
    "BatchHardMiner": MinerInfo("BatchHardMiner", "triplets"),
    "AngularMiner": MinerInfo("AngularMiner", "triplets", {"angle": _degrees(20)}),
    "DistanceWeightedMiner": MinerInfo(
        "DistanceWeightedMiner",
        "triplets",
        {"cutoff": ParamInfo(0.5, low=0.0, high=2.0), "nonzero_loss_cutoff": _nonneg(1.4)},
    ),
    # --- emit pairs (a1, p, a2, n) --------------------------------------------------------------
    "MultiSimilarityMiner": MinerInfo(
        "MultiSimilarityMiner", "pairs", {"epsilon": _nonneg(0.1)}, distance="cosine"
    ),
    "BatchEasyHardMiner": MinerInfo(
        "BatchEasyHardMiner",
        "pairs",
        {
            "pos_strategy": ParamInfo("easy", choices=STRATEGIES),
            "neg_strategy": ParamInfo("semihard", choices=STRATEGIES),
        },
        constraint=_strategy_conflict,
    ),
    "HDCMiner": MinerInfo(
        "HDCMiner",
        "pairs",
        {"filter_percentage": ParamInfo(0.5, low=0.0, high=1.0, low_open=True)},
    ),
    "PairMarginMiner": MinerInfo(
        "PairMarginMiner",
        "pairs",
        {"pos_margin": _nonneg(0.2), "neg_margin": _nonneg(0.8)},
    ),
    "UniformHistogramMiner": MinerInfo(
        "UniformHistogramMiner",
        "pairs",
        {"num_bins": _count(100), "pos_per_bin": _count(10), "neg_per_bin": _count(10)},
    ),
}

MINER_NAMES: tuple[str, ...] = (NO_MINER, *MINERS)

# Every other class that PML 2.9 exports from `losses` / `miners`, and why it is not a recipe.
EXCLUDED: Mapping[str, str] = {
    "BaseMetricLossFunction": "abstract base of every loss (compute_loss not implemented)",
    "GenericPairLoss": "abstract base of the pair losses",
    "BaseLossWrapper": "abstract base of the loss wrappers",
    "CrossBatchMemory": "wrapper around another loss with a memory queue of past batches: a "
    "training-loop choice, not a loss",
    "MultipleLosses": "wrapper that sums several losses",
    "SelfSupervisedLoss": "wrapper for self-supervised pairs: forward(embeddings, ref_emb) with "
    "row i of each a positive pair; takes no labels",
    "VICRegLoss": "self-supervised: forward(embeddings, ref_emb) on two views; raises ValueError "
    "when given labels or miner output",
    "ManifoldLoss": "unsupervised: raises ValueError when given labels; its indices_tuple is a "
    "meta-class per sample, not mined tuples",
    "EmbeddingRegularizerMixin": "mixin that adds an embedding regulariser; not a loss",
    "WeightRegularizerMixin": "mixin that adds a weight regulariser; not a loss",
    "BaseMiner": "abstract base of every miner (mine not implemented)",
    "EmbeddingsAlreadyPackagedAsTriplets": "ignores labels: takes rows (0,1,2), (3,4,5), ... as "
    "(a, p, n), so on a class-balanced batch its triplets are wrong (and it raises "
    "AssertionError unless the batch size is a multiple of 3)",
}
