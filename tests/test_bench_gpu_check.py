"""bench/gpu_check.sh, the script prepared for a lent GPU machine, still runs: its dry run (the same
code on the CPU at tiny sizes) on the PML and faiss stand-ins that machine needs, and the
stand-ins give what the real libraries give."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from conftest import load_script

from minesearch.catalog import TRIPLET_TYPES, build_miner

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"
STUBS = ROOT / "bench" / "gpu_stubs"


# Started in the script's Python (a sitecustomize on PYTHONPATH): the GPU machine's missing
# libraries cannot be imported, except PML's and faiss's stand-ins from bench/gpu_stubs.
GPU_MACHINE = """
import importlib.machinery, sys

MISSING = {missing!r}


class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in MISSING or "." in name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, [{stubs!r}])
        if spec is None:
            raise ModuleNotFoundError(f"No module named {{name!r}} (the GPU machine has none)")
        return spec


sys.meta_path.insert(0, Missing())
"""
MISSING = ("ray", "optuna", "mlflow", "pydantic", "faiss", "pytorch_metric_learning", "timm")


def run_script(*args: str, site: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    if site is not None:
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(
            GPU_MACHINE.format(missing=list(MISSING), stubs=str(STUBS))
        )
        env["PYTHONPATH"] = str(site)
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_the_dry_run_completes_without_the_libraries_the_gpu_machine_lacks(
    tmp_path: Path,
) -> None:
    out = tmp_path / "gpu_check.json"
    done = run_script("--dry-run", "--json", str(out), site=tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["failures"] == [] and result["dry_run"]
    assert result["stubs"] == ["pytorch_metric_learning", "faiss"]  # found, as missing
    for model in ("minilm", "image"):
        steps = result[model]["steps"]
        assert list(steps) == ["fp32", "bf16", "fp16"]
        assert all(s["seconds"] > 0 and s["peak_mib"] is None for s in steps.values())
        assert 0 < result[model]["loss_share_of_bf16_step"] < math.inf
    assert result["evaluator"]["largest_difference"] == 0.0
    assert result["miner"]["same"] and result["miner"]["triplets"] > 0
    assert "timm is missing" in done.stdout and "gpu_check: done" in done.stdout


def test_without_a_gpu_the_real_run_says_so_and_exits_2() -> None:
    done = run_script()
    assert done.returncode == 2
    assert "no CUDA device here; --dry-run" in done.stderr and "Traceback" not in done.stderr


def load_stub_faiss() -> ModuleType:
    return load_script(STUBS / "faiss.py", "faiss_stub")


def test_the_faiss_stand_in_finds_faiss_neighbours() -> None:
    import faiss

    gen = np.random.default_rng(0)
    base = gen.standard_normal((300, 8)).astype(np.float32)
    base[10:20] = base[0]  # exact ties: the lower row comes first in both
    # more queries than the stand-in searches at once
    queries = np.concatenate([base[::7], gen.standard_normal((2100, 8)).astype(np.float32)])
    _, expected = faiss.knn(queries, base, 15)
    _, found = load_stub_faiss().knn(queries, base, 15)
    assert np.array_equal(found, expected)


MINE_WITH_STUBS = """
import json, sys
sys.path.insert(0, {stubs!r})
import torch
import pytorch_metric_learning
assert pytorch_metric_learning.__version__ == "stub"
from minesearch.catalog import build_miner
emb, labels = torch.load({batch!r})
out = {{}}
for kind in {kinds!r}:
    miner = build_miner("TripletMarginMiner", {{"type_of_triplets": kind}})
    out[kind] = [t.tolist() for t in miner(emb, labels)]
print(json.dumps(out))
"""


def test_the_catalog_miner_on_the_pml_stand_in_mines_as_on_pml(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(48, 16, generator=gen), dim=1)
    labels = torch.arange(12).repeat_interleave(4)
    torch.save((emb, labels), tmp_path / "batch.pt")
    code = MINE_WITH_STUBS.format(
        stubs=str(STUBS), batch=str(tmp_path / "batch.pt"), kinds=list(TRIPLET_TYPES)
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    stubbed = json.loads(done.stdout)
    for kind in TRIPLET_TYPES:
        miner = build_miner("TripletMarginMiner", {"type_of_triplets": kind})
        assert miner is not None
        expected = [t.tolist() for t in miner(emb, labels)]
        assert stubbed[kind] == expected and expected[0], kind
