"""The space file as a typed, validated model.

Every problem a file has is reported at once, each with its field path, what was given and what is
allowed, before Ray starts: a wrong name found after a cluster spun up costs GPU-hours. Pydantic
checks shapes and types (unknown keys are errors); `semantic_errors` then checks what depends on the
catalog (loss/miner names, which parameter applies to what, value bounds).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from minesearch import catalog
from minesearch.params import PARAM_FORMS, ParamValue, Range, param_errors

METRICS = (
    "mean_average_precision_at_r",
    "precision_at_1",
    "r_precision",
    "recall_at_1",
    "recall_at_2",
    "recall_at_4",
    "recall_at_8",
)
Metric = Literal[
    "mean_average_precision_at_r",
    "precision_at_1",
    "r_precision",
    "recall_at_1",
    "recall_at_2",
    "recall_at_4",
    "recall_at_8",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitSpec(_Strict):
    by: Literal["class"] = "class"
    val: Annotated[float, Field(gt=0, lt=1)] = 0.3
    test: Annotated[float, Field(ge=0, lt=1)] = 0.2
    seed: int = 0

    @model_validator(mode="after")
    def _fractions_leave_train(self) -> SplitSpec:
        if self.val + self.test >= 1:
            raise ValueError(f"val + test must be < 1 (given {self.val} + {self.test})")
        return self


class ImageSpec(_Strict):
    """Images (image_folder, or image bytes/paths in Parquet) become size x size RGB tensors;
    training crops and flips them (image_transforms.py). A pretrained image backbone brings its
    own size and normalisation."""

    size: Annotated[int, Field(ge=8, le=1024)] = 64
    augment: bool = True


class DataSpec(_Strict):
    # digits: scikit-learn's 8x8 digits; parquet: a file, a directory of files or a URI;
    # image_folder: root/<class>/<image>; text_topics: the small labelled text set minesearch ships
    source: Literal["digits", "parquet", "image_folder", "text_topics"] = "digits"
    path: str | None = None
    label_column: str = "label"
    input_column: str = "features"
    # auto: a list of numbers is a vector, bytes are an encoded image, a string is text;
    # image: a string column holds image paths relative to the Parquet file
    input_type: Literal["auto", "vector", "image", "text"] = "auto"
    split_column: str | None = None  # train/val/test per row, instead of data.split's classes
    split: SplitSpec = SplitSpec()
    image: ImageSpec = ImageSpec()
    cache_dir: str | None = None  # Parquet inputs' local Arrow cache (default ~/.cache/minesearch)


class ModelSpec(_Strict):
    # auto, mlp, convnet, timm:<name>, torchvision:<name>, hf:<dir-or-name>,
    # sentence-transformers:<dir-or-name>, minilm (backbones.py)
    backbone: str = "auto"
    embedding_dim: Annotated[int, Field(ge=2, le=4096)] = 32
    hidden_dim: Annotated[int, Field(ge=2, le=65536)] = 128
    # None: the whole backbone trains; 0: only the embedding head; N: the last N blocks and the head
    train_last_blocks: Annotated[int, Field(ge=0)] | None = None
    max_length: Annotated[int, Field(ge=4, le=4096)] = 128  # text: tokens kept per sentence


class BatchSpec(_Strict):
    classes: Annotated[int, Field(ge=2)] = 4
    per_class: Annotated[int, Field(ge=2)] = 8


class TrainSpec(_Strict):
    epochs: Annotated[int, Field(ge=1)] = 5
    batch: BatchSpec = BatchSpec()
    workers: Annotated[int, Field(ge=1)] = 1
    cpus_per_worker: Annotated[float, Field(gt=0)] = 1.0
    # auto: GPUs when the cluster has any (resolved once Ray is up); Ray Train gives each worker
    # its device, and NCCL is the backend on GPUs, gloo on CPUs.
    use_gpu: Literal["auto", True, False] = False
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    # Worker-group restarts of a trial (a dead worker, a preempted node) before it fails; each
    # restart continues from the last epoch's checkpoint. 0: a trial fails at its first error.
    max_failures: Annotated[int, Field(ge=0)] = 0
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    seed: int = 0


SamplerName = Literal["tpe", "random", "grid", "qmc", "cmaes"]


class SamplerSpec(_Strict):
    """Optuna's samplers, seeded: the same seed proposes the same sequence of recipes.

    tpe: multivariate TPE (default); random; grid: every distinct recipe of a finite space once;
    qmc: quasi-Monte Carlo (Sobol) over ranges; cmaes: CMA-ES over ranges (choices fall back to
    random sampling).
    """

    name: SamplerName = "tpe"
    seed: int = 0


class SchedulerSpec(_Strict):
    name: Literal["asha", "fifo"] = "asha"
    grace_epochs: Annotated[int, Field(ge=1)] = 1
    reduction_factor: Annotated[float, Field(gt=1)] = 2.0


class SearchSpec(_Strict):
    metric: Metric = "mean_average_precision_at_r"
    mode: Literal["max", "min"] = "max"
    trials: Annotated[int, Field(ge=1)] = 8
    concurrent: Annotated[int, Field(ge=1)] = 1
    sampler: SamplerSpec = SamplerSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    params: dict[str, ParamValue] = Field(default_factory=dict)
    # Proxy/classification losses only turn a miner's output into sample weights; pairing them with
    # miners is usually a wasted trial, so it is proposed only when asked for.
    weight_miners: bool = False
    # Train the default recipe (TripletMarginLoss, no miner, PML defaults) with the same budget
    # beside the search, so that every trial reads against it.
    control: bool = True


class TrackingSpec(_Strict):
    experiment: str | None = None
    uri: str | None = None


class SpaceSpec(_Strict):
    name: Annotated[str, Field(min_length=1)]
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    search: SearchSpec = SearchSpec()
    tracking: TrackingSpec = TrackingSpec()
    storage_path: str | None = None

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name


class SpecError(Exception):
    """All problems of one space file; `str()` lists them one per line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))


class SpaceLoader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a number: YAML 1.1 wants `1.0e-3`, and a learning rate
    written the way everyone writes it must not become the string '1e-3'."""


SpaceLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_spec(path: str | Path) -> SpaceSpec:
    """Read and validate a space file; raise SpecError with every problem found."""
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SpecError(source, [f"cannot read the space file: {exc.strerror}"]) from None
    try:
        raw = yaml.load(text, Loader=SpaceLoader)  # SpaceLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise SpecError(source, [f"not valid YAML: {exc}"]) from None
    return parse_spec(raw, source)


def parse_spec(raw: Any, source: str = "<space>") -> SpaceSpec:
    if not isinstance(raw, dict):
        raise SpecError(source, ["the file must be a mapping with at least `name:`"])
    try:
        spec = SpaceSpec.model_validate(raw)
    except ValidationError as exc:
        problems = _describe_all(exc.errors()) + _raw_param_errors(raw)
        raise SpecError(source, problems) from None
    problems = semantic_errors(spec)
    if problems:
        raise SpecError(source, problems)
    return spec


def sampler_errors(spec: SpaceSpec) -> list[str]:
    """A grid needs a finite space; QMC and CMA-ES need a range to work on."""
    name, params = spec.search.sampler.name, spec.search.params
    ranges = [key for key, value in params.items() if isinstance(value, Range)]
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


def batch_errors(spec: SpaceSpec) -> list[str]:
    """Losses that compute wrongly on some batch shapes (PML 2.9's SmoothAPLoss). The loss sees the
    global batch: workers all-gather embeddings before the loss (worker.py)."""
    batch = spec.train.batch
    losses = spec.search.params.get("loss", "TripletMarginLoss")
    names = losses if isinstance(losses, list) else [losses]
    return [
        f"train.batch: {name} {why}"
        for name in map(str, names)
        if name in catalog.LOSSES
        and (why := catalog.batch_error(name, batch.classes, batch.per_class)) is not None
    ]


def semantic_errors(spec: SpaceSpec) -> list[str]:
    """What needs the catalog: names, where a parameter applies, value bounds, batch vs data."""
    problems = param_errors(spec.search.params, spec.search.weight_miners)
    problems += sampler_errors(spec)
    from minesearch.spec_data import backbone_errors, path_errors  # needs this module's types

    problems += path_errors(spec.data)
    problems += backbone_errors(spec)
    problems += batch_errors(spec)
    classes, workers = spec.train.batch.classes, spec.train.workers
    if classes % workers:
        problems.append(
            f"train.batch.classes: the global batch is split across workers by class, and the "
            f"workers' embeddings are all-gathered for mining, which needs equal shards: use a "
            f"multiple of train.workers={workers} (given classes={classes})"
        )
    return problems


def _raw_param_errors(raw: dict[str, Any]) -> list[str]:
    """The catalog checks of `search.params`, even when another part of the file is malformed.

    Parameters whose form is wrong are left out (already reported); if `loss` or `miner` is one of
    them, where the others apply cannot be known, so nothing more is said.
    """
    search = raw.get("search")
    params = search.get("params") if isinstance(search, dict) else None
    if not isinstance(params, dict):
        return []
    typed: dict[str, ParamValue] = {}
    for key, value in params.items():
        try:
            typed[str(key)] = _PARAM.validate_python(value)
        except ValidationError:
            if key in ("loss", "miner"):
                return []
    assert isinstance(search, dict)  # params was found inside it
    return param_errors(typed, search.get("weight_miners") is True)


_PARAM: TypeAdapter[ParamValue] = TypeAdapter(ParamValue)
_SCALAR_BRANCHES = ("float", "int", "str")


def _describe_all(errors: list[Any]) -> list[str]:
    """One message per field: a value that fits no scalar type is one problem, not three."""
    problems: dict[tuple[Any, ...], str] = {}
    for err in errors:
        loc = _user_loc(err["loc"])
        if loc in problems and _scalar_branch(err):
            continue
        problems[loc] = _describe(err, loc)
    return list(problems.values())


def _user_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """`loc` as the file spells it: without pydantic's union branch labels under search.params."""
    if loc[:2] != ("search", "params"):
        return loc
    tail = [p for p in loc[3:] if p not in PARAM_FORMS and p not in _SCALAR_BRANCHES]
    return (*loc[:3], *tail)


def _scalar_branch(err: Any) -> bool:
    """An error of one member of a parameter's number-or-name union (pydantic reports each)."""
    loc = err["loc"]
    return len(loc) > 3 and loc[:2] == ("search", "params") and loc[-1] in _SCALAR_BRANCHES


def _describe(err: Any, loc: tuple[Any, ...]) -> str:
    where = ".".join(str(p) for p in loc) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        hint = catalog.did_you_mean(str(loc[-1]), allowed)
        return f"{where}: unknown key{hint}; allowed: {allowed}"
    if _scalar_branch(err):
        msg = "Input should be a number or a name"
    if err["type"] == "literal_error":  # a closed choice: suggest the nearest allowed value
        msg += catalog.did_you_mean(err.get("input"), re.findall(r"'([^']*)'", msg))
    given = err.get("input")
    shown = "" if isinstance(given, dict) else f" (given {given!r})"
    return f"{where}: {msg}{shown}"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class found by following `loc` from SpaceSpec (for 'allowed keys')."""
    if loc[:2] == ("search", "params"):
        return Range if len(loc) == 3 else None
    model: type[BaseModel] = SpaceSpec
    for part in loc:
        annotation = getattr(model.model_fields.get(str(part)), "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


__all__ = [
    "METRICS",
    "DataSpec",
    "ModelSpec",
    "ParamValue",
    "Range",
    "SearchSpec",
    "SpaceSpec",
    "SpecError",
    "TrainSpec",
    "load_spec",
    "parse_spec",
]
