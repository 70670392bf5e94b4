"""The data a search trained on as MLflow dataset inputs: the runs table's Dataset column.

One dataset per part of the split (train, val, test), each named after the source with its own
digest, its part as the input's context, and its rows per class in the profile. The parent run
logs them when a search starts; each child run gets the parent's (`ChildRuns.create`): every
trial of a search trains and is scored on the same split.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from minesearch.data import DataSummary

SOURCE_TYPE = "local"  # MLflow's type for a path (or minesearch:<name> for a shipped data set)


def dataset_inputs(summary: DataSummary) -> list[DatasetInput]:
    inputs = []
    for part in summary.parts:
        profile = {
            "rows": part.rows,
            "classes": len(part.class_counts),
            "class_counts": part.class_counts,
            "source_digest": summary.digest,
            "source_rows": summary.rows,
            "source_classes": summary.classes,
            "kind": summary.kind,
        }
        dataset = Dataset(
            name=summary.name,
            digest=part.digest,
            source_type=SOURCE_TYPE,
            source=json.dumps({"uri": summary.uri}),
            profile=json.dumps(profile),
        )
        inputs.append(DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, part.part)]))
    return inputs


def log_datasets(client: MlflowClient, run_id: str, inputs: Sequence[DatasetInput]) -> None:
    if inputs:
        client.log_inputs(run_id, datasets=list(inputs))
