"""`search.folds: 2` end to end: a 1-trial search on digits trains both folds in its trial and
logs each fold's metrics on the child run, their mean as the metric itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from minesearch.cli import main
from minesearch.tracking.names import ROLE_TAG
from minesearch.train import fold_metric

pytestmark = pytest.mark.slow

METRIC = "mean_average_precision_at_r"


def test_a_two_fold_trial_logs_each_fold_and_their_mean(ray_instance: None, tmp_path: Path) -> None:
    space = {
        "name": "folds",
        "data": {"source": "digits", "split": {"val": 0.3, "test": 0.0, "seed": 0}},
        "model": {"backbone": "convnet", "embedding_dim": 16, "hidden_dim": 32},
        "train": {"epochs": 1, "batch": {"classes": 4, "per_class": 6}, "workers": 1},
        "search": {
            "trials": 1,
            "concurrent": 1,
            "control": False,
            "folds": 2,
            "rerun": {"top": 0, "seeds": 2},
            "sampler": {"name": "random", "seed": 0},
            "params": {"loss": ["ContrastiveLoss"], "lr": [1.0e-3]},
        },
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "folds"},
    }
    path = tmp_path / "folds.yaml"
    path.write_text(yaml.safe_dump(space))
    storage = tmp_path / "storage"
    result = CliRunner().invoke(main, ["run", str(path), "--storage-path", str(storage)])
    assert result.exit_code == 0, result.output
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("folds")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    (child,) = [r for r in runs if r.data.tags.get(ROLE_TAG) == "trial"]
    for epoch in (0, 1):
        at = {
            name: {m.step: m.value for m in client.get_metric_history(child.info.run_id, name)}[
                epoch
            ]
            for name in (METRIC, fold_metric(0, METRIC), fold_metric(1, METRIC))
        }
        folds = (at[fold_metric(0, METRIC)], at[fold_metric(1, METRIC)])
        assert folds[0] != folds[1]  # two models on two class folds
        assert at[METRIC] == pytest.approx(sum(folds) / 2, abs=1e-9)
