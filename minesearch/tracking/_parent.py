"""The search's parent run: the space file and the resolved spec at the start, the outcome at the
end, KILLED and resumable when the search is interrupted."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from minesearch.data import DataSummary
from minesearch.tracking import names
from minesearch.tracking._datasets import dataset_inputs, log_datasets
from minesearch.tracking._store import experiment_id, open_store

RESUME_HINT = "interrupted: `minesearch run SPACE --resume` continues it"


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):  # MLflow's per-batch param limit
        client.log_batch(run_id, params=items[i : i + 100])


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], step: int) -> None:
    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
    for i in range(0, len(batch), 1000):  # MLflow's per-batch metric limit
        client.log_batch(run_id, metrics=batch[i : i + 1000])


class ParentRun:
    """The search's run: the space file, the resolved spec, and at the end its outcome."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    @classmethod
    def start(
        cls,
        tracking_uri: str,
        experiment: str,
        name: str,
        spec: dict[str, Any],
        space_file: Path | None,
        tags: dict[str, str],
    ) -> ParentRun:
        client = open_store(tracking_uri)
        exp = experiment_id(client, experiment, tracking_uri)
        run = client.create_run(
            exp, run_name=name, tags={names.SEARCH_TAG: names.PARENT_VALUE, **tags}
        )
        parent = cls(client, run.info.run_id)
        search = spec["search"]
        log_params(
            client,
            parent.run_id,
            {
                names.METRIC_PARAM: search["metric"],
                names.MODE_PARAM: search["mode"],
                "trials": search["trials"],
                "concurrent": search["concurrent"],
                "sampler": search["sampler"]["name"],
                "scheduler": search["scheduler"]["name"],
                "epochs": spec["train"]["epochs"],
                "workers": spec["train"]["workers"],
            },
        )
        client.log_dict(parent.run_id, spec, names.SPEC_ARTIFACT)
        if space_file is not None:
            client.log_artifact(parent.run_id, str(space_file))
        return parent

    def log_data(self, summary: DataSummary) -> None:
        """The data the search trains on, one dataset input per part (`_datasets`); its child
        runs copy them."""
        log_datasets(self.client, self.run_id, dataset_inputs(summary))

    @classmethod
    def reopen(cls, tracking_uri: str, run_id: str) -> ParentRun:
        """The parent run of a search being resumed: RUNNING again, the interruption cleared."""
        client = open_store(tracking_uri)
        client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, names.INTERRUPTED_TAG, "")
        return cls(client, run_id)

    def metrics(self) -> dict[str, float]:
        """The parent run's metrics so far (their last values)."""
        return dict(self.client.get_run(self.run_id).data.metrics)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        log_metrics(self.client, self.run_id, metrics, step=0)

    def interrupted(self) -> bool:
        """Whether the trial callback saw Tune end with unfinished trials (SIGINT)."""
        return bool(self.client.get_run(self.run_id).data.tags.get(names.INTERRUPTED_TAG))

    def log_outcome(
        self, params: dict[str, Any], metrics: dict[str, float], tags: dict[str, str]
    ) -> None:
        """The search's result: the best recipe's params, scores (step 0) and tags."""
        log_params(self.client, self.run_id, params)
        log_metrics(self.client, self.run_id, metrics, step=0)
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)
