"""TripletMarginMiner: the catalog's (minesearch.catalog._triplet_miner) against PML's.

Run: python bench/mining.py [--quick] [--sizes 512 1024 2048] [--threads N]

Batches of B = 512, 1024, 2048 L2-normalised 128-d embeddings, 8 per class (class-contiguous, as
the training batches are), margin 0.2, each type_of_triplets. Each arm runs in a fresh subprocess
that builds its batch and miner, runs a small call (imports and thread pools warm), resets the
kernel's peak-RSS mark (writing 5 to /proc/self/clear_refs), records VmRSS, mines three times
(each output freed before the next call) and reads VmHWM: memory = VmHWM - VmRSS before, all of
torch's allocations included (tracemalloc would not see them); where clear_refs cannot be written
it falls back to getrusage's max RSS since the child started, and says so. Time is the fastest of
the three calls' wall times (the machine is shared).

Arms: PML's miner; ours as the catalog builds it (output capped at max_triplets = 2**22 triplets,
a uniform sample, logged); ours with max_triplets=None (PML's exact output, whatever its size).
Ours uncapped must return PML's triplets in PML's order (checked here by count and a checksum).
Targets (issue 12): peak memory <= 1/5 of PML's, time <= PML's. The output is what no algorithm
can shrink: with "all" (and "hard"/"semihard" on an untrained embedding) nearly every one of the
B (per_class - 1)(B - per_class) triplets qualifies (B=2048: 29M, 0.7 GB of int64 indices), so the
uncapped arm cannot meet the memory target there; the cap is what bounds it.

PML is skipped where its estimated peak (B^3 bytes of mask below B^3 = 2**31, where it switches to
a Python loop over anchors, plus ~60 bytes per valid triplet) exceeds --max-gib.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _arms import PeakMemory, run_fresh  # bench/: the script's own directory

ROOT = Path(__file__).resolve().parents[1]
DIM = 128
PER_CLASS = 8
MARGIN = 0.2
TYPES = ("all", "hard", "semihard", "easy")
SIZES = (512, 1024, 2048)
QUICK_SIZES = (256,)
QUICK_TYPES = ("semihard",)
ARMS = ("pml", "ours", "ours-uncapped")
# torch's and BLAS's thread pools (torch and faiss read them at start-up): --threads sets them.
REPEATS = 3  # calls per arm: the fastest is reported (the machine is shared), the peak is of all
MEMORY_TARGET, TIME_TARGET = 1 / 5, 1.0


def make_batch(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(size, DIM, generator=gen), dim=1)
    return emb, torch.arange(size // PER_CLASS).repeat_interleave(PER_CLASS)  # (B, 128), (B,)


def build(arm: str, type_of_triplets: str) -> torch.nn.Module:
    if arm == "pml":
        from pytorch_metric_learning import miners

        pml: torch.nn.Module = miners.TripletMarginMiner(MARGIN, type_of_triplets)
        return pml
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # this worktree's minesearch, whatever is installed
    from minesearch.catalog import build_miner
    from minesearch.catalog._triplet_miner import TripletMarginMiner

    if arm == "ours":
        miner = build_miner(
            "TripletMarginMiner", {"margin": MARGIN, "type_of_triplets": type_of_triplets}
        )
        assert miner is not None
        return miner
    return TripletMarginMiner(MARGIN, type_of_triplets, max_triplets=None)


def measure(arm: str, size: int, type_of_triplets: str) -> dict[str, Any]:
    """In the child: one mining call, its wall time and peak RSS above what was there before."""
    miner = build(arm, type_of_triplets)
    miner(*make_batch(64))  # imports, thread pools
    emb, labels = make_batch(size)
    memory = PeakMemory()
    memory.start()
    times = []
    for _ in range(REPEATS - 1):
        start = time.perf_counter()
        miner(emb, labels)  # the output is freed at once
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    a, p, n = miner(emb, labels)
    times.append(time.perf_counter() - start)
    peak_above = memory.above()
    # Order-sensitive (position-weighted; int64 wraps the same way in every arm).
    checksum = int((((a * size + p) * size + n) * torch.arange(1, len(a) + 1)).sum())
    return {
        "seconds": min(times),
        "peak_bytes": peak_above,
        "method": memory.method,
        "triplets": len(a),
        "checksum": checksum,
    }


def run_arm(arm: str, size: int, type_of_triplets: str, threads: int | None) -> dict[str, Any]:
    args = ["--arm", arm, "--size", str(size), "--type", type_of_triplets]
    return run_fresh(__file__, args, f"{arm} B={size} {type_of_triplets}", threads)


def valid_triplets(size: int) -> int:
    return size * (PER_CLASS - 1) * (size - PER_CLASS)


def pml_estimate_bytes(size: int) -> float:
    mask = size**3 if size**3 < 2**31 else 0  # PML's vectorised path, else its loop
    return mask + 60 * valid_triplets(size)


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.0f} MB"


def compare(
    size: int, type_of_triplets: str, max_bytes: float, threads: int | None, judge: bool
) -> dict[str, bool]:
    """One batch size and type: all arms, a line each, and the targets' verdicts (`judge`)."""
    results: dict[str, dict[str, Any]] = {}
    for arm in ARMS:
        if arm == "pml" and pml_estimate_bytes(size) > max_bytes:
            print(
                f"  B={size:<5} {type_of_triplets:<9} pml            skipped: estimated peak "
                f"{_mb(pml_estimate_bytes(size))} exceeds --max-gib"
            )
            continue
        results[arm] = run_arm(arm, size, type_of_triplets, threads)
    verdicts: dict[str, bool] = {}
    pml = results.get("pml")
    for arm, result in results.items():
        line = (
            f"  B={size:<5} {type_of_triplets:<9} {arm:<14} {result['seconds']:7.3f} s  peak "
            f"+{_mb(result['peak_bytes']):>9}  {result['triplets']:>11,} triplets"
        )
        if pml is not None and arm != "pml":
            time_ratio = result["seconds"] / pml["seconds"]
            memory_ratio = result["peak_bytes"] / max(pml["peak_bytes"], 1)
            met = time_ratio <= TIME_TARGET and memory_ratio <= MEMORY_TARGET
            verdicts[arm] = met
            line += f"   time x{time_ratio:.2f}, memory x{memory_ratio:.3f}"
            line += f" ({'met' if met else 'NOT met'})" if judge else ""
            if arm == "ours-uncapped":
                same = (result["triplets"], result["checksum"]) == (
                    pml["triplets"],
                    pml["checksum"],
                )
                line += "" if same else "  TRIPLETS DIFFER FROM PML'S"
                verdicts["same triplets"] = same
            elif result["triplets"] < pml["triplets"]:
                line += f"  (capped: {result['triplets']:,} of {pml['triplets']:,})"
        print(line)
    return verdicts


def main(
    sizes: tuple[int, ...] = SIZES,
    types: tuple[str, ...] = TYPES,
    max_gib: float = 8.0,
    threads: int | None = None,
    judge: bool = True,
) -> bool:
    """Every size and type; True when the uncapped arm gave PML's triplets everywhere. `judge`:
    print whether the targets are met (not for quick sizes, where the output dominates)."""
    print(
        f"TripletMarginMiner, PML vs minesearch; {os.cpu_count()} CPUs, threads "
        f"{threads or torch.get_num_threads()}; dim {DIM}, {PER_CLASS} per class, margin {MARGIN}; "
        f"memory = peak RSS of the calls, per fresh process; targets: memory <= "
        f"{MEMORY_TARGET:.2f} x PML, time <= {TIME_TARGET:.2f} x PML; 'ours' caps the output at "
        "2**22 triplets (uniform sample, logged), 'ours-uncapped' returns PML's exact output"
    )
    same = True
    for size in sizes:
        for type_of_triplets in types:
            verdicts = compare(size, type_of_triplets, max_gib * 2**30, threads, judge)
            same &= verdicts.get("same triplets", True)
    return same


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="B=256, semihard, no targets: seconds")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--max-gib", type=float, default=8.0, help="skip PML beyond this")
    parser.add_argument("--threads", type=int, help="thread pools of each arm (default: torch's)")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--type", choices=TYPES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(measure(args.arm, args.size, args.type)))
    elif args.quick:
        main(QUICK_SIZES, QUICK_TYPES, args.max_gib, args.threads, judge=False)
    else:
        main(tuple(args.sizes), TYPES, args.max_gib, args.threads)
