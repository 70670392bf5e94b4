"""The closed lists of the space file, each spelled once: every other module imports them.

A `Literal` gives pydantic its choices and mypy its checks; the tuple beside it (`get_args`) is
the same list for messages and loops, so the two cannot drift. MLflow's names (tags, artifacts)
belong to `minesearch.tracking.names`, trial statuses and roles to `minesearch.results`.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

# --- data ----------------------------------------------------------------------------------------
# digits: scikit-learn's 8x8 digits; parquet: a file, a directory of files or a URI;
# image_folder: root/<class>/<image>; text_topics: the small labelled text set minesearch ships
SourceName = Literal["digits", "parquet", "image_folder", "text_topics"]
PATH_SOURCES: tuple[SourceName, ...] = ("parquet", "image_folder")  # those that need data.path

# What a Parquet input column holds, as the space file says it (auto: read the column's type).
InputType = Literal["auto", "vector", "image", "text"]
INPUT_TYPES: tuple[InputType, ...] = get_args(InputType)

# What a source hands a model: float arrays, encoded images, or strings.
InputKind = Literal["tensor", "image", "text"]
KIND_OF_INPUT_TYPE: dict[InputType, InputKind] = {
    "vector": "tensor",
    "image": "image",
    "text": "text",
}
KIND_OF_SOURCE: dict[SourceName, InputKind] = {  # parquet: from its input type
    "digits": "tensor",
    "image_folder": "image",
    "text_topics": "text",
}

SplitPart = Literal["train", "val", "test"]
SPLIT_PARTS: tuple[SplitPart, ...] = get_args(SplitPart)

# --- model ---------------------------------------------------------------------------------------
BackboneFamily = Literal[
    "identity",
    "mlp",
    "convnet",
    "timm",
    "torchvision",
    "hf",
    "sentence-transformers",
    "minilm",
    "python",
]
BACKBONE_FAMILIES: tuple[BackboneFamily, ...] = get_args(BackboneFamily)
BACKBONE_FORMS: tuple[str, ...] = (  # what a space file may write, for messages and docs
    "identity",
    "mlp",
    "convnet",
    "minilm",
    "timm:<name>",
    "torchvision:<name>",
    "hf:<path-or-name>",
    "sentence-transformers:<path-or-name>",
    "python:<module-or-file.py>:<function>",
)
BACKBONE_KINDS: dict[BackboneFamily, tuple[InputKind, ...]] = {
    "identity": ("tensor",),  # precomputed vectors as they are: the pretrained embedding itself
    "mlp": ("tensor",),
    "convnet": ("tensor", "image"),
    "timm": ("image",),
    "torchvision": ("image",),
    "hf": ("text",),
    "sentence-transformers": ("text",),
    "minilm": ("text",),
    # the user's own nn.Module, given tensors or decoded images; text is refused, since tokens
    # belong to a model's own tokenizer (hf:<dir> takes any Hugging Face encoder)
    "python": ("tensor", "image"),
}
# Families whose output already is an embedding worth keeping: a search with one of them is judged
# against that embedding (the pretrained reference), and its default head starts there. A python:
# backbone is pretrained when its factory says so (`minesearch.models.PythonBackbone`).
PRETRAINED_FAMILIES: tuple[BackboneFamily, ...] = (
    "identity",
    "timm",
    "torchvision",
    "hf",
    "sentence-transformers",
    "minilm",
)
# What sits on the backbone: none (its own embedding, as sentence-transformers fine-tunes it),
# linear (identity-initialised when the widths match), mlp (a fresh two-layer network), residual
# (x + MLP(x), the MLP's last layer zero: starts as the identity); auto: linear (models room).
HeadName = Literal["auto", "none", "linear", "mlp", "residual"]
HEADS: tuple[HeadName, ...] = get_args(HeadName)
SAME_WIDTH_HEADS: tuple[HeadName, ...] = ("none", "residual")  # keep the backbone's width
AUTO_HEAD: HeadName = "linear"  # what `auto` means: the identity at the backbone's width
MINILM_ALIASES = frozenset(
    {
        "minilm",
        "sentence-transformers:all-MiniLM-L6-v2",
        "sentence-transformers:sentence-transformers/all-MiniLM-L6-v2",
    }
)

# --- training and search -------------------------------------------------------------------------
OptimizerName = Literal["adam", "adamw", "sgd"]
OPTIMIZERS: tuple[OptimizerName, ...] = get_args(OptimizerName)

# Retrieval metrics a search may select on (train's evaluation computes each of them).
Metric = Literal[
    "mean_average_precision_at_r",
    "precision_at_1",
    "r_precision",
    "recall_at_1",
    "recall_at_2",
    "recall_at_4",
    "recall_at_8",
]
METRICS: tuple[Metric, ...] = get_args(Metric)
Mode = Literal["max", "min"]
TEST_PREFIX = "test."  # a metric scored on the test split: test.<metric>
# A trial's score is that of its selected epoch: the best validation epoch (epoch 0 included), or
# the last one. Workers report it every epoch, as selected.<metric> and selected_epoch.
Selection = Literal["best_epoch", "last"]
SELECTED_PREFIX = "selected."
SELECTED_EPOCH = "selected_epoch"
# What the scheduler and the sampler compare (the search's objective): the best score over the
# *trained* epochs (>= 1), not floored at epoch 0, so a trial that only declined reads below its
# start (start.<metric>: epoch 0, the pretrained model when the head starts at it).
TRAINED_PREFIX = "trained."
START_PREFIX = "start."
EPOCH = "epoch"  # every report of a worker says which epoch it closes (0: before training)
# What a trial costs, reported by its rank-0 worker each epoch as running totals since the worker
# started (the last value is the trial's), and summed over a search's child runs on its parent.
WORKER_SECONDS = "cost.worker_seconds"  # wall seconds x workers
GPU_SECONDS = "cost.gpu_seconds"  # wall seconds x GPUs (GPU trials only)
COST_METRICS = (WORKER_SECONDS, GPU_SECONDS)
# Measured in the worker, named as MLflow's system metrics so its UI shows them in that tab.
SYSTEM_PREFIX = "system/"

SamplerName = Literal["tpe", "random", "grid", "qmc", "cmaes"]
SchedulerName = Literal["asha", "fifo"]


class BackboneNameError(ValueError):
    """A `model.backbone` string of no known form."""


def parse_backbone(name: str) -> tuple[BackboneFamily, str]:
    """`model.backbone` -> (family, reference after the colon); the minilm aliases give
    ("minilm", ""). Pure string work, so configuration checks need no model code."""
    if name in MINILM_ALIASES:
        return "minilm", ""
    family, sep, ref = name.partition(":")
    if family == "python" and python_target(name) is None:
        raise BackboneNameError(
            f"malformed python: model.backbone {name!r}; write python:<module>:<function> (a "
            "module on the Python path, e.g. python:my_models.nets:build) or "
            "python:<file.py>:<function> (a file, relative to the space file, e.g. "
            "python:my_net.py:build)"
        )
    bare = ("identity", "mlp", "convnet")
    for known in BACKBONE_FAMILIES:
        if known in bare and name == known:
            return known, ""
        if sep and ref and family == known and known not in (*bare, "minilm"):
            return known, ref
    hint = " ('auto' must be resolved first: config.resolved_backbone)" if name == "auto" else ""
    raise BackboneNameError(
        f"unknown model.backbone {name!r}{hint}; valid forms: {', '.join(BACKBONE_FORMS)}"
    )


# python:<dotted.module>:<function> or python:<path/to/file.py>:<function>
_PYTHON_BACKBONE = re.compile(
    r"python:(?P<target>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*|[^:]+\.py):(?P<function>[A-Za-z_]\w*)"
)


def python_target(name: str) -> tuple[str, str] | None:
    """`python:<module-or-file.py>:<function>` -> (module or file, function); None when `name` is
    not of that form. A target ending in ``.py`` is a file, anything else a dotted module."""
    found = _PYTHON_BACKBONE.fullmatch(name)
    return None if found is None else (found["target"], found["function"])


def runs_user_code(backbone: str) -> bool:
    """Whether building `backbone` calls the user's own code (a python: factory), which only
    building it can check: `minesearch validate` then builds the network once."""
    return python_target(backbone) is not None
