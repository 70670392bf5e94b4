"""The benchmarks still run against the current code (one epoch each): a bench that rots is only
found when someone needs its numbers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_telemetry_overhead_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location(
        "telemetry_overhead", BENCH / "telemetry_overhead.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(epochs=1)
    out = capsys.readouterr().out
    assert "contrastive+batchhard" in out and "%" in out
