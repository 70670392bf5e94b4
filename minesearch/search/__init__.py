"""search: the driver. Ray (local or a cluster), Tune with Optuna and ASHA, the steps after the fit.

`run_search` starts (or resumes) a search: the MLflow parent run, Tune's fit over trials that are
each a Ray Train job (`_trial`, run by the Tune trial actor), child runs written by a Tune callback
(`_callback`), then the control, the test split of the chosen trials and the confirmations, each
its own step. It returns the search read back from MLflow (`minesearch.results`).

What the user sees meanwhile, if asked (`SearchOptions.view`): `_view` (pure state and rendering:
a header, a progress bar, a line per trial), fed by `_progress`'s Tune callback, which also carries
the driver's messages (`tell`); warnings go to `logging`. Ray's own output goes to the search's log
file (`_quiet`) unless `--verbose`.

Runs in the Tune driver; `_trial.run_trial` runs in the trial actors. The only room that imports
ray.tune. Imports every room below it (config, recipe, results, space, train, tracking).

Modules load on first use (PEP 562): Tune's trial processes unpickle `_trial.run_trial`, which
imports this package first; loading the driver's modules (MLflow, Optuna, the report) there would
cost every trial process seconds it has no use for (bench/trial_overhead.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from minesearch import lazy_attributes

if TYPE_CHECKING:
    from minesearch.search._ray import (
        ClusterTooSmall,
        concurrency,
        local_ray_options,
        local_runtime_env,
        resolve_storage,
        with_device,
    )
    from minesearch.search._run_search import (
        DEFAULT_STORAGE,
        Finished,
        SearchInterrupted,
        SearchOptions,
        StorageUnusable,
        run_search,
    )
    from minesearch.search._state import NothingToResume
    from minesearch.search._test_estimate_runs import ConfirmError, confirm_errors, parse_confirm
    from minesearch.search._trial import train_storage
    from minesearch.search._view import VIEW_MODES, ViewMode

# name -> the module that defines it, imported when the name is first used
_HOME = {
    "ConfirmError": "minesearch.search._test_estimate_runs",
    "confirm_errors": "minesearch.search._test_estimate_runs",
    "parse_confirm": "minesearch.search._test_estimate_runs",
    "ClusterTooSmall": "minesearch.search._ray",
    "concurrency": "minesearch.search._ray",
    "local_ray_options": "minesearch.search._ray",
    "local_runtime_env": "minesearch.search._ray",
    "resolve_storage": "minesearch.search._ray",
    "with_device": "minesearch.search._ray",
    "DEFAULT_STORAGE": "minesearch.search._run_search",
    "Finished": "minesearch.search._run_search",
    "SearchInterrupted": "minesearch.search._run_search",
    "SearchOptions": "minesearch.search._run_search",
    "run_search": "minesearch.search._run_search",
    "StorageUnusable": "minesearch.search._run_search",
    "NothingToResume": "minesearch.search._state",
    "train_storage": "minesearch.search._trial",
    "VIEW_MODES": "minesearch.search._view",
    "ViewMode": "minesearch.search._view",
}

__all__ = [
    "DEFAULT_STORAGE",
    "VIEW_MODES",
    "ClusterTooSmall",
    "ConfirmError",
    "Finished",
    "NothingToResume",
    "SearchInterrupted",
    "SearchOptions",
    "StorageUnusable",
    "ViewMode",
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


__getattr__, __dir__ = lazy_attributes(__name__, _HOME)
