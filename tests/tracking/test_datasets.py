"""The data a search trains on as MLflow dataset inputs: on the parent, copied to each child run,
one per part of the split with its rows per class (no Ray: the child runs as the callback
writes them)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from minesearch.config import parse_spec
from minesearch.data import load_parts, summarize
from minesearch.recipe import Recipe, TrialConfig
from minesearch.tracking import ChildRuns, ParentRun


def test_summary_digest_follows_the_split_and_counts_each_class() -> None:
    spec = parse_spec({"name": "d", "data": {"split": {"val": 0.3, "test": 0.2, "seed": 0}}})
    parts = load_parts(spec)
    summary = summarize(spec, parts)
    assert (summary.name, summary.uri, summary.rows, summary.classes) == (
        "digits",
        "minesearch:digits",
        1797,
        10,
    )
    by_part = {p.part: p for p in summary.parts}
    assert set(by_part) == {"train", "val", "test"}
    for part, p in by_part.items():
        labels = parts.labels(part)  # type: ignore[arg-type]
        assert p.rows == len(labels) and sum(p.class_counts.values()) == len(labels)
        assert p.class_counts == {str(c): int((labels == c).sum()) for c in np.unique(labels)}
    assert summarize(spec, parts) == summary  # deterministic
    other = parse_spec({"name": "d", "data": {"split": {"val": 0.3, "test": 0.2, "seed": 1}}})
    moved = summarize(other, load_parts(other))
    assert moved.digest != summary.digest
    assert {p.digest for p in moved.parts}.isdisjoint(p.digest for p in summary.parts)
    no_test = parse_spec({"name": "d", "data": {"split": {"val": 0.3, "test": 0.0}}})
    assert [p.part for p in summarize(no_test, load_parts(no_test)).parts] == ["train", "val"]


def test_parent_and_children_carry_the_datasets(
    tmp_path: Path, parent_spec: Callable[..., dict[str, object]]
) -> None:
    uri = f"sqlite:///{tmp_path}/m.db"
    spec = parse_spec({"name": "d"})
    summary = summarize(spec, load_parts(spec))
    parent = ParentRun.start(
        uri,
        "exp",
        "search",
        parent_spec(metric="m", trials=1, sampler="random", scheduler="fifo", epochs=1),
        None,
        tags={},
    )
    parent.log_data(summary)
    children = pickle.loads(pickle.dumps(ChildRuns(uri, parent.run_id, "trial", {})))
    recipe = Recipe("ContrastiveLoss", "none", {}, {}, lr=1e-3, margin_mode="tied")
    child = children.create("t1", TrialConfig(recipe), {})

    client = MlflowClient(uri)
    for run_id in (parent.run_id, child):
        inputs = client.get_run(run_id).inputs.dataset_inputs
        contexts = {i.tags[0].value: i.dataset for i in inputs}
        assert set(contexts) == {"train", "val", "test"}, run_id
        for part in summary.parts:
            dataset = contexts[part.part]
            assert (dataset.name, dataset.digest) == ("digits", part.digest)
            profile = json.loads(dataset.profile)
            assert profile["class_counts"] == part.class_counts
            assert profile["source_digest"] == summary.digest
            assert json.loads(dataset.source) == {"uri": "minesearch:digits"}
