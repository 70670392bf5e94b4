"""config: the space file as a typed, validated model; every problem reported at once.

What a user writes (data, model, training, the search, tracking) becomes a frozen `SpaceSpec`;
bad input becomes one `SpecError` listing each problem with its field, the value given and what
is allowed. `vocab` owns the closed lists (sources, input types, metrics, samplers, backbone
families), `_params`/`_keys` the forms and spellings of `search.params`.

Runs in every process: the CLI validates, the driver plans, trial actors and workers receive the
`SpaceSpec` object itself (no dict, no re-validation). Imports only `minesearch.catalog`, pydantic
and yaml: never torch, Ray or MLflow (docs/architecture.md).
"""

from minesearch.config import vocab
from minesearch.config._checks import (
    backbone_errors,
    data_kind,
    resolved_backbone,
    trainable_errors,
)
from minesearch.config._keys import RECIPE_KEYS, Owner, declared, key_error, key_for, targets
from minesearch.config._load import SpecError, load_spec, parse_spec, spec_from_dict
from minesearch.config._params import (
    DEFAULT_LOSS,
    DEFAULT_LR,
    DEFAULT_PROXY_LR_FACTOR,
    ParamValue,
    Range,
    as_choices,
    chosen,
    param_errors,
    resolve_constant,
    usable_miners,
)
from minesearch.config._paths import is_uri
from minesearch.config._schema import (
    BatchSpec,
    DataSpec,
    ImageSpec,
    ModelSpec,
    RerunSpec,
    SamplerSpec,
    SchedulerSpec,
    SearchSpec,
    SpaceSpec,
    SplitSpec,
    TrackingSpec,
    TrainSpec,
)

__all__ = [
    "DEFAULT_LOSS",
    "DEFAULT_LR",
    "DEFAULT_PROXY_LR_FACTOR",
    "RECIPE_KEYS",
    "BatchSpec",
    "DataSpec",
    "ImageSpec",
    "ModelSpec",
    "Owner",
    "ParamValue",
    "Range",
    "RerunSpec",
    "SamplerSpec",
    "SchedulerSpec",
    "SearchSpec",
    "SpaceSpec",
    "SpecError",
    "SplitSpec",
    "TrackingSpec",
    "TrainSpec",
    "as_choices",
    "backbone_errors",
    "chosen",
    "data_kind",
    "declared",
    "is_uri",
    "key_error",
    "key_for",
    "load_spec",
    "param_errors",
    "parse_spec",
    "resolve_constant",
    "resolved_backbone",
    "spec_from_dict",
    "targets",
    "trainable_errors",
    "usable_miners",
    "vocab",
]
