"""`TrialConfig` crosses the driver -> trial actor -> worker boundary inside Tune's config."""

from __future__ import annotations

import json

from minesearch.recipe import Recipe, TrialConfig

RECIPE = Recipe("TripletMarginLoss", "BatchHardMiner", {"margin": 0.1}, {}, lr=2e-3)


def test_every_field_survives_tunes_json_config() -> None:
    trial = TrialConfig(RECIPE, seed=7, control=True, folds=1, epochs=2)
    config = json.loads(json.dumps(trial.to_config()))
    assert TrialConfig.from_config(config) == trial


def test_a_config_written_before_folds_existed_reads_as_the_spaces_folds() -> None:
    old = {"trial": {"recipe": RECIPE.to_dict(), "seed": None, "control": False}}
    assert TrialConfig.from_config(old).folds is None
    assert TrialConfig.from_config(old).epochs is None  # the space's train.epochs
