"""What a child run records as params: its recipe, flat, and the budget it was trained with.

Flat `loss.X` / `miner.X` params let the MLflow UI sort and filter trials by each knob; the
spellings are `names`'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from minesearch.config import SpaceSpec
from minesearch.recipe import Recipe, format_value
from minesearch.tracking import names


def recipe_params(recipe: Recipe) -> dict[str, str]:
    """The recipe as flat string params; which margin was used (loss or miner) is in the name."""
    flat = {
        names.LOSS_PARAM: recipe.loss,
        names.MINER_PARAM: recipe.miner,
        names.LR_PARAM: f"{recipe.lr:.6g}",
    }
    for prefix, params in (
        (names.LOSS_PARAM_PREFIX, recipe.loss_params),
        (names.MINER_PARAM_PREFIX, recipe.miner_params),
    ):
        flat |= {f"{prefix}{k}": format_value(v) for k, v in params.items()}
    flat |= {names.MARGIN_MODE_PARAM: recipe.margin_mode, names.TUPLES_PARAM: recipe.tuples}
    optional = {
        "proxy_lr_factor": recipe.proxy_lr_factor,
        "backbone_lr_factor": recipe.backbone_lr_factor,
        "weight_decay": recipe.weight_decay,
        "warmup_epochs": recipe.warmup_epochs,
        "head": recipe.head,
        "optimizer": recipe.optimizer,
    }
    flat |= {k: format_value(v) for k, v in optional.items() if v is not None}
    return flat


def trial_params(spec: SpaceSpec) -> dict[str, Any]:
    """What every child run records beside its recipe: the budget it was trained with."""
    return {
        "batch.classes": spec.train.batch.classes,
        "batch.per_class": spec.train.batch.per_class,
        "workers": spec.train.workers,
        names.SEED_PARAM: spec.train.seed,
        "epochs": spec.train.epochs,
        "optimizer": spec.train.optimizer,
    }


def margin_of(params: Mapping[str, str]) -> float | None:
    """The margin a run's recipe trained with: the miner's when it has one (it chose the
    tuples), else the loss's; None without one."""
    raw = params.get(f"{names.MINER_PARAM_PREFIX}{names.MARGIN}") or params.get(
        f"{names.LOSS_PARAM_PREFIX}{names.MARGIN}"
    )
    try:
        value = float(raw or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None
