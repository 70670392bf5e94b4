"""Where report, export and embed write: a path that cannot be a directory is bad input (exit 2,
the path named, no traceback), found before any store or model is read."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from minesearch.cli import main


@pytest.mark.parametrize(
    ("command", "what"),
    [
        (["report", "--out", "{blocked}/plots"], "--out"),
        (["export", "best", "--out", "{blocked}/model"], "--out"),
        (["embed", "model", "data.parquet", "{blocked}/sub/out.parquet"], "OUT"),
    ],
    ids=["report", "export", "embed"],
)
def test_an_output_under_a_file_exits_2_naming_it(
    tmp_path: Path, command: list[str], what: str
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    args = [part.format(blocked=blocked) for part in command]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert result.output.startswith(f"error: {what}: cannot create the directory {blocked}")
    assert not (tmp_path / "mlflow.db").exists()  # nothing was read (or created) first
