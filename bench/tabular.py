"""A tabular benchmark of recipes (as HPOBench, LCBench and YAHPO do): every recipe of a finite grid
over a shipped space, trained to the full epoch budget with a few seeds, every epoch's validation
scores and times recorded, so that searches can be replayed against it in seconds
(`bench/search_efficiency.py`).

Run (niced: it trains a few hundred recipes):
    nice -n 15 python bench/tabular.py --data digits --jobs 2          # bench/tables/digits.parquet
    nice -n 15 python bench/tabular.py --data vectors --seeds 2 --jobs 2 \
        --out bench/tables/vectors_pilot.parquet

`digits` is `search_spaces/quickstart.yaml` (its data, model, batch and epochs). `vectors` is
`search_spaces/text_minilm.yaml`'s split, batch, epochs and loss/miner choices on precomputed
vectors: the shipped MiniLM's mean-pooled, L2-normalised embeddings of `text_topics`, written once
in `search_spaces/data/text_topics_minilm.parquet` (`search_spaces/vectors.yaml`'s data;
`--embed` rewrites it with `scripts/make_topic_vectors.py`) and trained as a `parquet`
source whose model is minesearch's default for vector inputs (no `model:` keys are set, so a new
default is picked up by a rebuild). `backbone_lr_factor` is dropped: vectors have no backbone.

A range of the space becomes a few grid values (`GRID_SIZES`): the centres of equal cells (in log
space for a log range), so a sampler's uniform draw snaps to each value with equal probability.
Recipes are the grid's distinct recipes (`minesearch.space.enumerate_recipes`), trained in-process
with the trial's own steps (`minesearch.train.build_state`, `train_epoch`; scored as the worker's
`report` scores: `embed_rows` on the val rows, `retrieval_scores`). Epoch 0 is the untrained model.

One row per (recipe, seed, epoch); the file's metadata (`minesearch.table`) holds the space as
searched (ranges) and as gridded, the budget (trials, epochs, concurrency) and the command.
Finished runs are appended to `<out>.partial.jsonl`, so an interrupted build continues where it
stopped; the file is removed when the table is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's minesearch

import minesearch
from minesearch.config import SpaceSpec, load_spec, parse_spec, vocab
from minesearch.recipe import Recipe
from minesearch.space import build_space, enumerate_recipes

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "bench" / "tables"
VECTORS = ROOT / "search_spaces" / "data" / "text_topics_minilm.parquet"  # vectors.yaml's
SPACES = {"digits": "search_spaces/quickstart.yaml", "vectors": "search_spaces/text_minilm.yaml"}
GRID_SIZES = {"margin": 4, "loss_margin": 4, "miner_margin": 4, "lr": 3}  # others: 3
DEFAULT_GRID_SIZE = 3
META_KEY = b"minesearch.table"
METRICS = vocab.METRICS  # the table's columns: every metric a search may select on


# --- the space and the spec -------------------------------------------------------------------


def grid_values(low: float, high: float, log: bool, n: int) -> list[float]:
    """Centres of n equal cells of [low, high] (log cells for a log range), 3 significant digits."""
    a, b = (math.log(low), math.log(high)) if log else (low, high)
    centres = [a + (i + 0.5) * (b - a) / n for i in range(n)]
    return [float(f"{(math.exp(c) if log else c):.3g}") for c in centres]


def gridded(params: dict[str, Any]) -> dict[str, Any]:
    """The space's params (as dumped: a range is {low, high, log}) with every range a list."""
    out = {}
    for key, value in params.items():
        if isinstance(value, dict) and "low" in value:
            n = GRID_SIZES.get(key, DEFAULT_GRID_SIZE)
            out[key] = grid_values(value["low"], value["high"], bool(value.get("log")), n)
        else:
            out[key] = value
    return out


def space_dict(data: str) -> dict[str, Any]:
    """The training spec as a space dict: the shipped space's, on this data, params as searched."""
    shipped = load_spec(ROOT / SPACES[data]).model_dump(mode="json", exclude_none=True)
    shipped.pop("tracking", None)
    shipped.pop("storage_path", None)
    train = {**shipped["train"], "workers": 1, "use_gpu": False, "cpus_per_worker": 1}
    out = {"name": f"tabular-{data}", "data": shipped["data"], "model": shipped["model"]}
    if data == "vectors":
        out["data"] = {
            "source": "parquet",
            "path": str(VECTORS),
            "label_column": "label",
            "input_column": "features",
            "split": shipped["data"]["split"],
        }
        out["model"] = {}  # minesearch's default model for vector inputs
        shipped["search"]["params"].pop("backbone_lr_factor", None)
    return {**out, "train": train, "search": shipped["search"]}


def grid_spec(data: str) -> tuple[SpaceSpec, dict[str, Any], dict[str, Any]]:
    """(spec whose params are the grid, params as searched, params as gridded)."""
    raw = space_dict(data)
    searched = raw["search"]["params"]
    grid = gridded(searched)
    raw["search"] = {**raw["search"], "params": grid, "sampler": {"name": "grid"}}
    return parse_spec(raw, f"tabular:{data}"), searched, grid


def recipes_of(spec: SpaceSpec) -> list[Recipe]:
    return enumerate_recipes(build_space(spec.search.params, spec.search.weight_miners))


def recipe_key(recipe: Recipe) -> str:
    """A recipe's identity in the table (bench/tabular.py and the replay compute it alike): its
    fields as JSON, unset (None) ones left out so that a field added to Recipe later with a None
    default does not change the keys of a table built before it."""
    fields = {k: v for k, v in recipe.to_dict().items() if v is not None}
    return json.dumps(fields, sort_keys=True)


# --- the vectors ------------------------------------------------------------------------------


def embed_text_topics() -> None:
    """The shipped vectors, rewritten by the one script that makes them (MiniLM, mean-pooled,
    L2-normalised, as `minesearch.models.reference_network`)."""
    import subprocess

    script = ROOT / "scripts" / "make_topic_vectors.py"
    subprocess.run([sys.executable, str(script), "--out", str(VECTORS)], check=True)


def check_same_split(spec: SpaceSpec) -> None:
    """The vectors' val classes are the text space's (same labels, same split seed)."""
    from minesearch.data import load_parts

    text = load_parts(load_spec(ROOT / SPACES["vectors"]))
    vec = load_parts(spec)

    def names(parts: Any) -> set[str]:
        cls = parts.source.class_names
        return {cls[i] for i in np.unique(parts.labels("val"))}

    if names(text) != names(vec):
        raise SystemExit("vectors: val classes differ from text_minilm.yaml's; --embed again")


# --- training ---------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(spec_json: str) -> None:
    import torch
    from pytorch_metric_learning.utils import common_functions as pml_common

    torch.set_num_threads(1)
    for name in ("PML", "faiss.loader"):  # as a trial's workers do
        logging.getLogger(name).setLevel(logging.WARNING)
    pml_common.COLLECT_STATS = True  # a trial's mining telemetry reads PML's statistics
    spec = parse_spec(json.loads(spec_json))
    _WORKER["spec"] = spec
    _WORKER["recipes"] = recipes_of(spec)


def run_one(task: tuple[int, int]) -> list[dict[str, Any]]:
    """One recipe with one seed, every epoch scored: the rows of the table."""
    from minesearch.train import build_state, embed_rows, retrieval_scores, train_epoch

    index, seed = task
    spec: SpaceSpec = _WORKER["spec"]
    recipe: Recipe = _WORKER["recipes"][index]
    spec = spec.model_copy(update={"train": spec.train.model_copy(update={"seed": seed})})
    started = time.perf_counter()
    state = build_state(spec, recipe)
    setup_s = time.perf_counter() - started
    val = state.parts.rows("val")
    base = {"recipe_id": index, "recipe": recipe_key(recipe), "seed": seed}
    rows = []
    for epoch in range(spec.train.epochs + 1):
        stats: dict[str, float] = {}
        tick = time.perf_counter()
        try:
            if epoch > 0:
                stats = train_epoch(state, epoch)
            train_s = time.perf_counter() - tick
            tick = time.perf_counter()
            emb = embed_rows(state.model, state.preprocess, state.parts.source, val, state.device)
            metrics = retrieval_scores(emb, state.parts.labels("val")).as_metrics()
            if any(not math.isfinite(v) for v in metrics.values()):
                raise FloatingPointError("non-finite metrics")
        except FloatingPointError:  # a trial that diverges fails here: its table ends
            rows.append({**base, "epoch": epoch, "diverged": True})
            break
        row = {**base, "epoch": epoch, "diverged": False}
        row |= {m: float(metrics[m]) for m in METRICS}
        row |= {"train_loss": stats.get("train_loss", math.nan), "train_s": train_s}
        row |= {"eval_s": time.perf_counter() - tick, "setup_s": setup_s if epoch == 0 else 0.0}
        rows.append(row)
    return rows


def build(data: str, seeds: int, jobs: int, out: Path, limit: int | None) -> None:
    if data == "vectors" and not VECTORS.exists():
        embed_text_topics()
    spec, searched, grid = grid_spec(data)
    if data == "vectors":
        check_same_split(spec)
    recipes = recipes_of(spec)
    chosen = range(len(recipes)) if limit is None else _spread(len(recipes), limit)
    tasks = [(i, s) for i in chosen for s in range(seeds)]
    partial = out.with_name(out.name + ".partial.jsonl")
    rows, done = _read_partial(partial)
    todo = [t for t in tasks if t not in done]
    print(f"{data}: {len(recipes)} recipes in the grid, {len(tasks)} runs, {len(todo)} to train")
    print(f"minesearch from {Path(minesearch.__file__).parent}")
    started = time.time()
    spec_json = json.dumps(spec.model_dump(mode="json"))
    with (
        partial.open("a") as log,
        ProcessPoolExecutor(jobs, get_context("spawn"), _init_worker, (spec_json,)) as pool,
    ):
        for n, result in enumerate(pool.map(run_one, todo, chunksize=1), 1):
            rows.extend(result)
            log.write(json.dumps(result) + "\n")
            log.flush()
            if n % 20 == 0 or n == len(todo):
                rate = (time.time() - started) / n
                left = rate * (len(todo) - n)
                print(f"  {n}/{len(todo)} runs, {rate:.1f} s each, ~{left:.0f} s left")
    meta = {
        "data": data,
        "space_file": SPACES[data],
        "spec": spec.model_dump(mode="json"),
        "params": searched,  # as searched (ranges), the samplers' space
        "grid_params": grid,  # the table's recipes
        "epochs": spec.train.epochs,
        "trials": spec.search.trials,
        "concurrent": spec.search.concurrent,
        "metric": spec.search.metric,
        "seeds": seeds,
        "recipes": len(chosen),
        "complete": limit is None,
        "command": " ".join(["python", *sys.argv]),
    }
    write_table(rows, meta, out)
    partial.unlink(missing_ok=True)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {len(rows)} rows)")


def _spread(n: int, k: int) -> list[int]:
    return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(min(k, n))})


def _read_partial(path: Path) -> tuple[list[dict[str, Any]], set[tuple[int, int]]]:
    rows: list[dict[str, Any]] = []
    done = set()
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                result = json.loads(line)
                rows.extend(result)
                done.add((result[0]["recipe_id"], result[0]["seed"]))
    return rows, done


def write_table(rows: list[dict[str, Any]], meta: dict[str, Any], out: Path) -> None:
    rows = sorted(rows, key=lambda r: (r["recipe_id"], r["seed"], r["epoch"]))
    columns: dict[str, list[Any]] = {}
    names = ["recipe_id", "recipe", "seed", "epoch", "diverged", *METRICS]
    names += ["train_loss", "train_s", "eval_s", "setup_s"]
    for name in names:
        columns[name] = [r.get(name, math.nan) for r in rows]
    table = pa.table(columns)
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="zstd")


def iter_meta(path: Path) -> Iterator[tuple[str, Any]]:
    meta = pq.read_schema(path).metadata[META_KEY]
    yield from json.loads(meta).items()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=sorted(SPACES), required=True)
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per recipe")
    parser.add_argument("--jobs", type=int, default=1, help="processes (1 torch thread each)")
    parser.add_argument("--out", type=Path, help="default bench/tables/<data>.parquet")
    parser.add_argument("--limit", type=int, help="only this many recipes, spread over the grid")
    parser.add_argument("--embed", action="store_true", help="re-embed text_topics first")
    args = parser.parse_args(argv)
    if args.embed:
        embed_text_topics()
    out = args.out or TABLES / f"{args.data}.parquet"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    build(args.data, args.seeds, args.jobs, out, args.limit)


if __name__ == "__main__":
    main()
