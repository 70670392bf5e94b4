"""What a well-shaped space must also agree on: the catalog, the sampler, the data, the backbone.

Apart from `_schema` (the file's shape) because it is about *meaning*: which names exist, where a
parameter applies, which sources need a path, which input kind each source gives and whether the
backbone reads it. `minesearch.data.data_errors` repeats the backbone check once the data is open
and its kind is known (a Parquet column's `auto` type).
"""

from __future__ import annotations

from pathlib import Path

from minesearch import catalog
from minesearch.config._params import DEFAULT_LOSS, Range, as_choices, param_errors
from minesearch.config._paths import is_uri
from minesearch.config._schema import DataSpec, SpaceSpec
from minesearch.config.vocab import (
    BACKBONE_KINDS,
    KIND_OF_INPUT_TYPE,
    KIND_OF_SOURCE,
    PATH_SOURCES,
    SAME_WIDTH_HEADS,
    BackboneNameError,
    InputKind,
    parse_backbone,
)


def semantic_errors(spec: SpaceSpec) -> list[str]:
    """What needs the catalog: names, where a parameter applies, value bounds, batch vs data."""
    problems = param_errors(spec.search.params, spec.search.weight_miners)
    problems += sampler_errors(spec)
    problems += scheduler_errors(spec)
    problems += path_errors(spec.data)
    problems += backbone_errors(spec)
    problems += head_errors(spec)
    problems += batch_errors(spec)
    classes, workers = spec.train.batch.classes, spec.train.workers
    if classes % workers:
        problems.append(
            f"train.batch.classes: the global batch is split across workers by class, and the "
            f"workers' embeddings are all-gathered for mining, which needs equal shards: use a "
            f"multiple of train.workers={workers} (given classes={classes})"
        )
    return problems


def sampler_errors(spec: SpaceSpec) -> list[str]:
    """A grid needs a finite space; QMC and CMA-ES need a range to work on; a warm start needs a
    sampler that learns from earlier trials (a grid walks its cells whatever it is told)."""
    name, params = spec.search.sampler.name, spec.search.params
    ranges = [key for key, value in params.items() if isinstance(value, Range)]
    if name == "grid" and spec.search.warm_start is not None:
        return [
            "search.warm_start: a grid tries every recipe whatever earlier searches found; "
            "use sampler tpe, random, qmc or cmaes with warm_start, or drop warm_start"
        ]
    if name == "grid" and ranges:
        return [
            f"search.sampler.name: grid needs a finite space, but {ranges} are ranges; "
            "give them as lists of values, or use tpe/random/qmc"
        ]
    if name in ("qmc", "cmaes") and not ranges:
        return [
            f"search.sampler.name: {name} samples ranges ({{low, high}}) and this space has none; "
            "use grid, tpe or random"
        ]
    return []


def scheduler_errors(spec: SpaceSpec) -> list[str]:
    """Patience is a rule of the search's ASHA: under fifo nothing would apply it."""
    scheduler = spec.search.scheduler
    if scheduler.name == "fifo" and scheduler.patience is not None:
        return [
            f"search.scheduler.patience: {scheduler.patience} stops trials early, which the fifo "
            "scheduler never does; use name asha, or drop patience"
        ]
    return []


def batch_errors(spec: SpaceSpec) -> list[str]:
    """Losses that compute wrongly on some batch shapes (PML 2.9's SmoothAPLoss). The loss sees the
    global batch: workers all-gather embeddings before the loss (`minesearch.train`)."""
    batch = spec.train.batch
    losses = spec.search.params.get("loss", DEFAULT_LOSS)
    names = losses if isinstance(losses, list) else [losses]
    return [
        f"train.batch: {name} {why}"
        for name in map(str, names)
        if name in catalog.LOSSES
        and (why := catalog.batch_error(name, batch.classes, batch.per_class)) is not None
    ]


def head_errors(spec: SpaceSpec) -> list[str]:
    """A head that keeps the backbone's width cannot also be given another width."""
    searched = as_choices(spec.search.params.get("head"), [])
    same = [h for h in dict.fromkeys([spec.model.head, *searched]) if h in SAME_WIDTH_HEADS]
    if spec.model.embedding_dim is None or not same:
        return []
    return [
        f"model.embedding_dim: {spec.model.embedding_dim}, but head {same[0]!r} keeps the "
        "backbone's width (none: its own embedding, residual: x + MLP(x)); drop embedding_dim, "
        "or use head linear or mlp to project"
    ]


def resolved_backbone(spec: SpaceSpec, kind: InputKind, shape: tuple[int, ...] | None) -> str:
    """`model.backbone` with `auto` resolved for data of `kind` and sample `shape`: the convnet
    for images (encoded, or [C, H, W] tensors), the input itself (`identity`) for vectors
    (precomputed embeddings: fine-tuning starts at them; `mlp` trains a fresh network)."""
    name = spec.model.backbone
    if name != "auto":
        return name
    return "convnet" if kind == "image" or (shape and len(shape) == 3) else "identity"


def trainable_errors(spec: SpaceSpec, backbone: str) -> list[str]:
    """A head with no parameters on a backbone with none (vectors as they are) trains nothing."""
    heads = dict.fromkeys([spec.model.head, *as_choices(spec.search.params.get("head"), [])])
    if backbone == "identity" and "none" in heads:
        return [
            "model.head: 'none' on vectors used as they are (backbone identity) leaves nothing "
            "to train; use linear (the default: starts at the vectors), residual or mlp"
        ]
    return []


def path_errors(data: DataSpec) -> list[str]:
    path, source = data.path, data.source
    if source in PATH_SOURCES and not path:
        what = "a Parquet file, a directory of them or a URI" if source == "parquet" else "root"
        return [f"data.path: source {source!r} needs data.path ({what})"]
    if source not in PATH_SOURCES and path:
        allowed = " or ".join(repr(s) for s in PATH_SOURCES)
        return [f"data.path: only used with source {allowed}, not {source!r}"]
    if path and not is_uri(path) and not Path(path).exists():
        return [f"data.path: not found (given {path!r})"]
    return []


def data_kind(spec: SpaceSpec) -> InputKind | None:
    """The input kind the data gives, when the file alone tells (not for parquet `auto`)."""
    d = spec.data
    if d.source == "parquet":
        return KIND_OF_INPUT_TYPE.get(d.input_type)
    return KIND_OF_SOURCE[d.source]


def backbone_errors(spec: SpaceSpec, kind: InputKind | None = None) -> list[str]:
    """A backbone name that does not exist, or that cannot read the data's kind of input."""
    name = spec.model.backbone
    kind = kind or data_kind(spec)
    if name == "auto":
        if kind == "text":
            return [
                "model.backbone: text needs a text encoder: minilm, hf:<dir-or-name> or "
                "sentence-transformers:<dir-or-name>"
            ]
        return []
    try:
        family, _ = parse_backbone(name)
    except BackboneNameError as exc:
        return [f"model.backbone: {exc}"]
    kinds = BACKBONE_KINDS[family]
    if kind is not None and kind not in kinds:
        hint = _TEXT_HINT if family == "python" and kind == "text" else ""
        return [
            f"model.backbone: {name!r} reads {', '.join(kinds)} inputs, but data "
            f"(source {spec.data.source!r}) gives {kind}{hint}"
        ]
    return []


# Why a python: backbone takes no text: a model's tokens come from its own tokenizer.
_TEXT_HINT = (
    "; a python: backbone is given tensors, and text becomes tensors only through its model's "
    "own tokenizer: use hf:<dir-or-name> (any Hugging Face encoder, mean-pooled) or "
    "sentence-transformers:<dir-or-name>"
)
