"""`minesearch validate` / `run` on bad input: exit 2, the field named, no traceback, no Ray."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
import yaml
from click.testing import CliRunner, Result

from minesearch import cli

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "search_spaces" / "quickstart.yaml"


def quickstart() -> dict[str, Any]:
    raw = yaml.safe_load(QUICKSTART.read_text())
    assert isinstance(raw, dict)
    return raw


def write(path: Path, raw: Any) -> Path:
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args))


def assert_bad_input(result: Result, *fields: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.output.startswith("error: ")
    for field in fields:
        assert field in result.output, (field, result.output)


def test_validate_quickstart_ok() -> None:
    result = invoke("validate", str(QUICKSTART))
    assert result.exit_code == 0, result.output
    assert "ok (quickstart-digits: 10 trials x 4 epochs)" in result.output


def _with(raw: dict[str, Any], section: str, key: str, value: Any) -> dict[str, Any]:
    raw.setdefault(section, {})[key] = value
    return raw


BAD_FILES: dict[str, tuple[Any, tuple[str, ...]]] = {
    "misspelled-key": (
        {"name": "t", "trian": {"epochs": 2}},
        ("trian: unknown key", "did you mean 'train'?"),
    ),
    "nested-key": ({"name": "t", "train": {"epoch": 2}}, ("train.epoch:", "'epochs'")),
    "wrong-type": ({"name": "t", "train": {"epochs": "many"}}, ("train.epochs:", "'many'")),
    "unknown-loss": (
        {"name": "t", "search": {"params": {"loss": ["TripletMarginLos"]}}},
        ("search.params.loss:", "did you mean 'TripletMarginLoss'?"),
    ),
    "unknown-miner": (
        {"name": "t", "search": {"params": {"miner": ["TripletMarginMinr"]}}},
        ("search.params.miner:", "did you mean 'TripletMarginMiner'?"),
    ),
    "triplet-type": (
        {
            "name": "t",
            "search": {
                "params": {"miner": ["TripletMarginMiner"], "type_of_triplets": ["semi-hard"]}
            },
        },
        ("search.params.type_of_triplets:", "did you mean 'semihard'?"),
    ),
    "bad-range": (
        {"name": "t", "search": {"params": {"lr": {"low": 0, "high": 0.1, "log": True}}}},
        ("search.params.lr:", "low > 0"),
    ),
    "parquet-no-path": (
        {"name": "t", "data": {"source": "parquet"}},
        ("data.path:", "needs data.path"),
    ),
    "not-a-mapping": ("- name: t\n", ("must be a mapping",)),
    "invalid-yaml": ("name: t\ntrain: {epochs: 2\n", ("not valid YAML",)),
    "several": (
        {"name": "t", "train": {"workers": 0}, "search": {"trials": 0}},
        ("train.workers:", "search.trials:", "2 problem(s)"),
    ),
    "unknown-sampler": (
        {"name": "t", "search": {"sampler": {"name": "tpee"}}},
        ("search.sampler.name:", "did you mean 'tpe'?", "'cmaes'"),
    ),
    "unknown-scheduler": (
        {"name": "t", "search": {"scheduler": {"name": "ashaa"}}},
        ("search.scheduler.name:", "did you mean 'asha'?"),
    ),
    "unknown-metric": (
        {"name": "t", "search": {"metric": "map_at_r"}},
        ("search.metric:", "'mean_average_precision_at_r'"),
    ),
    "no-valid-combination": (
        {"name": "t", "search": {"params": {"loss": "ArcFaceLoss", "miner": "BatchHardMiner"}}},
        ("search.params.loss:", "ArcFaceLoss works with none of the miners"),
    ),
    "low-above-high": (
        {"name": "t", "search": {"params": {"margin": {"low": 0.5, "high": 0.1}}}},
        ("search.params.margin:", "low must be <= high"),
    ),
    "negative-margin": (
        {"name": "t", "search": {"params": {"margin": [-0.1, 0.2]}}},
        ("search.params.margin:", "-0.1 must be >= 0.0", "TripletMarginLoss"),
    ),
    "probability-above-one": (
        {"name": "t", "search": {"params": {"miner": "HDCMiner", "filter_percentage": 1.5}}},
        ("search.params.filter_percentage:", "must be <= 1.0"),
    ),
    "per-class-1": (
        {"name": "t", "train": {"batch": {"per_class": 1}}},
        ("train.batch.per_class:", "greater than or equal to 2"),
    ),
    "epochs-0": ({"name": "t", "train": {"epochs": 0}}, ("train.epochs:", "(given 0)")),
    "parquet-absent": (
        {"name": "t", "data": {"source": "parquet", "path": "absent.parquet"}},
        ("data.path:", "not found"),
    ),
    "split-too-small": (
        {"name": "t", "data": {"split": {"val": 0.1, "test": 0.0}}},
        ("data.split:",),
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_validate_bad_file_exits_2(tmp_path: Path, case: str) -> None:
    raw, fields = BAD_FILES[case]
    path = write(tmp_path / f"{case}.yaml", raw)
    assert_bad_input(invoke("validate", str(path)), str(path), *fields)


def test_validate_missing_file(tmp_path: Path) -> None:
    assert_bad_input(invoke("validate", str(tmp_path / "absent.yaml")), "cannot read")


def test_validate_too_many_batch_classes_for_split(tmp_path: Path) -> None:
    # Quickstart holds 3 of digits' 10 classes out for validation: 7 are left to train on.
    raw = quickstart()
    raw["train"]["batch"]["classes"] = 10
    result = invoke("validate", str(write(tmp_path / "space.yaml", raw)))
    assert_bad_input(result, "train.batch.classes:", "only 7 classes")


def test_validate_quickstart_batch_of_all_training_classes_ok(tmp_path: Path) -> None:
    raw = quickstart()
    raw["train"]["batch"]["classes"] = 7
    raw["train"]["workers"] = 1  # 7 classes cannot split evenly over 2 workers
    result = invoke("validate", str(write(tmp_path / "space.yaml", raw)))
    assert result.exit_code == 0, result.output


def test_validate_file_that_is_not_parquet(tmp_path: Path) -> None:
    data = tmp_path / "emb.parquet"
    data.write_text("label,features\n1,0.5\n")
    raw: dict[str, Any] = {"name": "t", "data": {"source": "parquet", "path": str(data)}}
    result = invoke("validate", str(write(tmp_path / "space.yaml", raw)))
    assert_bad_input(result, "data.path:", str(data))


def test_validate_parquet_missing_column(tmp_path: Path) -> None:
    data = tmp_path / "emb.parquet"
    table = pa.table(
        {"label": list(range(10)) * 4, "vector": [[float(i), 1.0, 2.0] for i in range(40)]}
    )
    pq.write_table(table, data)
    raw: dict[str, Any] = {"name": "t", "data": {"source": "parquet", "path": str(data)}}
    result = invoke("validate", str(write(tmp_path / "space.yaml", raw)))
    assert_bad_input(result, "data.input_column:", "no column 'features'", "label, vector")
    raw["data"]["input_column"] = "vector"
    result = invoke("validate", str(write(tmp_path / "space.yaml", raw)))
    assert result.exit_code == 0, result.output


def test_validate_path_with_digits(tmp_path: Path) -> None:
    data = tmp_path / "x.parquet"
    data.touch()
    raw = {"name": "t", "data": {"source": "digits", "path": str(data)}}
    result = invoke("validate", str(write(tmp_path / "space.yaml", raw)))
    assert_bad_input(result, "data.path:", "only used with source 'parquet'")


@pytest.fixture
def no_search(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("run_search called on a file that does not validate")

    from minesearch import search

    monkeypatch.setattr(search, "run_search", must_not_run)


@pytest.mark.usefixtures("no_search")
def test_run_bad_file_exits_2_before_ray(tmp_path: Path) -> None:
    raw = quickstart()
    raw["search"]["params"]["loss"] = ["TripletMarginLoss", "ArcFaceLos"]
    result = invoke("run", str(write(tmp_path / "space.yaml", raw)))
    assert_bad_input(result, "search.params.loss:", "'ArcFaceLos'", "did you mean 'ArcFaceLoss'")
    assert not ray.is_initialized()


@pytest.mark.usefixtures("no_search")
def test_run_bad_data_exits_2_before_ray(tmp_path: Path) -> None:
    raw = quickstart()
    raw["train"]["batch"]["classes"] = 9
    result = invoke("run", str(write(tmp_path / "space.yaml", raw)))
    assert_bad_input(result, "train.batch.classes:")
    assert not ray.is_initialized()


def test_run_unusable_storage_exits_2_before_ray(tmp_path: Path) -> None:
    """A storage directory that cannot be made is bad input, named, before any Ray starts."""
    (tmp_path / "file").write_text("not a directory")
    space = write(tmp_path / "space.yaml", quickstart())
    result = invoke("run", str(space), "--storage-path", str(tmp_path / "file"))
    assert_bad_input(result, "--storage-path: cannot create", str(tmp_path / "file"))
    assert not ray.is_initialized()


def test_run_on_a_file_store_exits_2_before_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow 3.17 refuses a file store (./mlruns) unless told otherwise: said before Ray starts,
    naming what named the store, not as MLflow's traceback seconds into the search."""
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    raw = quickstart() | {"tracking": {"uri": "mlruns"}}
    result = invoke("run", str(write(tmp_path / "space.yaml", raw)))
    found = (tmp_path / "mlruns").as_uri()
    assert_bad_input(result, f"tracking.uri: {found} is an MLflow file store", "sqlite:///")
    assert not ray.is_initialized()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "./mlruns")
    result = invoke("run", str(write(tmp_path / "space.yaml", quickstart())))
    assert_bad_input(result, "MLFLOW_TRACKING_URI: file://", "MLFLOW_ALLOW_FILE_STORE=true")
    assert not ray.is_initialized()


def test_run_on_a_server_that_does_not_answer_exits_2_before_ray(tmp_path: Path) -> None:
    """Not minutes of MLflow's retries with nothing printed: one request, then the error."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    raw = quickstart() | {"tracking": {"uri": f"http://127.0.0.1:{port}"}}
    result = invoke("run", str(write(tmp_path / "space.yaml", raw)))
    assert_bad_input(
        result, f"tracking.uri: no server answers at http://127.0.0.1:{port}", "mlflow server"
    )
    assert not ray.is_initialized()


def test_console_script_bad_file(tmp_path: Path) -> None:
    exe = shutil.which("minesearch")
    assert exe is not None, "the console script is not installed (pip install -e .)"
    path = write(
        tmp_path / "bad.yaml", {"name": "t", "search": {"params": {"loss": "Tripletloss"}}}
    )
    proc = subprocess.run(
        [exe, "validate", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "search.params.loss: unknown name 'Tripletloss'" in proc.stderr
    assert proc.stdout == ""


def test_catalog_command_prints_the_matrix() -> None:
    result = invoke("catalog")
    assert result.exit_code == 0, result.output
    assert "TripletMarginLoss" in result.output and "UniformHistogramMiner" in result.output
    with_weights = invoke("catalog", "--weight-miners")
    assert with_weights.exit_code == 0 and with_weights.output != result.output


def test_classes_must_split_evenly_over_workers(tmp_path: Path) -> None:
    raw = quickstart()
    raw["train"] |= {"workers": 2, "batch": {"classes": 5, "per_class": 8}}
    result = invoke("validate", str(write(tmp_path / "space.yaml", raw)))
    assert_bad_input(
        result, "train.batch.classes:", "multiple of train.workers=2", "given classes=5"
    )


@pytest.mark.parametrize(
    ("value", "split_test", "message"),
    [
        ("3", 0.2, "expected K,S"),
        ("3,1", 0.2, "S >= 2 seeds"),
        ("2,3", 0.0, "data.split.test is 0"),
    ],
)
def test_run_bad_confirm_exits_2_before_ray(
    tmp_path: Path, value: str, split_test: float, message: str
) -> None:
    raw = quickstart()
    raw["data"]["split"]["test"] = split_test
    raw["data"]["split"]["val"] = 0.2
    result = invoke("run", str(write(tmp_path / "s.yaml", raw)), "--confirm", value)
    assert_bad_input(result, "--confirm", message)
    assert not ray.is_initialized()


BAD_COLUMNS: dict[str, tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]] = {
    "single-class": (
        {"label": [1, 1, 1], "x": [[1.0], [2.0], [3.0]]},
        {},
        ("data.label_column:", "every row has the same class"),
    ),
    "non-numeric": (
        {"label": [1, 2, 3], "x": [["a"], ["b"], ["c"]]},
        {},
        ("data.input_column:", "'x'", "numbers"),
    ),
    "ragged": (
        {"label": [1, 2, 3], "x": [[1.0, 2.0], [3.0, 4.0], [5.0]]},
        {},
        ("data.input_column:", "'x'", "row 2"),
    ),
    "nan": (
        {"label": [1, 2, 3], "x": [[1.0], [float("nan")], [3.0]]},
        {},
        ("data.input_column:", "'x'", "row 1", "NaN"),
    ),
    "empty-text": (
        {"label": [1, 2, 3], "x": ["a cat", "  ", "a dog"]},
        {"input_type": "text"},
        ("data.input_column:", "'x'", "row 1", "empty"),
    ),
    "unreadable-image": (
        {"label": [1, 2, 3], "x": [b"\x89PNG not really", b"junk", b"more junk"]},
        {"input_type": "image"},
        ("data.input_column:", "'x'", "row 0"),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_COLUMNS))
def test_validate_bad_parquet_rows_exit_2(tmp_path: Path, case: str) -> None:
    """Each bad row is reported against its field, file, column and row; no cache is left."""
    columns, data, fields = BAD_COLUMNS[case]
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table(columns), path)
    raw = {
        "name": "t",
        "data": {"source": "parquet", "path": str(path), "input_column": "x", **data},
        "model": {"backbone": "minilm"} if data.get("input_type") == "text" else {},
    }
    cache = tmp_path / "arrow-cache"
    result = invoke("validate", str(write(tmp_path / "space.yaml", raw)))
    assert_bad_input(result, "bad.parquet", *fields)
    assert not cache.exists() or not any(cache.iterdir()), "a half-written cache was left"


def test_validate_image_folder_with_an_unreadable_image(tmp_path: Path) -> None:
    from PIL import Image

    for name in ("a", "b", "c"):
        (tmp_path / "img" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (6, 6), (i * 40, 10, 10)).save(tmp_path / "img" / name / f"{i}.png")
    (tmp_path / "img" / "b" / "broken.png").write_bytes(b"not an image")
    raw = {
        "name": "t",
        "data": {"source": "image_folder", "path": str(tmp_path / "img"), "split": {"test": 0}},
        "train": {"batch": {"classes": 2, "per_class": 2}},
    }
    result = invoke("validate", str(write(tmp_path / "space.yaml", raw)))
    assert_bad_input(result, "data.path:", "broken.png")


# --- python: backbones: the factory is imported and called once, here -------------------------

FACTORY = """
from torch import nn

def good(inputs):
    return nn.Flatten(), 64

def raises(inputs):
    raise RuntimeError("checkpoint missing")

def wrong_return(inputs):
    return nn.Flatten()

def wrong_width(inputs):
    return nn.Flatten(), 10
"""


def python_space(tmp_path: Path, backbone: str) -> Path:
    (tmp_path / "nets.py").write_text(FACTORY)
    raw = quickstart()
    raw["model"] = {"backbone": backbone, "embedding_dim": 16}
    return write(tmp_path / "space.yaml", raw)


def test_validate_calls_a_python_factory_next_to_the_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = python_space(tmp_path, "python:nets.py:good")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the file is found next to the space, not in the cwd
    result = invoke("validate", str(space))
    assert result.exit_code == 0, result.output


PYTHON_BACKBONES = {
    "no-module": ("python:not_here:good", "no module named 'not_here'", "sys.path: ["),
    "no-file": ("python:other.py:good", "no such file", "other.py"),
    "no-function": ("python:nets.py:gone", "has no function 'gone'", "its functions: good"),
    "raises": ("python:nets.py:raises", "raised RuntimeError: checkpoint missing", "raises("),
    "wrong-return": ("python:nets.py:wrong_return", "must return (module, out_dim)", "Flatten"),
    "wrong-width": ("python:nets.py:wrong_width", "returned [2, 64]", "said out_dim 10"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(PYTHON_BACKBONES))
def test_validate_a_bad_python_backbone_exits_2(tmp_path: Path, case: str) -> None:
    backbone, *expected = PYTHON_BACKBONES[case]
    result = invoke("validate", str(python_space(tmp_path, backbone)))
    assert_bad_input(result, "model.backbone", *expected)


@pytest.mark.usefixtures("no_search")
def test_run_a_bad_python_backbone_exits_2_before_ray(tmp_path: Path) -> None:
    result = invoke("run", str(python_space(tmp_path, "python:nets.py:raises")))
    assert_bad_input(result, "model.backbone", "checkpoint missing")
    assert not ray.is_initialized()
