"""The benchmarks still run against the current code (one epoch each): a bench that rots is only
found when someone needs its numbers."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

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


def load_bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def test_evaluation_bench_quick_mode_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """Both arms in their own processes on one small case; their scores must agree."""
    agree = load_bench("evaluation").main(quick=True)
    out = capsys.readouterr().out
    assert "PML AccuracyCalculator" in out and "minesearch (chunked)" in out
    assert re.search(r"ours/PML: time \d+\.\d+, memory \d+\.\d+", out)
    assert agree and "(ok)" in out


def test_mining_bench_quick_mode_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """PML's miner and ours in their own processes; ours uncapped must give PML's triplets."""
    bench = load_bench("mining")
    same = bench.main(bench.QUICK_SIZES, bench.QUICK_TYPES, judge=False)
    out = capsys.readouterr().out
    for arm in ("pml", "ours", "ours-uncapped"):
        assert re.search(rf"B=256 +semihard +{arm} +\d+\.\d+ s", out), arm
    assert re.search(r"ours-uncapped .* time x\d+\.\d+, memory x\d+\.\d+", out)
    assert same and "DIFFER" not in out
