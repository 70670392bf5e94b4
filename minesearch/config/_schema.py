"""The space file's shape: typed, frozen pydantic models with their defaults.

Unknown keys are errors (`extra="forbid"`), closed choices are `Literal`s from `vocab`, numbers
carry their bounds. What depends on the catalog or on other fields is checked in `_checks`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from minesearch.config._params import ParamValue
from minesearch.config.vocab import (
    HeadName,
    InputType,
    Metric,
    Mode,
    OptimizerName,
    SamplerName,
    SchedulerName,
    Selection,
    SourceName,
)


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
    training crops and flips them (`minesearch.data.preprocess`). A pretrained image backbone
    brings its own size and normalisation."""

    size: Annotated[int, Field(ge=8, le=1024)] = 64
    augment: bool = True


class DataSpec(_Strict):
    # digits: scikit-learn's 8x8 digits; parquet: a file, a directory of files or a URI;
    # image_folder: root/<class>/<image>; text_topics: the small labelled text set minesearch ships
    source: SourceName = "digits"
    path: str | None = None
    label_column: str = "label"
    input_column: str = "features"
    # auto: a list of numbers is a vector, bytes are an encoded image, a string is text;
    # image: a string column holds image paths relative to the Parquet file
    input_type: InputType = "auto"
    split_column: str | None = None  # train/val/test per row, instead of data.split's classes
    split: SplitSpec = SplitSpec()
    image: ImageSpec = ImageSpec()
    cache_dir: str | None = None  # Parquet inputs' local Arrow cache (default ~/.cache/minesearch)


class ModelSpec(_Strict):
    # auto, identity, mlp, convnet, timm:<name>, torchvision:<name>, hf:<dir-or-name>,
    # sentence-transformers:<dir-or-name>, minilm (`minesearch.models`). auto: identity for
    # precomputed vectors (start at them), convnet for images.
    backbone: str = "auto"
    # auto: linear, the identity at the backbone's width (epoch 0 = the pretrained embedding)
    head: HeadName = "auto"
    # None: the backbone's width. none and residual heads keep it; linear and mlp project to this
    embedding_dim: Annotated[int, Field(ge=2, le=4096)] | None = None
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
    # GPUs each worker asks Ray for: a fraction packs small trials onto one GPU (0.25: four
    # single-worker trials share it); above 1, a whole number. Ray only counts: trials sharing a
    # GPU share its memory too.
    gpus_per_worker: Annotated[float, Field(gt=0)] = 1.0
    # auto: bf16 on GPUs that support it, else fp32; fp16 with a gradient scaler
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    optimizer: OptimizerName = "adam"
    # Worker-group restarts of a trial (a dead worker, a preempted node) before it fails; each
    # restart continues from the last epoch's checkpoint. 0: a trial fails at its first error.
    max_failures: Annotated[int, Field(ge=0)] = 0
    # defaults of the recipe keys of the same names (search.params may search them)
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    warmup_epochs: Annotated[float, Field(ge=0)] = 0.0  # the backbone's lr ramps up linearly
    seed: int = 0

    @field_validator("gpus_per_worker")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        if value > 1 and not value.is_integer():  # Ray's rule for resource requests
            raise ValueError("a share of one GPU (<= 1) or a whole number of GPUs")
        return value

    @model_validator(mode="after")
    def _one_gpu_per_data_parallel_worker(self) -> TrainSpec:
        shared = self.use_gpu is not False and self.gpus_per_worker < 1
        if shared and self.workers > 1:  # NCCL refuses two ranks on one GPU
            raise ValueError(
                f"train.gpus_per_worker: {self.gpus_per_worker:g} is a share of a GPU, which only "
                "a single-worker trial may take (train.workers: 1); the workers of a data-parallel "
                "trial need a GPU each"
            )
        return self


class SamplerSpec(_Strict):
    """Optuna's samplers, seeded: the same seed proposes the same sequence of recipes.

    tpe: multivariate TPE (default); random; grid: every distinct recipe of a finite space once;
    qmc: quasi-Monte Carlo (Sobol) over ranges; cmaes: CMA-ES over ranges (choices fall back to
    random sampling).
    """

    name: SamplerName = "tpe"
    seed: int = 0


class SchedulerSpec(_Strict):
    name: SchedulerName = "asha"
    grace_epochs: Annotated[int, Field(ge=1)] = 1
    reduction_factor: Annotated[float, Field(gt=1)] = 2.0
    # asha: stop a trial after this many trained epochs without a gain over its best trained
    # epoch (selection keeps the best epoch, so the rest is paid for and set aside); None: never
    patience: Annotated[int, Field(ge=1)] | None = None


class RerunSpec(_Strict):
    """Paired re-runs: the top recipes and the control trained again with fresh seeds."""

    top: Annotated[int, Field(ge=0)] = 0  # recipes re-run beside the control (0: none)
    seeds: Annotated[int, Field(ge=1)] = 2  # fresh seeds each


class SearchSpec(_Strict):
    metric: Metric = "mean_average_precision_at_r"
    mode: Mode = "max"
    # best_epoch: a trial scores (and is exported, tested, confirmed) at its best validation
    # epoch, epoch 0 included; last: at its last epoch
    select: Selection = "best_epoch"
    trials: Annotated[int, Field(ge=1)] = 8
    concurrent: Annotated[int, Field(ge=1)] = 1
    sampler: SamplerSpec = SamplerSpec()
    scheduler: SchedulerSpec = SchedulerSpec()
    params: dict[str, ParamValue] = Field(default_factory=dict)
    # Proxy/classification losses only turn a miner's output into sample weights; pairing them with
    # miners is usually a wasted trial, so it is proposed only when asked for.
    weight_miners: bool = False
    # The practitioner's recipe for the model (`recipe.control_recipe`), trained with the same
    # budget: proposed first when the space holds it, else beside the search; the verdict weighs
    # the search's answer against it.
    control: bool = True
    # How noise is beaten (None: the default of the setting, from scratch or pretrained start,
    # measured by bench/search_efficiency.py). folds: K class-disjoint folds over the non-test
    # classes, trained in lockstep in each trial (the objective is their mean); rerun: the top m
    # recipes and the control trained again with R fresh seeds, the choice the best mean among
    # those a paired test cannot tell from the best; test_seeds: the chosen recipe and the
    # control retrained with S fresh seeds and scored on the test split (mean, 95% interval).
    folds: Annotated[int, Field(ge=1, le=20)] | None = None
    rerun: RerunSpec | None = None
    test_seeds: Annotated[int, Field(ge=0, le=100)] | None = None
    # Tell the sampler what earlier searches found before it proposes anything: an experiment
    # name (every search in it) or a search's parent run id, read from this search's store.
    # Their recipes are never trained again; their trials stay in their own searches.
    warm_start: str | None = None


# A registered model's name: MLflow allows more (not "/" or ":" where a URI parses it), but a
# name that reads the same in models:/NAME/1, in a file name and in a shell is the safe subset.
REGISTERED_MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class TrackingSpec(_Strict):
    experiment: str | None = None
    uri: str | None = None
    # After a search, its best model (the export's choice) becomes a new version of this
    # registered model in MLflow's Model Registry; None: logged on its run only, not registered.
    register_model: Annotated[
        str | None, Field(min_length=1, max_length=256, pattern=REGISTERED_MODEL_NAME)
    ] = None


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
