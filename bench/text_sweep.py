"""Which fine-tuning recipes improve MiniLM on a realistic text set: the evidence for the text
space's ranges (issue 19: "shipped ranges come from evidence wider than the shipped sets").

Run (niced, in the background: hours on 2 shared cores):
    nice -n 15 python bench/text_sweep.py --jobs 2        # bench/results/text_sweep.{jsonl,txt}
    nice -n 15 python bench/text_sweep.py --full          # every stage on both splits
    python bench/text_sweep.py --summary                  # the summary again, from the table

Data: `package_topics` (scripts/make_package_topics.py: 2,100 Debian package descriptions, 42
sections), split by class (val 0.2, test 0.2) with `data.split.seed` 0 and 1. Model: the shipped
all-MiniLM-L6-v2 (`backbone: minilm`, max_length 64), the whole encoder trained. Training as
`search_spaces/text_minilm.yaml` and bench/practitioner.py: batches of 8 classes x 4, AdamW with
weight decay 0.01, the encoder's lr warmed up over 0.1 epoch, 3 epochs, seed 0.

The stages, most telling first, each chosen from the results before it ("best" = mean best-val
MAP@R of the head-none runs on split 0):
1. `core`: head `none` (the encoder's own embedding, lr = the encoder's), each loss in `LOSSES` at
   encoder lr 2e-5 and 1e-4, on split 0; plus `CALIBRATION`, bench/practitioner.py's plain arm
   (NTXent 0.07, 2e-5, warm-up over 10% of the steps) through minesearch's steps;
2. `heads`: head `linear` (identity-started, at `HEAD_LRS`; the encoder at lr x
   backbone_lr_factor) for the two best losses at the two best encoder lrs;
3. `splits`: every loss, head none, at the best encoder lr and at the highest, on split 1: how
   much the class split moves the level and the ranking, and whether a high rate declines there
   too;
4. `grid`: the other encoder lrs of `ENCODER_LRS`; then `heads` again, at the best lrs of all.
`--full` runs the grid and the heads on both splits for every loss (about 80 runs: 6+ hours on
the shared 2 cores, where a run took 4 to 20 minutes; the default is the cut above, 39 runs).

Every run trains in-process with a trial's own steps (`minesearch.train.build_state`,
`train_epoch`) and is scored as a worker scores (`embed_rows` on the val and the test rows,
`retrieval_scores`) at epochs 0..3; epoch 0 is the encoder. A run is one line of
`<out>.partial.jsonl`, appended when it finishes, so an interrupted sweep continues where it
stopped; the table and its summary are written when every run is in.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's minesearch

from minesearch.config import SpaceSpec, parse_spec
from minesearch.recipe import Recipe
from minesearch.space import build_space, enumerate_recipes

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "search_spaces" / "data" / "package_topics.parquet"
OUT = ROOT / "bench" / "results" / "text_sweep.jsonl"
SPLITS = (0, 1)
EPOCHS = 3
CORE_LRS = (2e-5, 1e-4)  # the practitioner's rate and the one issue 19 saw decline at
ENCODER_LRS = (*CORE_LRS, 5e-5, 1e-5)  # in the order they are trained
HEAD_LRS = (1e-3, 3e-4)
# name -> search.params of the loss (PML defaults for what is not named)
LOSSES: dict[str, dict[str, Any]] = {
    "NTXent t=0.05": {"loss": "NTXentLoss", "temperature": 0.05},
    "NTXent t=0.1": {"loss": "NTXentLoss", "temperature": 0.1},
    "MultiSimilarity": {"loss": "MultiSimilarityLoss"},
    "TripletMargin+semihard m=0.1": {
        "loss": "TripletMarginLoss",
        "miner": "TripletMarginMiner",
        "type_of_triplets": "semihard",
        "margin": 0.1,
    },
    "Contrastive": {"loss": "ContrastiveLoss"},
}
CALIBRATION = {"loss": "NTXentLoss", "temperature": 0.07}  # bench/practitioner.py's plain arm
MAP = "mean_average_precision_at_r"
METRICS = (MAP, "precision_at_1", "r_precision")


# --- the runs ---------------------------------------------------------------------------------


def run_key(run: dict[str, Any]) -> str:
    return json.dumps(run, sort_keys=True)


def _run(split: int, loss: str, lr: float, head_lr: float | None = None) -> dict[str, Any]:
    head = "none" if head_lr is None else "linear"
    return {"split": split, "loss": loss, "head": head, "encoder_lr": lr, "head_lr": head_lr}


def stage_core(results: list[dict[str, Any]], full: bool) -> list[dict[str, Any]]:
    return [*stage_grid(results, full, CORE_LRS), _run(SPLITS[0], "calibration", 2e-5)]


def stage_grid(
    results: list[dict[str, Any]], full: bool, rates: tuple[float, ...] = ENCODER_LRS
) -> list[dict[str, Any]]:
    splits = SPLITS if full else SPLITS[:1]
    return [_run(s, loss, lr) for s in splits for lr in rates for loss in LOSSES]


def stage_heads(results: list[dict[str, Any]], full: bool) -> list[dict[str, Any]]:
    splits = SPLITS if full else SPLITS[:1]
    losses = list(LOSSES) if full else best(results, "loss", 2)
    rates = best(results, "encoder_lr", 2)
    return [
        _run(s, loss, lr, head_lr)
        for s in splits
        for loss in losses
        for lr in rates
        for head_lr in HEAD_LRS
    ]


def stage_splits(results: list[dict[str, Any]], full: bool) -> list[dict[str, Any]]:
    if full:
        return []  # the grid ran on every split
    rates = dict.fromkeys([*best(results, "encoder_lr", 1), max(ENCODER_LRS)])
    return [_run(s, loss, lr) for s in SPLITS[1:] for lr in rates for loss in LOSSES]


# Most telling first, so that a sweep cut short still answers the main questions; `heads` runs
# again once the whole grid is in (its best rates may have changed; done runs are not repeated).
STAGES = (
    ("core", stage_core),
    ("heads", stage_heads),
    ("splits", stage_splits),
    ("grid", stage_grid),
    ("heads", stage_heads),
)


def space_dict(split_seed: int, warmup_epochs: float, data: Path = DATA) -> dict[str, Any]:
    """The training spec of a run, as a space file would say it (the params come per run)."""
    return {
        "name": "text-sweep",
        "data": {
            "source": "parquet",
            "path": str(data),
            "label_column": "label",
            "input_column": "text",
            "input_type": "text",
            "split": {"by": "class", "val": 0.2, "test": 0.2, "seed": split_seed},
        },
        "model": {"backbone": "minilm", "max_length": 64},
        "train": {
            "epochs": EPOCHS,
            "batch": {"classes": 8, "per_class": 4},
            "workers": 1,
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "warmup_epochs": warmup_epochs,
            "seed": 0,
        },
        "search": {"params": {"loss": "NTXentLoss"}},
    }


def spec_and_recipe(run: dict[str, Any], data: Path = DATA) -> tuple[SpaceSpec, Recipe]:
    """The run's spec and its one recipe, made by the search's own space (PML defaults filled)."""
    calibration = run["loss"] == "calibration"
    params = dict(CALIBRATION if calibration else LOSSES[run["loss"]])
    head_lr = run["head_lr"] or run["encoder_lr"]
    factor = run["encoder_lr"] / head_lr
    params |= {"head": run["head"], "lr": head_lr, "backbone_lr_factor": factor}
    raw = space_dict(run["split"], EPOCHS * 0.1 if calibration else 0.1, data)
    raw["search"]["params"] = params
    spec = parse_spec(raw, "text-sweep")
    (recipe,) = enumerate_recipes(build_space(spec.search.params))
    return spec, recipe


def _init_worker(threads: int) -> None:
    import torch
    from pytorch_metric_learning.utils import common_functions as pml_common

    torch.set_num_threads(threads)
    for name in ("PML", "faiss.loader", "transformers"):  # as a trial's workers do
        logging.getLogger(name).setLevel(logging.WARNING)
    pml_common.COLLECT_STATS = True  # a trial's mining telemetry reads PML's statistics


def run_one(run: dict[str, Any], data: Path = DATA) -> dict[str, Any]:
    """One recipe on one split, scored on val and test at every epoch."""
    from minesearch.train import build_state, embed_rows, retrieval_scores, train_epoch

    spec, recipe = spec_and_recipe(run, data)
    started = time.perf_counter()
    state = build_state(spec, recipe)
    epochs: list[dict[str, Any]] = []
    for epoch in range(spec.train.epochs + 1):
        tick = time.perf_counter()
        try:
            stats = train_epoch(state, epoch) if epoch > 0 else {}
        except FloatingPointError:  # a diverged run ends here, as a failed trial would
            epochs.append({"epoch": epoch, "diverged": True})
            break
        row: dict[str, Any] = {"epoch": epoch, "train_s": time.perf_counter() - tick}
        row["train_loss"] = stats.get("train_loss", math.nan)
        tick = time.perf_counter()
        for part in ("val", "test"):
            rows = state.parts.rows(part)
            emb = embed_rows(state.model, state.preprocess, state.parts.source, rows, state.device)
            scores = retrieval_scores(emb, state.parts.labels(part)).as_metrics()
            row |= {f"{part}.{m}": float(scores[m]) for m in METRICS}
        row["eval_s"] = time.perf_counter() - tick
        epochs.append(row)
    wall = time.perf_counter() - started
    return {**run, "recipe": recipe.label(), "wall_s": wall, "epochs": epochs}


# --- the table --------------------------------------------------------------------------------


def read_runs(path: Path) -> dict[str, dict[str, Any]]:
    runs: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                result = json.loads(line)
                runs[run_key(_run_of(result))] = result
    return runs


def _run_of(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in ("split", "loss", "head", "encoder_lr", "head_lr")}


def best(results: list[dict[str, Any]], factor: str, n: int) -> list[Any]:
    """The n values of `factor` (loss, encoder_lr) whose head-none grid runs on split 0 have the
    best mean best-val MAP@R (sorted). Means are taken over the other factor's values that every
    candidate has, so that a rate tried with one good loss so far does not look best for it."""
    other = "encoder_lr" if factor == "loss" else "loss"
    grid = [
        r
        for r in results
        if r["head"] == "none" and r["loss"] in LOSSES and r["split"] == SPLITS[0]
    ]
    seen: dict[Any, set[Any]] = defaultdict(set)
    for r in grid:
        seen[r[factor]].add(r[other])
    common = set.intersection(*seen.values()) if seen else set()
    by_value: dict[Any, list[float]] = defaultdict(list)
    for r in grid:
        if r[other] in common:
            by_value[r[factor]].append(selected(r)[f"val.{MAP}"])
    ranked = sorted(by_value, key=lambda v: statistics.fmean(by_value[v]), reverse=True)
    return sorted(ranked[:n])


def selected(result: dict[str, Any]) -> dict[str, Any]:
    """The epoch a trial would be scored at: the best on val, epoch 0 included (ties: earliest)."""
    scored = [e for e in result["epochs"] if not e.get("diverged")]
    return max(scored, key=lambda e: (e["val.mean_average_precision_at_r"], -e["epoch"]))


def train(todo: list[dict[str, Any]], partial: Path, jobs: int, threads: int) -> None:
    if not todo:
        return
    started = time.time()
    with (
        partial.open("a") as log,
        ProcessPoolExecutor(jobs, get_context("spawn"), _init_worker, (threads,)) as pool,
    ):
        for n, result in enumerate(pool.map(run_one, todo, chunksize=1), 1):
            log.write(json.dumps(result) + "\n")
            log.flush()
            rate = (time.time() - started) / n
            print(
                f"  {n}/{len(todo)} {result['recipe']} split {result['split']} "
                f"lr {result['encoder_lr']:g}/{result['head_lr']}: {result['wall_s']:.0f} s; "
                f"~{rate * (len(todo) - n) / 60:.0f} min left",
                flush=True,
            )


def sweep(out: Path, jobs: int, threads: int, full: bool) -> None:
    partial = out.with_name(out.name + ".partial.jsonl")
    if out.exists() and not partial.exists():
        partial.write_text(out.read_text())  # a finished sweep, extended by a later plan
    for name, stage in STAGES:
        done = read_runs(partial)
        runs = stage(list(done.values()), full)
        todo = [r for r in runs if run_key(r) not in done]
        print(f"stage {name}: {len(runs)} runs, {len(todo)} to train", flush=True)
        train(todo, partial, jobs, threads)
    out.write_text(partial.read_text())  # every finished run, extra ones of an earlier plan too
    partial.unlink()
    write_summary(out)


# --- the summary ------------------------------------------------------------------------------


def recipe_name(r: dict[str, Any]) -> str:
    head = "none" if r["head"] == "none" else f"linear@{r['head_lr']:g}"
    return f"{r['loss']:<29} head {head:<12} enc lr {r['encoder_lr']:g}"


def summary(results: list[dict[str, Any]]) -> str:
    """Per recipe (means over the splits, then each split): epoch 0, the best-val epoch's val and
    test MAP@R, the last epoch's; which declined; and the aggregates the ranges are set from."""
    lines = [
        "text_sweep: MiniLM fine-tuned on package_topics (42 sections, 2,100 texts), 3 epochs,",
        "batch 8x4, AdamW wd 0.01, warm-up 0.1 epoch; class splits seed " + str(SPLITS),
        "MAP@R; e0 = the encoder (epoch 0); sel = the best-val epoch (0..3), its val and test;",
        "last = epoch 3; 'declined' = no epoch beat epoch 0 on val (a trial scored at epoch 0).",
        "",
        f"{'recipe':<62} {'split':>5} {'e0 val':>7} {'e0 test':>8} {'sel':>3} {'val':>6} "
        f"{'test':>6} {'last v':>6} {'last t':>6}  epoch_s",
    ]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[recipe_name(r)].append(r)
    for name, runs in groups.items():
        for r in sorted(runs, key=lambda r: r["split"]):
            lines.append(_row(name, r))
    lines += ["", *aggregates(results)]
    return "\n".join(lines) + "\n"


def _row(name: str, r: dict[str, Any]) -> str:
    e0, sel = r["epochs"][0], selected(r)
    last = r["epochs"][-1]
    if last.get("diverged"):
        last_v = last_t = "diverged"
    else:
        last_v, last_t = f"{last[f'val.{MAP}']:.4f}", f"{last[f'test.{MAP}']:.4f}"
    trained = [e["train_s"] for e in r["epochs"][1:] if "train_s" in e]
    mark = "  declined" if sel["epoch"] == 0 else ""
    return (
        f"{name:<62} {r['split']:>5} {e0[f'val.{MAP}']:>7.4f} {e0[f'test.{MAP}']:>8.4f} "
        f"{sel['epoch']:>3} {sel[f'val.{MAP}']:>6.4f} {sel[f'test.{MAP}']:>6.4f} {last_v:>6} "
        f"{last_t:>6}  {statistics.fmean(trained) if trained else math.nan:.0f}{mark}"
    )


def _gain(r: dict[str, Any], part: str) -> float:
    """The selected epoch's gain over the encoder on `part` (val: >= 0 by selection)."""
    return float(selected(r)[f"{part}.{MAP}"] - r["epochs"][0][f"{part}.{MAP}"])


def _last_gain(r: dict[str, Any], part: str) -> float:
    """The last epoch's gain over the encoder (a diverged run: nan)."""
    last = r["epochs"][-1]
    return float(last.get(f"{part}.{MAP}", math.nan) - r["epochs"][0][f"{part}.{MAP}"])


def _mean_gains(runs: list[dict[str, Any]]) -> str:
    sel = [statistics.fmean(_gain(r, p) for r in runs) for p in ("val", "test")]
    last = [statistics.fmean(_last_gain(r, p) for r in runs) for p in ("val", "test")]
    declined = sum(selected(r)["epoch"] == 0 for r in runs)
    return (
        f"sel val {sel[0]:+.4f} test {sel[1]:+.4f} | epoch {EPOCHS} val {last[0]:+.4f} "
        f"test {last[1]:+.4f} | declined {declined}/{len(runs)}"
    )


def aggregates(results: list[dict[str, Any]]) -> list[str]:
    """Mean gains over the encoder (selected epoch) by loss and by encoder lr (head none, split
    0's grid), head linear against head none on the same cells, and the split's effect."""
    lines = [
        "mean gain over the encoder (MAP@R) of the selected epoch (sel) and the last, by factor:"
    ]
    grid = [r for r in results if r["loss"] in LOSSES]
    for split in SPLITS:
        none = [r for r in grid if r["head"] == "none" and r["split"] == split]
        rates = sorted({r["encoder_lr"] for r in none})
        for title, factor in (("loss", "loss"), ("encoder lr", "encoder_lr")):
            groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
            for r in none:
                groups[r[factor]].append(r)
            over = f", over lrs {', '.join(f'{x:g}' for x in rates)}" if factor == "loss" else ""
            lines.append(f"  {title} (head none, split {split}{over}):")
            lines += [f"    {k!s:<29} {_mean_gains(v)}" for k, v in sorted(groups.items())]
    lines += _head_effects(grid) + _split_effects(grid)
    calibration = [r for r in results if r["loss"] == "calibration"]
    if calibration:
        lines.append("  calibration (bench/practitioner.py's plain recipe through minesearch):")
        for r in calibration:
            last = r["epochs"][-1]
            lines.append(
                f"    split {r['split']}: e0 test {r['epochs'][0][f'test.{MAP}']:.4f}, epoch 3 "
                f"val {last.get(f'val.{MAP}', math.nan):.4f} test "
                f"{last.get(f'test.{MAP}', math.nan):.4f}"
            )
    return lines


def _head_effects(grid: list[dict[str, Any]]) -> list[str]:
    """Head linear minus head none on the same (split, loss, encoder lr), selected epochs."""
    none = {(r["split"], r["loss"], r["encoder_lr"]): r for r in grid if r["head"] == "none"}
    diffs: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for r in grid:
        twin = none.get((r["split"], r["loss"], r["encoder_lr"]))
        if r["head"] == "linear" and twin is not None:
            pair = (selected(r), selected(twin))
            diffs[r["head_lr"]].append(
                tuple(pair[0][f"{p}.{MAP}"] - pair[1][f"{p}.{MAP}"] for p in ("val", "test"))
            )
    lines = ["  head linear minus head none, same loss, encoder lr and split:"] if diffs else []
    for head_lr, pairs in sorted(diffs.items()):
        val, test = (statistics.fmean(d[i] for d in pairs) for i in (0, 1))
        lines.append(f"    head lr {head_lr:<8g} val {val:+.4f}  test {test:+.4f}  ({len(pairs)})")
    return lines


def _split_effects(grid: list[dict[str, Any]]) -> list[str]:
    """How much the split moves the level (epoch 0) and the gains: the same recipe on both."""
    from scipy.stats import kendalltau

    pairs: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in grid:
        pairs[recipe_name(r)][r["split"]] = r
    a, b = SPLITS
    both = [p for p in pairs.values() if a in p and b in p]
    if not both:
        return []
    level = [p[a]["epochs"][0][f"test.{MAP}"] - p[b]["epochs"][0][f"test.{MAP}"] for p in both]
    gains = [_gain(p[a], "test") - _gain(p[b], "test") for p in both]
    tau = kendalltau([_gain(p[a], "val") for p in both], [_gain(p[b], "val") for p in both])
    return [
        f"  split {a} minus split {b}, same recipe ({len(both)} recipes):",
        f"    encoder's test MAP@R {statistics.fmean(level):+.4f}; test gain: mean "
        f"{statistics.fmean(gains):+.4f}, sd {statistics.pstdev(gains):.4f}",
        f"    Kendall tau of the recipes' val gains, split {a} vs {b}: {tau.statistic:.2f}",
    ]


def write_summary(out: Path) -> None:
    results = list(read_runs(out).values())
    text = summary(results)
    out.with_suffix(".txt").write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--jobs", type=int, default=1, help="processes training at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--full", action="store_true", help="stages 1-2 on both splits")
    parser.add_argument("--summary", action="store_true", help="only rewrite the summary")
    args = parser.parse_args(argv)
    if args.summary:
        write_summary(args.out)
        return
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    sweep(args.out, args.jobs, args.threads, args.full)


if __name__ == "__main__":
    main()
