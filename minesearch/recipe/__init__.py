"""recipe: one trial's concrete loss, miner and optimiser settings, and what a trial receives.

`Recipe` is what the search proposes and MLflow shows; `TrialConfig` is the frozen contract a
Tune trial config carries from the driver to the trial actor and on to the Ray Train workers;
`control_recipe` is the practitioner's recipe for the model's family (`setting_of`), which every
search proposes first (or trains beside its trials) and weighs its answer against.

Runs in the driver, the trial actors and the workers. Imports `catalog` and `config` only (no
Optuna, torch, Ray or MLflow), so that a worker pays for none of the search's libraries.
"""

from minesearch.recipe._control_recipe import (
    CONTROL_LOSS,
    PRETRAINED_BACKBONE_LR_FACTOR,
    SETTING_OF_FAMILY,
    Setting,
    control_recipe,
    setting_of,
)
from minesearch.recipe._recipe import MarginMode, Recipe, format_value
from minesearch.recipe._trial import CONFIG_KEY, SAMPLER_PARAMS_KEY, TrialConfig

__all__ = [
    "CONFIG_KEY",
    "CONTROL_LOSS",
    "PRETRAINED_BACKBONE_LR_FACTOR",
    "SAMPLER_PARAMS_KEY",
    "SETTING_OF_FAMILY",
    "MarginMode",
    "Recipe",
    "Setting",
    "TrialConfig",
    "control_recipe",
    "format_value",
    "setting_of",
]
