"""tracking: MLflow, and nothing else imports it.

A search is one parent run (`ParentRun`: the space, the resolved spec, the outcome) with one child
run per trial (`ChildRuns`, written from the driver by the search's Tune callback). `read_search`
reads a search back into `minesearch.results`, for the driver at the end of a search and for
`minesearch report` / `export` any time later. `names` owns every tag, prefix and artifact name.
`_ui` starts and stops the MLflow UI on a store and knows the URLs of its pages.

The data a search trains on becomes each run's dataset inputs (`_datasets`, from
`minesearch.data.summarize`); after a search its best model becomes an MLflow Model (`log_model`,
`_model`), registered when the space names a registered model.

Runs in the Tune driver and the CLI; never in a trial actor or a Ray Train worker. Imports mlflow,
`config`, `recipe`, `results` and `data` (its summary, no torch); the model's code comes from
`minesearch.export` by reference, never by import.
"""

from minesearch.tracking import names
from minesearch.tracking._artifacts import log_directory, log_files
from minesearch.tracking._children import ChildRuns, OpenRun
from minesearch.tracking._model import EmbeddingModel, LoggedModel, log_model
from minesearch.tracking._params import recipe_params, trial_params
from minesearch.tracking._parent import ParentRun
from minesearch.tracking._read import (
    BEST,
    FoundTrial,
    Series,
    find_search,
    find_trial,
    metric_history,
    read_search,
    spec_of,
)
from minesearch.tracking._store import (
    StoreError,
    StoreOpening,
    environment,
    existing_store,
    experiment_id,
    local_artifact_root,
    missing_store,
    open_ui_command,
    refused_store,
    resolve_tracking_uri,
    store_problem,
    tracking_source,
    ui_command,
    unreachable_server,
)
from minesearch.tracking._ui import (
    UI_HOST,
    ServerError,
    compare_url,
    free_port,
    runs_url,
    start_server,
    stop_group,
    wait_until_up,
)
from minesearch.tracking._warm import KnownTrial, known_trials

__all__ = [
    "BEST",
    "UI_HOST",
    "ChildRuns",
    "EmbeddingModel",
    "FoundTrial",
    "KnownTrial",
    "LoggedModel",
    "OpenRun",
    "ParentRun",
    "Series",
    "ServerError",
    "StoreError",
    "StoreOpening",
    "compare_url",
    "environment",
    "existing_store",
    "experiment_id",
    "find_search",
    "find_trial",
    "free_port",
    "known_trials",
    "local_artifact_root",
    "log_directory",
    "log_files",
    "log_model",
    "metric_history",
    "missing_store",
    "names",
    "open_ui_command",
    "read_search",
    "recipe_params",
    "refused_store",
    "resolve_tracking_uri",
    "runs_url",
    "spec_of",
    "start_server",
    "stop_group",
    "store_problem",
    "tracking_source",
    "trial_params",
    "ui_command",
    "unreachable_server",
    "wait_until_up",
]
