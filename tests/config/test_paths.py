"""A space file's relative paths are relative to it; a file that is not UTF-8 is bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from minesearch.cli import main
from minesearch.config import SpecError, load_spec
from minesearch.data import DataError


def write_space(folder: Path, **sections: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump({"name": "paths", **sections}))
    return path


def test_relative_paths_are_resolved_against_the_space_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = write_space(
        tmp_path / "spaces",
        data={"source": "parquet", "path": "data/x.parquet", "cache_dir": "cache"},
        storage_path="runs",
        tracking={"uri": "sqlite:///store/mlflow.db"},
    )
    (tmp_path / "spaces" / "data").mkdir()
    (tmp_path / "spaces" / "data" / "x.parquet").write_bytes(b"")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the command runs from another directory
    spec = load_spec(Path("..") / "spaces" / "space.yaml")
    folder = (tmp_path / "spaces").resolve()
    assert spec.data.path == str(folder / "data" / "x.parquet")
    assert spec.data.cache_dir == str(folder / "cache")
    assert spec.storage_path == str(folder / "runs")
    assert spec.tracking.uri == f"sqlite:///{folder / 'store' / 'mlflow.db'}"
    assert space.is_file()


def test_absolute_paths_and_uris_stay_as_given(tmp_path: Path) -> None:
    target = tmp_path / "abs.parquet"
    target.write_bytes(b"")
    space = write_space(
        tmp_path / "s",
        data={"source": "parquet", "path": str(target)},
        storage_path="s3://bucket/runs",
        tracking={"uri": "http://127.0.0.1:5000"},
    )
    spec = load_spec(space)
    assert spec.data.path == str(target)
    assert spec.storage_path == "s3://bucket/runs"
    assert spec.tracking.uri == "http://127.0.0.1:5000"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("python:nets/my_net.py:build", "python:{folder}/nets/my_net.py:build"),
        ("python:/abs/my_net.py:build", "python:/abs/my_net.py:build"),
        ("python:my_models.nets:build", "python:my_models.nets:build"),  # a module: the path's
        ("convnet", "convnet"),
    ],
)
def test_a_python_backbone_file_is_next_to_the_space_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, expected: str
) -> None:
    """Like data.path: workers (Ray changes their directory) and `minesearch export` (run from
    anywhere) load the same file."""
    space = write_space(tmp_path / "spaces", model={"backbone": given})
    monkeypatch.chdir(tmp_path)
    spec = load_spec(Path("spaces") / "space.yaml")
    assert spec.model.backbone == expected.format(folder=(tmp_path / "spaces").resolve())
    assert space.is_file()


def test_a_missing_relative_path_is_named_by_the_absolute_path_tried(tmp_path: Path) -> None:
    space = write_space(tmp_path / "s", data={"source": "parquet", "path": "nope.parquet"})
    with pytest.raises(SpecError) as err:
        load_spec(space)
    assert str((tmp_path / "s" / "nope.parquet").resolve()) in str(err.value)


def test_a_space_file_that_is_not_utf8_exits_2_without_a_traceback(tmp_path: Path) -> None:
    space = tmp_path / "latin1.yaml"
    space.write_bytes("name: caf\xe9\n".encode("latin-1"))
    for command in ("validate", "run"):
        result = CliRunner().invoke(main, [command, str(space)])
        assert result.exit_code == 2, result.output
        assert "not UTF-8 text" in result.output and "Traceback" not in result.output


def test_errors_raised_in_a_ray_worker_survive_pickling() -> None:
    """Ray re-raises a worker's exception in the driver: it must unpickle as it was."""
    for error in (DataError("data.path", "gone"), SpecError("x.yaml", ["a", "b"])):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)
