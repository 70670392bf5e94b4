"""The control (`minesearch.recipe.control_recipe`) trained beside the search, as a child run,
when the search did not train it itself (the space does not hold it, or a warm start knew it).

It is its own Tune run (one trial, no search) so that it never counts as a proposal of the
sampler.
"""

from __future__ import annotations

from typing import Any

from minesearch.recipe import Recipe, TrialConfig
from minesearch.search._callback import MlflowTrialCallback
from minesearch.search._progress import ViewCallback
from minesearch.search._trial import TrialSetup, run_fixed


def run_control(
    setup: TrialSetup,
    name: str,
    uri: str,
    parent_run_id: str,
    trial_params: dict[str, Any],
    control: Recipe,
    view: ViewCallback | None = None,
) -> None:
    """Train the control as a child run of the search (role `control`)."""
    spec = setup.spec
    callback = MlflowTrialCallback(
        uri, parent_run_id, trial_params, spec.train.epochs, role="control"
    )
    run_fixed(setup, f"{name}-control", [TrialConfig(control)], callback, view=view)
