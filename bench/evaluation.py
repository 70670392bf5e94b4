"""Retrieval evaluation: minesearch's chunked evaluator against PML's AccuracyCalculator.

Run: python bench/evaluation.py [--quick | --largest-n] [--threads N]

Each arm runs in a fresh subprocess on the same seeded data (L2-normalised float32, 128-d; classes
of 50 around random centres); --threads N sets the thread pools of both. Memory is the arm's own
peak: the child imports and warms up its arm (a worker has paid its imports long before), makes
its data, resets the kernel's peak-RSS mark (writing 5 to /proc/self/clear_refs), records VmRSS,
evaluates, and reads VmHWM; peak = VmHWM - VmRSS before the call (torch's and faiss's allocations
included, which tracemalloc would not see). Where clear_refs cannot be written the child says so
and falls back to getrusage's max RSS since its start. Time is the call's wall time. The PML arm
is the code minesearch used before (`pml_retrieval_scores`: AccuracyCalculator with
k="max_bin_count" plus a Recall@K metric); the tests use it as the reference too.

Cases and targets (issue 12): 100k rows x 128, 50 per class: memory <= 1/5 and time <= PML's;
20k rows, one class of 5,000 (the rest 50 per class): time <= 1/5 and memory <= 1/10 of PML's.
The scores of both arms are compared (they must agree to 1e-6).

--largest-n: for each arm, the largest N (50 per class, 128-d) whose evaluation keeps the whole
process under 4 GiB: 25k, 50k and 100k rows are measured, the peak fitted as a + bN + cN^2
(PML's label count grows as N^2/50) or a + bN (ours), and where a run at the fitted limit would take
under --max-seconds (time grows as N^2: exact search) runs around it find the limit to 5,000 rows;
otherwise the largest N that runs in that time is measured too, and the N where the fit through
all the runs crosses 4 GiB is reported as an extrapolation, with the time a run would take.
--quick: a few thousand rows, seconds (tests/test_bench.py runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _arms import PeakMemory, run_fresh  # bench/: the script's own directory

ROOT = Path(__file__).resolve().parents[1]
DIM = 128
PER_CLASS = 50
GIB = 2**30
LIMIT = 4 * GIB
TOLERANCE = 1e-6
METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r")
# The thread pools of torch, faiss (OpenMP) and BLAS, read at start-up: --threads sets them.


@dataclass(frozen=True)
class Case:
    name: str
    rows: int
    big_class: int  # members of the one large class; 0: every class has PER_CLASS
    time_target: float | None = None  # ours / PML at most (None: too small to judge)
    memory_target: float | None = None


CASES = (
    Case("100k x 128, 50 per class", 100_000, 0, time_target=1.0, memory_target=1 / 5),
    Case("20k x 128, one class of 5,000", 20_000, 5_000, time_target=1 / 5, memory_target=1 / 10),
)
QUICK = (Case("quick: 3k x 128, one class of 600 (no targets)", 3_000, 600),)


# --- the two arms -------------------------------------------------------------------------------


def pml_retrieval_scores(
    embeddings: torch.Tensor | np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 2, 4, 8)
) -> dict[str, Any]:
    """The evaluation minesearch had before issue 12, through PML's AccuracyCalculator.

    Labels must already be dense ids (PML casts them to float32). Returns the metric values and
    recall_at_k as {k: value}, as `RetrievalScores` holds them.
    """
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    ks = tuple(sorted(set(ks)))

    class RecallAccuracyCalculator(AccuracyCalculator):
        def requires_knn(self) -> list[str]:
            return [*super().requires_knn(), "recall_at_k"]

        def determine_k(
            self, bin_counts: torch.Tensor, num_reference: int, ref_includes_query: bool
        ) -> int:
            k_for_r = int(super().determine_k(bin_counts, num_reference, ref_includes_query))
            return min(max(k_for_r, max(ks)), num_reference - int(ref_includes_query))

        def calculate_recall_at_k(
            self,
            knn_labels: torch.Tensor,
            query_labels: torch.Tensor,
            not_lone_query_mask: torch.Tensor,
            **kwargs: Any,
        ) -> dict[int, float]:
            knn_labels = knn_labels[not_lone_query_mask]
            query_labels = query_labels[not_lone_query_mask]
            hits = self.label_comparison_fn(query_labels[:, None], knn_labels)
            return {k: hits[:, :k].any(dim=1).double().mean().item() for k in ks}

    calculator = RecallAccuracyCalculator(
        include=(*METRICS, "recall_at_k"), k="max_bin_count", device=torch.device("cpu")
    )
    emb = torch.as_tensor(embeddings).detach().to("cpu", torch.float32).contiguous()
    result = calculator.get_accuracy(emb, torch.as_tensor(labels))
    return {**{m: float(result[m]) for m in METRICS}, "recall_at_k": dict(result["recall_at_k"])}


def ours(embeddings: torch.Tensor, labels: np.ndarray) -> dict[str, Any]:
    """minesearch's evaluator (this worktree's, whatever minesearch is installed)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from minesearch.train._evaluation import retrieval_scores

    scores = retrieval_scores(embeddings, labels)
    return {**{m: getattr(scores, m) for m in METRICS}, "recall_at_k": scores.recall_at_k}


ARMS: dict[str, Callable[[torch.Tensor, np.ndarray], dict[str, Any]]] = {
    "pml": pml_retrieval_scores,
    "ours": ours,
}


def warm_up(arm: str) -> None:
    """Import what the arm imports (and start faiss's threads) outside the measurement: a worker
    has paid its imports long before it evaluates."""
    emb, labels = make_data(200, 0)
    ARMS[arm](emb, labels)


def make_data(rows: int, big_class: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """(rows, 128) unit vectors in float32 and dense labels: one class of `big_class` (if any),
    then classes of PER_CLASS (the last one possibly smaller), shuffled."""
    rest = rows - big_class
    sizes = ([big_class] if big_class else []) + [PER_CLASS] * (rest // PER_CLASS)
    if rest % PER_CLASS:
        sizes.append(rest % PER_CLASS)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(len(sizes), DIM, generator=gen)
    emb = torch.randn(rows, DIM, generator=gen).mul_(2.0).add_(centres[labels])
    emb = torch.nn.functional.normalize(emb, dim=1)
    perm = torch.randperm(rows, generator=gen)
    return emb[perm].contiguous(), labels[perm.numpy()]


# --- measuring one arm in this process (the child) ----------------------------------------------


def measure(arm: str, rows: int, big_class: int) -> dict[str, Any]:
    warm_up(arm)
    emb, labels = make_data(rows, big_class)
    memory = PeakMemory()
    memory.start()
    start = time.perf_counter()
    scores = ARMS[arm](emb, labels)
    seconds = time.perf_counter() - start
    peak_above, peak = memory.above(), memory.peak_kib()
    return {
        "seconds": seconds,
        "peak_bytes": peak_above,
        "process_peak_bytes": peak * 1024,
        "method": memory.method,
        "scores": scores,
    }


def run_arm(
    arm: str, rows: int, big_class: int, timeout: float | None = None, threads: int | None = None
) -> dict[str, Any]:
    """`measure` in a fresh interpreter: imports, caches and freed memory of one arm never reach
    the other."""
    args = ["--arm", arm, "--rows", str(rows), "--big-class", str(big_class)]
    result = run_fresh(__file__, args, f"{arm} at {rows} rows", threads, timeout)
    recall = result["scores"]["recall_at_k"]
    result["scores"]["recall_at_k"] = {int(k): v for k, v in recall.items()}  # JSON made them str
    return result


# --- the side-by-side cases ---------------------------------------------------------------------


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.0f} MB"


def largest_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    diffs = [abs(a[m] - b[m]) for m in METRICS]
    diffs += [abs(a["recall_at_k"][k] - b["recall_at_k"][k]) for k in a["recall_at_k"]]
    return max(diffs)


def compare(case: Case, threads: int | None = None) -> bool:
    """Both arms on the case; prints a block and returns whether every target was met."""
    pml = run_arm("pml", case.rows, case.big_class, threads=threads)
    mine = run_arm("ours", case.rows, case.big_class, threads=threads)
    time_ratio = mine["seconds"] / pml["seconds"]
    memory_ratio = mine["peak_bytes"] / max(pml["peak_bytes"], 1)
    diff = largest_difference(mine["scores"], pml["scores"])
    print(f"\n{case.name}")
    for name, result in (("PML AccuracyCalculator", pml), ("minesearch (chunked)", mine)):
        scores = result["scores"]
        print(
            f"  {name:<24} {result['seconds']:7.2f} s  peak +{_mb(result['peak_bytes']):>9}"
            f"   P@1 {scores['precision_at_1']:.6f}  MAP@R "
            f"{scores['mean_average_precision_at_r']:.6f}"
        )
    agree = diff <= TOLERANCE
    print(
        f"  ours/PML: time {time_ratio:.3f}{_verdict(time_ratio, case.time_target)}, "
        f"memory {memory_ratio:.3f}{_verdict(memory_ratio, case.memory_target)}; "
        f"largest score difference {diff:.1e} ({'ok' if agree else 'TOO LARGE'})"
    )
    met = [
        ratio <= target
        for ratio, target in ((time_ratio, case.time_target), (memory_ratio, case.memory_target))
        if target is not None
    ]
    return agree and all(met)


def _verdict(ratio: float, target: float | None) -> str:
    if target is None:
        return ""
    return f" (target <= {target:.2f}: {'met' if ratio <= target else 'NOT met'})"


# --- the largest N within 4 GiB ------------------------------------------------------------------


PROBES = (25_000, 50_000, 100_000)  # measured first, to fit each arm's peak(N) and time(N)
STEP = 5_000  # resolution of the largest N (and a multiple of PER_CLASS)
DEGREE = {"pml": 2, "ours": 1}  # PML's label count is classes x N = N^2/50; ours is O(N)


def largest_n(max_seconds: float, threads: int | None = None) -> None:
    """Per arm: measure PROBES, fit peak(N) (DEGREE) and time ~ N^2 (exact search); check the
    fitted limit by runs (the largest N that fits, to STEP) when a run there takes under
    max_seconds; else run the largest N that does, refit, and report the fit's N."""
    print(f"\nlargest N within {LIMIT / GIB:.0f} GiB (whole process's peak RSS during the call)")
    for arm in ("pml", "ours"):
        fits = {n: result for n in PROBES if (result := _probe(arm, n, threads)) is not None}
        if len(fits) < len(PROBES):
            print(f"  {arm}: a probe failed; no fit")
            continue
        predicted, curve = _fitted_limit(arm, fits)
        per_n2 = fits[PROBES[-1]]["seconds"] / PROBES[-1] ** 2  # seconds per N^2
        if predicted is not None and per_n2 * predicted**2 <= max_seconds:
            print(f"  {arm}: largest N within 4 GiB: {_confirm(arm, predicted, threads):,} (run)")
            continue
        longest = int((max_seconds / per_n2) ** 0.5) // STEP * STEP  # the largest N run in time
        if longest > PROBES[-1] and (result := _probe(arm, longest, threads)) is not None:
            fits[longest] = result
            predicted, curve = _fitted_limit(arm, fits)
        if predicted is None:
            print(f"  {arm}: the fitted peak never reaches 4 GiB")
            continue
        print(
            f"  {arm}: largest N within 4 GiB ~ {predicted:,}, extrapolated (peak fitted through "
            f"the runs: {curve.coef[1]:.0f} bytes/row + {_mb(curve.coef[0])}); not run: ~"
            f"{per_n2 * predicted**2 / 3600:,.1f} h of exact search (time scaled as N^2)"
        )


def _fitted_limit(
    arm: str, fits: dict[int, dict[str, Any]]
) -> tuple[int | None, np.polynomial.Polynomial]:
    """The N where the peak fitted through the runs reaches LIMIT (None if it never does)."""
    ns = np.array(list(fits), dtype=float)
    peaks = np.array([r["process_peak_bytes"] for r in fits.values()], dtype=float)
    curve = np.polynomial.Polynomial.fit(ns, peaks, deg=DEGREE[arm]).convert()
    crossings = [complex(r) for r in (curve - LIMIT).roots()]
    roots = [r.real for r in crossings if abs(r.imag) < 1e-9 and r.real > 0]
    return (int(min(roots)) if roots else None), curve


def _confirm(arm: str, predicted: int, threads: int | None) -> int:
    """The largest N (to STEP) whose run fits, searched from the fitted limit outwards."""
    low, high = None, None  # largest run that fitted, smallest that did not
    n = predicted // STEP * STEP
    while low is None or high is None or high - low > STEP:
        result = _probe(arm, n, threads)
        if result is not None and result["process_peak_bytes"] <= LIMIT:
            low = n
            n = n + STEP if high is None else (low + high) // 2 // STEP * STEP
        else:
            high = n
            n = n - STEP if low is None else (low + high) // 2 // STEP * STEP
    return low


def _probe(arm: str, n: int, threads: int | None) -> dict[str, Any] | None:
    try:
        result = run_arm(arm, n, 0, threads=threads)
    except RuntimeError as error:  # e.g. killed for memory
        print(f"  {arm:<4} N={n:>9,}: failed ({str(error).splitlines()[0]})")
        return None
    print(
        f"  {arm:<4} N={n:>9,}: {result['seconds']:7.1f} s, process peak "
        f"{_mb(result['process_peak_bytes'])}"
    )
    return result


# --- entry points --------------------------------------------------------------------------------


def main(quick: bool = False, threads: int | None = None) -> bool:
    print(
        f"retrieval evaluation, PML AccuracyCalculator vs minesearch; {os.cpu_count()} CPUs, "
        f"threads {threads or torch.get_num_threads()}; memory = peak RSS above the data, per "
        "fresh process"
    )
    results = [compare(case, threads) for case in (QUICK if quick else CASES)]
    return all(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases, seconds")
    parser.add_argument("--largest-n", action="store_true", help="largest N within 4 GiB")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="per run (--largest-n)")
    parser.add_argument("--threads", type=int, help="thread pools of each arm (default: torch's)")
    parser.add_argument("--arm", choices=sorted(ARMS), help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--big-class", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(measure(args.arm, args.rows, args.big_class)))
    elif args.largest_n:
        largest_n(args.max_seconds, args.threads)
    else:
        main(quick=args.quick, threads=args.threads)
