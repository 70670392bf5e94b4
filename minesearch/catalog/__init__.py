"""catalog: what minesearch knows about pytorch-metric-learning's losses and miners.

PML converts miner output silently (pairs <-> triplets, or tuples -> sample weights) and does not
check most constructor arguments (a `type_of_triplets` typo behaves like ``all``), so the catalog is
where names, tuple kinds, parameter defaults and valid values are checked before any compute is
spent. It is one explicit registry by name: every PML 2.9 loss and miner that trains on a labelled
batch through the standard ``loss(embeddings, labels, indices_tuple)`` / ``miner(embeddings,
labels)`` calls is here, every other one is in `EXCLUDED` with the reason (a test keeps the two
complete, so a new PML release is noticed).

Runs in every process (CLI checks, the driver's space, the workers' `build_loss`). Imports nothing
of minesearch; torch and PML only inside `build_loss` / `build_miner` / `LossInfo.cls` /
`MinerInfo.cls`, so that `minesearch validate` and `minesearch catalog` start without them
(docs/architecture.md). `_triplet_miner` (PML's TripletMarginMiner in bounded memory, which the
catalog builds in place of PML's) imports them at its top: only `MinerInfo.cls` imports it.
"""

from minesearch.catalog._entries import (
    EXCLUDED,
    LOSSES,
    MINER_NAMES,
    MINERS,
    STRATEGIES,
    TRIPLET_TYPES,
)
from minesearch.catalog._lookup import (
    batch_error,
    build_loss,
    build_miner,
    compatibility,
    constructor_errors,
    loss_info,
    miner_info,
)
from minesearch.catalog._types import (
    NO_MINER,
    Compatibility,
    Distance,
    LossInfo,
    LossKind,
    MinerInfo,
    ParamInfo,
    TupleKind,
    UnknownNameError,
    did_you_mean,
)
from minesearch.catalog._view import catalog_text

__all__ = [
    "EXCLUDED",
    "LOSSES",
    "MINERS",
    "MINER_NAMES",
    "NO_MINER",
    "STRATEGIES",
    "TRIPLET_TYPES",
    "Compatibility",
    "Distance",
    "LossInfo",
    "LossKind",
    "MinerInfo",
    "ParamInfo",
    "TupleKind",
    "UnknownNameError",
    "batch_error",
    "build_loss",
    "build_miner",
    "catalog_text",
    "compatibility",
    "constructor_errors",
    "did_you_mean",
    "loss_info",
    "miner_info",
]
