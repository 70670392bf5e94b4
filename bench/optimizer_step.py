"""One optimiser step over all-MiniLM-L6-v2's parameters: torch's default on the CPU (the
per-tensor loop) against the fused kernel minesearch's trials use (`train._optimizer`).

Run: python bench/optimizer_step.py [--threads 2] [--repeats 10]
Prints seconds per step for each and the ratio fused / default, measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's minesearch

from minesearch.models import minilm_path
from minesearch.train._optimizer import make_optimizer


def seconds_per_step(optimizer: torch.optim.Optimizer, repeats: int) -> float:
    optimizer.step()  # state allocated outside the timing
    started = time.perf_counter()
    for _ in range(repeats):
        optimizer.step()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    from transformers import AutoModel

    torch.set_num_threads(args.threads)
    encoder = AutoModel.from_pretrained(str(minilm_path()), local_files_only=True)
    base = list(encoder.parameters())
    times = {}
    for way in ("default", "fused"):
        params = [p.detach().clone().requires_grad_(True) for p in base]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        if way == "default":
            optimizer = torch.optim.AdamW(params, lr=2e-5, weight_decay=0.01)
        else:
            optimizer = make_optimizer("adamw", [{"params": params}], 2e-5, 0.01)
        times[way] = seconds_per_step(optimizer, args.repeats)
    count = sum(p.numel() for p in base)
    print(f"AdamW step over {count / 1e6:.1f} M parameters, {args.threads} threads:")
    print(f"  torch's default (per-tensor loop): {times['default']:.4f} s")
    print(f"  fused (minesearch):                {times['fused']:.4f} s")
    print(f"  fused / default: {times['fused'] / times['default']:.2f}x")


if __name__ == "__main__":
    main()
