"""What a trial receives: the contract between the driver, the Tune trial actor and the workers.

Tune hands a trainable a plain config dict (it saves and restores it with the experiment), so the
driver writes `TrialConfig.to_config()` and every reader calls `TrialConfig.from_config()`: the
dict's keys are spelled here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minesearch.recipe._recipe import Recipe

CONFIG_KEY = "trial"  # the key of the trial itself in a Tune trial's config
# The sampler's own parameters of a searched trial (Optuna's names and values): kept so that a later
# search can tell its sampler what this trial found (`search.warm_start`).
SAMPLER_PARAMS_KEY = "sampler_params"


@dataclass(frozen=True)
class TrialConfig:
    """One trial: the recipe to train, and with which seed."""

    recipe: Recipe
    seed: int | None = None  # None: the space's train.seed; confirmations use new seeds
    # The control recipe, proposed first inside the search: trained to the full budget (never
    # stopped early) and read back as the search's control.
    control: bool = False
    # Class folds trained in lockstep (None: the space's search.folds). The test estimate trains
    # the one split (1): its models are scored on the test classes, not compared on folds.
    folds: int | None = None
    # Epochs to train (None: the space's train.epochs). The test estimate retrains a recipe for
    # as many epochs as its trial was selected at: the model it estimates is that epoch's.
    epochs: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.to_dict(),
            "seed": self.seed,
            "control": self.control,
            "folds": self.folds,
            "epochs": self.epochs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        seed, folds, epochs = data.get("seed"), data.get("folds"), data.get("epochs")
        return cls(
            recipe=Recipe.from_dict(dict(data["recipe"])),
            seed=None if seed is None else int(seed),
            control=bool(data.get("control", False)),
            folds=None if folds is None else int(folds),
            epochs=None if epochs is None else int(epochs),
        )

    def to_config(self) -> dict[str, Any]:
        """The Tune config of this trial (JSON-able: Tune saves it with the experiment)."""
        return {CONFIG_KEY: self.to_dict()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TrialConfig:
        return cls.from_dict(config[CONFIG_KEY])
