"""Real (tiny) searches through Ray and MLflow on each kind of data: a Parquet file of precomputed
vectors, an image folder the test draws, and the shipped text space with the pretrained MiniLM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from PIL import Image

from minesearch.cli import main
from minesearch.tracking.names import ROLE_TAG

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MAP = "mean_average_precision_at_r"


def search(tmp_path: Path, space: dict[str, Any], *args: str) -> tuple[Any, list[Any]]:
    """Run `space` from the CLI into a store under tmp_path; (parent run, child runs)."""
    space["tracking"] = {"uri": space_uri(tmp_path), "experiment": space["name"]}
    space["data"]["cache_dir"] = str(tmp_path / "cache")  # the workers' Arrow cache too
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    result = CliRunner().invoke(
        main, ["run", str(path), "--storage-path", str(tmp_path / "ray"), *args]
    )
    assert result.exit_code == 0, result.output
    # the header first, whatever the driver tells before the trials (the pretrained model's bar)
    assert result.output.startswith(f"search {space['name']} ("), result.output
    client = MlflowClient(space["tracking"]["uri"])
    experiment = client.get_experiment_by_name(space["name"])
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get(ROLE_TAG) == "trial"]
    return parents[0], children


def space_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def tiny_search(params: dict[str, Any], trials: int = 2) -> dict[str, Any]:
    return {
        "trials": trials,
        "sampler": {"name": "random", "seed": 0},
        "scheduler": {"name": "fifo"},
        "control": False,
        "test_seeds": 0,  # the selected checkpoints on test; the estimate: tests/search/test_e2e.py
        "params": params,
    }


def test_parquet_vectors_with_a_split_column(ray_instance: None, tmp_path: Path) -> None:
    """Precomputed vectors in a directory of two Parquet files, the split given by a column."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 16))
    labels = np.repeat(np.arange(12), 10)
    vectors = centres[labels] + 0.6 * rng.normal(size=(len(labels), 16))
    split = np.where(labels < 8, "train", np.where(labels < 10, "val", "test"))
    data = tmp_path / "vectors"
    data.mkdir()
    for part in (0, 1):
        rows = slice(part * 60, (part + 1) * 60)
        table = pa.table(
            {
                "cls": [f"c{v}" for v in labels[rows]],
                "emb": pa.array(list(vectors[rows].astype(np.float32)), pa.list_(pa.float32())),
                "part": split[rows],
            }
        )
        pq.write_table(table, data / f"{part}.parquet", row_group_size=16)
    space = {
        "name": "vectors",
        "data": {
            "source": "parquet",
            "path": str(data),
            "label_column": "cls",
            "input_column": "emb",
            "split_column": "part",
        },
        "model": {"hidden_dim": 32},  # the defaults: start at the vectors (a residual head)
        "train": {"epochs": 2, "batch": {"classes": 4, "per_class": 4}, "workers": 2},
        "search": tiny_search({"loss": "ContrastiveLoss", "lr": [1.0e-3, 3.0e-3]}),
    }
    parent, children = search(tmp_path, space)
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    metrics, tags = parent.data.metrics, parent.data.tags
    assert f"best.test.{MAP}" in metrics  # the split column's test rows
    # judged against the vectors themselves: scored before any trial, on val and on test
    assert {f"pretrained.{MAP}", f"pretrained.test.{MAP}", "verdict.margin"} <= set(metrics)
    assert tags["minesearch.verdict"] in (
        "fine_tuned_better",
        "control_better",
        "pretrained_better",
    )
    best = next(c for c in children if c.data.tags["minesearch.trial_id"] == tags["best.trial_id"])
    test_margin = best.data.metrics[f"test.{MAP}"] - metrics[f"pretrained.test.{MAP}"]
    assert metrics["verdict.margin"] == pytest.approx(test_margin)
    client = MlflowClient(space_uri(tmp_path))
    for child in children:  # a head that starts at the vectors: epoch 0 is the pretrained model
        epoch0 = client.get_metric_history(child.info.run_id, MAP)[0]
        assert epoch0.step == 0 and epoch0.value == pytest.approx(
            metrics[f"pretrained.{MAP}"], abs=1e-6
        )
        assert child.data.metrics[f"selected.{MAP}"] >= metrics[f"pretrained.{MAP}"] - 1e-9


def draw_image_folder(root: Path, classes: int = 6, per_class: int = 6) -> None:
    """Each class a colour and a stripe direction, with noise: learnable but not trivial."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        colour = rng.integers(40, 215, size=3)
        for i in range(per_class):
            img = np.clip(colour + rng.normal(0, 30, size=(20, 24, 3)), 0, 255)
            if c % 2:
                img[::4] = 255
            else:
                img[:, ::4] = 0
            Image.fromarray(img.astype(np.uint8)).save(folder / f"{i}.png")


def test_image_folder(ray_instance: None, tmp_path: Path) -> None:
    draw_image_folder(tmp_path / "images")
    space = {
        "name": "images",
        "data": {
            "source": "image_folder",
            "path": str(tmp_path / "images"),
            "split": {"val": 0.34, "test": 0.0},
            "image": {"size": 16},
        },
        "model": {"backbone": "convnet", "embedding_dim": 8, "hidden_dim": 16},
        "train": {"epochs": 2, "batch": {"classes": 2, "per_class": 4}, "workers": 2},
        "search": tiny_search({"loss": "TripletMarginLoss", "miner": "BatchHardMiner"}, trials=1),
    }
    _, children = search(tmp_path, space)
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    assert MAP in children[0].data.metrics


def test_text_space_with_the_pretrained_minilm(ray_instance: None, tmp_path: Path) -> None:
    """The shipped text space, shrunk: 1 trial of 1 epoch, 1 worker, the encoder's last block."""
    pytest.importorskip("transformers")
    space = yaml.safe_load((ROOT / "search_spaces" / "text_minilm.yaml").read_text())
    write_text_subset(tmp_path / space["data"]["path"], classes=12, per_class=15)
    space["train"] |= {"epochs": 1, "workers": 1, "batch": {"classes": 4, "per_class": 4}}
    space["model"]["train_last_blocks"] = 1
    space["search"] = tiny_search(
        {"loss": "TripletMarginLoss", "lr": 1.0e-3, "backbone_lr_factor": 0.1}, trials=1
    )
    parent, children = search(tmp_path, space)
    (child,) = children
    assert child.info.status == "FINISHED"
    assert child.data.params["backbone_lr_factor"] == "0.1"
    assert 0.0 < child.data.metrics[MAP] <= 1.0
    assert f"best.test.{MAP}" in parent.data.metrics


def write_text_subset(path: Path, classes: int, per_class: int) -> None:
    """The shipped package_topics, cut to its first `classes` sections and `per_class` texts each,
    where the space's relative `data.path` points from the test's copy of the space file."""
    table = pq.read_table(ROOT / "search_spaces" / "data" / "package_topics.parquet")
    frame = table.to_pandas()
    keep = sorted(frame["label"].unique())[:classes]
    subset = frame[frame["label"].isin(keep)].groupby("label").head(per_class)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(subset, preserve_index=False), path)


def write_large_vectors(path: Path, rows: int, dim: int, classes: int) -> int:
    """rows x dim float32 vectors (class centre + noise), written chunk by chunk; file bytes."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((classes, dim), dtype=np.float32)
    schema = pa.schema([("label", pa.int64()), ("features", pa.list_(pa.float32(), dim))])
    chunk = 4096
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for start in range(0, rows, chunk):
            labels = np.arange(start, min(start + chunk, rows)) % classes
            vectors = centres[labels] + rng.standard_normal((len(labels), dim), dtype=np.float32)
            flat = pa.array(vectors.reshape(-1))
            column = pa.FixedSizeListArray.from_arrays(flat, dim)
            writer.write_table(pa.table({"label": labels, "features": column}, schema=schema))
    return path.stat().st_size


def test_parquet_larger_than_a_worker_holds(ray_instance: None, tmp_path: Path) -> None:
    """1 GiB of vectors trains an epoch on 2 workers whose anonymous memory stays far below it:
    each step reads only its batch's rows from the memory-mapped Arrow cache."""
    path = tmp_path / "large.parquet"
    size = write_large_vectors(path, rows=65_536, dim=4096, classes=256)
    data_mb = size / 2**20
    assert data_mb > 1000
    space = {
        "name": "large",
        "data": {"source": "parquet", "path": str(path), "split": {"val": 0.1, "test": 0.0}},
        "model": {"backbone": "mlp", "embedding_dim": 16, "hidden_dim": 32},
        "train": {"epochs": 1, "batch": {"classes": 8, "per_class": 16}, "workers": 2},
        "search": tiny_search({"loss": "ContrastiveLoss"}, trials=1),
    }
    _, (child,) = search(tmp_path, space)
    assert child.info.status == "FINISHED"
    peak = child.data.metrics["memory.rss_anon_peak_mb"]  # rank 0, sampled during the epoch
    client = MlflowClient(space["tracking"]["uri"])
    history = client.get_metric_history(child.info.run_id, "memory.rss_anon_mb")
    at_setup = next(m.value for m in history if m.step == 0)  # torch, model, labels: no inputs
    print(f"data {data_mb:.0f} MiB; worker RssAnon {at_setup:.0f} MiB after setup, peak {peak:.0f}")
    assert peak < data_mb / 2, (peak, data_mb)
    assert peak - at_setup < data_mb / 8, (peak, at_setup, data_mb)


def test_the_readme_quickstart_runs_as_shipped(ray_instance: None, tmp_path: Path) -> None:
    """The README's first command runs search_spaces/vectors.yaml: as shipped (its budget, its
    sampler, its control), with only the store moved under tmp_path. Every trial ends, the vectors
    are the bar, the test estimate retrains the chosen recipe and the control, and the verdict
    names one of the three."""
    space = yaml.safe_load((ROOT / "search_spaces" / "vectors.yaml").read_text())
    space["data"]["path"] = str(ROOT / "search_spaces" / space["data"]["path"])
    parent, children = search(tmp_path, space)
    assert len(children) == space["search"]["trials"]
    assert all(c.info.status == "FINISHED" for c in children)  # finished or stopped by ASHA
    metrics, tags = parent.data.metrics, parent.data.tags
    assert metrics[f"best.{MAP}"] >= metrics[f"control.{MAP}"]  # the control is trial 1
    assert metrics[f"control.{MAP}"] > metrics[f"pretrained.{MAP}"]
    assert metrics["confirm.control.seeds"] == 2 and metrics["confirm.1.seeds"] == 2
    assert tags["minesearch.verdict"] in ("fine_tuned_better", "control_better")


def test_the_reference_is_scored_while_a_trial_holds_every_cpu(
    ray_instance: None, tmp_path: Path
) -> None:
    """The pretrained reference's task holds none of Ray's CPUs, so a first trial that needs all of
    them starts beside it, not after it; polled before it is done it logs nothing, once done it
    logs the scores on the parent run and tells the user, once. Its Tune callback, pickled with
    the Tuner's state (a resumed search), comes back without the task."""
    import pickle
    from types import SimpleNamespace

    import ray

    from minesearch.config import parse_spec
    from minesearch.search._reference import ReferenceCallback, start_reference

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(9), 6)
    vectors = rng.normal(size=(9, 8))[labels] + 0.3 * rng.normal(size=(len(labels), 8))
    path = tmp_path / "vectors.parquet"
    emb = pa.array(list(vectors.astype(np.float32)), pa.list_(pa.float32()))
    pq.write_table(pa.table({"cls": labels, "emb": emb}), path)
    spec = parse_spec(
        {
            "name": "reference",
            "data": {
                "source": "parquet",
                "path": str(path),
                "label_column": "cls",
                "input_column": "emb",
                "split": {"val": 0.34, "test": 0.0, "seed": 0},
                "cache_dir": str(tmp_path / "cache"),
            },
        }
    )
    logged: list[dict[str, float]] = []
    told: list[str] = []
    parent = SimpleNamespace(metrics=dict, log_metrics=logged.append)
    setup = SimpleNamespace(storage_path=str(tmp_path))
    search: Any = SimpleNamespace(spec=spec, setup=setup, parent=parent, tell=told.append)

    @ray.remote(num_cpus=2)
    class Trial:  # holds every CPU of the test's Ray, as a 2-CPU trial does
        def ready(self) -> bool:
            return True

    trial = Trial.remote()  # type: ignore[attr-defined]
    try:
        assert ray.get(trial.ready.remote(), timeout=60)
        reference = start_reference(search)
        assert reference is not None
        assert not logged  # submitted, not waited for
        done, _ = ray.wait(list(reference.pending.values()), timeout=60)
        assert done, "the reference waited for a CPU"
    finally:
        ray.kill(trial)
    reference.poll()
    reference.poll()
    assert len(logged) == 1 and len(told) == 1
    assert f"{MAP} {logged[0][f'pretrained.{MAP}']:.4f} on val" in told[0]
    callback = pickle.loads(pickle.dumps(ReferenceCallback(reference)))
    assert callback.reference is None
