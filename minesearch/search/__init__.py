"""search: the driver. Ray (local or a cluster), Tune with Optuna and ASHA, the steps after the fit.

`run_search` starts (or resumes) a search: the MLflow parent run, Tune's fit over trials that are
each a Ray Train job (`_trial`, run by the Tune trial actor), child runs written by a Tune callback
(`_callback`), then the control, the test split of the chosen trials and the confirmations, each
its own step. It returns the search read back from MLflow (`minesearch.results`).

What the user sees meanwhile: `_view` (pure state and rendering: a header, a progress bar, a line
per trial), fed by `_progress`'s Tune callback; Ray's own output goes to the search's log file
(`_quiet`) unless `--verbose`.

Runs in the Tune driver; `_trial.run_trial` runs in the trial actors. The only room that imports
ray.tune. Imports every room below it (config, recipe, results, space, train, tracking).
"""

from minesearch.search._confirm import ConfirmError, confirm_errors, parse_confirm
from minesearch.search._ray import (
    ClusterTooSmall,
    concurrency,
    local_ray_options,
    local_runtime_env,
    resolve_storage,
    with_device,
)
from minesearch.search._run import (
    DEFAULT_STORAGE,
    Finished,
    SearchInterrupted,
    SearchOptions,
    StorageUnusable,
    run_search,
)
from minesearch.search._state import NothingToResume
from minesearch.search._trial import train_storage

__all__ = [
    "DEFAULT_STORAGE",
    "ClusterTooSmall",
    "ConfirmError",
    "Finished",
    "NothingToResume",
    "SearchInterrupted",
    "SearchOptions",
    "StorageUnusable",
    "concurrency",
    "confirm_errors",
    "local_ray_options",
    "local_runtime_env",
    "parse_confirm",
    "resolve_storage",
    "run_search",
    "train_storage",
    "with_device",
]
