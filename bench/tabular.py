"""A tabular benchmark of recipes (as HPOBench, LCBench and YAHPO do): every recipe of a finite grid
over a shipped space, trained on K class-disjoint folds with S seeds, every epoch's validation (and
test) scores and times recorded, so that searches can be replayed against it in seconds
(`bench/search_efficiency.py`) and its noise measured (`bench/noise.py`).

Run (niced: it trains hundreds of recipe x seed x fold runs; resumable):
    nice -n 15 python bench/tabular.py --data digits --seeds 4 --jobs 2   # digits_folds.parquet
    nice -n 15 python bench/tabular.py --data vectors --seeds 3 --epochs 10 --jobs 2
                                                                          # vectors_folds.parquet

Two settings, whose noise differs (issue 19):
- `digits`, from scratch: `search_spaces/quickstart.yaml` (its data, model, batch and epochs; its
  small convnet starts from random weights). Digits has 10 classes and the space no test split, so
  the folds cut all 10: K = 3 validates on 3-4 classes a fold, as the space's val 0.3 does.
- `vectors`, a pretrained start: `search_spaces/vectors.yaml` (its split, batch, model and params
  but `head`; 10 epochs instead of its 20, which were set on the 560 shipped sentences: a fold
  here trains on 1,100-1,150 texts, 4x the 280 there, so 10 epochs are twice those steps) on
  precomputed MiniLM vectors of the realistic text set
  (`search_spaces/data/package_topics_minilm.parquet`: 2,100 Debian package descriptions, 42
  sections; made by `scripts/make_topic_vectors.py`). The model is minesearch's default for
  vectors (no backbone, a linear head started at the identity), so epoch 0 is the vectors. Its
  test classes (data.split.test, 20%: 8 classes, 400 texts) are held out of every fold, and every
  epoch is also scored on them (`test.<metric>` columns), so a replay can check a reported
  estimate.

Folds are `minesearch.data.split_folds` (what `search.folds: K` trains): fold k validates on one
group of the non-test classes and trains on the others. A seed is the trial's `train.seed`: the
same initial weights and batch order in every recipe (common random numbers).

A range of the space becomes a few grid values (`GRID_SIZES`, chosen so a table builds in about two
hours niced on 2 shared cores): the centres of equal cells (in log space for a log range), so a
sampler's uniform draw snaps to each value with equal probability. Recipes are the grid's distinct
recipes (`minesearch.space.enumerate_recipes`), trained in-process with the trial's own steps
(`minesearch.train.build_state`, `train_epoch`; scored as the worker's `report` scores:
`embed_rows`, `retrieval_scores`). Epoch 0 is the untrained model.

One row per (recipe, seed, fold, epoch); the file's metadata (`minesearch.table`) holds the space
as searched (ranges) and as gridded, the folds' classes, the budget (trials, epochs, concurrency)
and the command. Finished runs are appended to `<out>.partial.jsonl`, so an interrupted build
continues where it stopped; the file is removed when the table is written.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benches' shared modules

from _table import recipe_key

import minesearch
from minesearch.config import SpaceSpec, load_spec, parse_spec, vocab
from minesearch.data import Parts, load_parts
from minesearch.recipe import Recipe
from minesearch.space import build_space, enumerate_recipes

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "bench" / "tables"
VECTORS = ROOT / "search_spaces" / "data" / "package_topics_minilm.parquet"
SPACES = {"digits": "search_spaces/quickstart.yaml", "vectors": "search_spaces/vectors.yaml"}
# Grid values per range (others: DEFAULT_GRID_SIZE); sized so a table builds in ~2 h (docstring).
GRID_SIZES = {
    "digits": {"margin": 2, "loss_margin": 2, "miner_margin": 2, "lr": 3},
    "vectors": {"margin": 1, "temperature": 1, "lr": 3},
}
DEFAULT_GRID_SIZE = 3
META_KEY = b"minesearch.table"
METRICS = vocab.METRICS  # the table's columns: every metric a search may select on
TEST_METRICS = tuple(vocab.TEST_PREFIX + m for m in METRICS)  # the same on the test classes


# --- the space and the spec -------------------------------------------------------------------


def grid_values(low: float, high: float, log: bool, n: int) -> list[float]:
    """Centres of n equal cells of [low, high] (log cells for a log range), 3 significant digits."""
    a, b = (math.log(low), math.log(high)) if log else (low, high)
    centres = [a + (i + 0.5) * (b - a) / n for i in range(n)]
    return [float(f"{(math.exp(c) if log else c):.3g}") for c in centres]


def gridded(params: dict[str, Any], sizes: dict[str, int]) -> dict[str, Any]:
    """The space's params (as dumped: a range is {low, high, log}) with every range a list."""
    out = {}
    for key, value in params.items():
        if isinstance(value, dict) and "low" in value:
            n = sizes.get(key, DEFAULT_GRID_SIZE)
            out[key] = grid_values(value["low"], value["high"], bool(value.get("log")), n)
        else:
            out[key] = value
    return out


def space_dict(data: str, vectors: Path = VECTORS) -> dict[str, Any]:
    """The training spec as a space dict: the shipped space's, params as searched; `vectors`
    replaces the vectors space's data file."""
    shipped = load_spec(ROOT / SPACES[data]).model_dump(mode="json", exclude_none=True)
    shipped.pop("tracking", None)
    shipped.pop("storage_path", None)
    train = {**shipped["train"], "workers": 1, "use_gpu": False, "cpus_per_worker": 1}
    out = {"name": f"tabular-{data}", "data": shipped["data"], "model": shipped["model"]}
    if data == "vectors":
        out["data"] = {**shipped["data"], "path": str(vectors)}
        # minesearch's default model for vectors (a linear head started at the identity): the
        # residual head's alternative would double the table for a choice few users make
        shipped["search"]["params"].pop("head", None)
    return {**out, "train": train, "search": shipped["search"]}


def grid_spec(
    data: str, vectors: Path = VECTORS, epochs: int | None = None
) -> tuple[SpaceSpec, dict[str, Any], dict[str, Any]]:
    """(spec whose params are the grid, params as searched, params as gridded)."""
    raw = space_dict(data, vectors)
    if epochs is not None:
        raw["train"]["epochs"] = epochs
    searched = raw["search"]["params"]
    grid = gridded(searched, GRID_SIZES[data])
    raw["search"] = {**raw["search"], "params": grid, "sampler": {"name": "grid"}}
    return parse_spec(raw, f"tabular:{data}"), searched, grid


def recipes_of(spec: SpaceSpec) -> list[Recipe]:
    return enumerate_recipes(build_space(spec.search.params, spec.search.weight_miners))


# --- the folds --------------------------------------------------------------------------------


def fold_parts(spec: SpaceSpec, folds: int) -> list[Parts]:
    return [load_parts(spec, fold=k, folds=folds) for k in range(folds)]


@contextlib.contextmanager
def on_fold(fold: int, folds: int) -> Iterator[None]:
    """`build_state` opens the space's one split (`load_parts(spec)`); here it opens fold k.

    Until the train room takes a fold itself (issue 19: `search.folds` trains the K folds in
    lockstep), the name `load_parts` is swapped in the module that defines `build_state`;
    `run_one` checks the state it built holds fold k's rows, so a restructured train room fails
    loudly here rather than filling the table with the default split.
    """
    from minesearch import train

    module = sys.modules[train.build_state.__module__]
    original = module.load_parts
    setattr(module, "load_parts", functools.partial(original, fold=fold, folds=folds))  # noqa: B010
    try:
        yield
    finally:
        setattr(module, "load_parts", original)  # noqa: B010


def fold_classes(spec: SpaceSpec, folds: int) -> list[dict[str, list[str]]]:
    """Each fold's classes by part, by name: the table's record of its split."""
    out = []
    for parts in fold_parts(spec, folds):
        names = parts.source.class_names
        by_part = parts.split.classes(parts.source.labels)
        out.append({p: [names[c] if names else str(c) for c in cs] for p, cs in by_part.items()})
    return out


# --- training ---------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(spec_json: str, folds: int) -> None:
    import torch
    from pytorch_metric_learning.utils import common_functions as pml_common

    torch.set_num_threads(1)
    for name in ("PML", "faiss.loader"):  # as a trial's workers do
        logging.getLogger(name).setLevel(logging.WARNING)
    pml_common.COLLECT_STATS = True  # a trial's mining telemetry reads PML's statistics
    spec = parse_spec(json.loads(spec_json))
    _WORKER["spec"] = spec
    _WORKER["recipes"] = recipes_of(spec)
    _WORKER["folds"] = folds
    _WORKER["parts"] = fold_parts(spec, folds)


def run_one(task: tuple[int, int, int]) -> list[dict[str, Any]]:
    """One recipe with one seed on one fold, every epoch scored: the rows of the table."""
    from minesearch.train import build_state, train_epoch

    index, seed, fold = task
    spec: SpaceSpec = _WORKER["spec"]
    recipe: Recipe = _WORKER["recipes"][index]
    expected: Parts = _WORKER["parts"][fold]
    spec = spec.model_copy(update={"train": spec.train.model_copy(update={"seed": seed})})
    started = time.perf_counter()
    with on_fold(fold, _WORKER["folds"]):
        state = build_state(spec, recipe)
    setup_s = time.perf_counter() - started
    if not np.array_equal(state.parts.rows("val"), expected.rows("val")):
        raise RuntimeError(f"build_state did not train fold {fold}: see on_fold")
    parts = state.parts
    base = {"recipe_id": index, "recipe": recipe_key(recipe), "seed": seed, "fold": fold}
    rows = []
    for epoch in range(spec.train.epochs + 1):
        stats: dict[str, float] = {}
        clock = _Clock()
        try:
            if epoch > 0:
                stats = train_epoch(state, epoch)
            train_s, train_cpu = clock.lap()
            scores = _scores(state, parts.rows("val"), parts.labels("val"), METRICS)
            eval_s, eval_cpu = clock.lap()
            if len(parts.rows("test")):
                scores |= _scores(state, parts.rows("test"), parts.labels("test"), TEST_METRICS)
            test_s, _ = clock.lap()
        except FloatingPointError:  # a trial that diverges fails here: its table ends
            rows.append({**base, "epoch": epoch, "diverged": True})
            break
        row = {**base, "epoch": epoch, "diverged": False, **scores}
        row |= {"train_loss": stats.get("train_loss", math.nan), "train_s": train_s}
        row |= {"eval_s": eval_s, "test_eval_s": test_s, "setup_s": setup_s if epoch == 0 else 0.0}
        row |= {"train_cpu_s": train_cpu, "eval_cpu_s": eval_cpu}
        rows.append(row)
    return rows


class _Clock:
    """Wall and CPU seconds since the last lap. With one torch thread a run's CPU time is what it
    takes on an idle core: the replay charges it, not the wall time of a shared machine."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return out


def _scores(
    state: Any, rows: np.ndarray, labels: np.ndarray, names: tuple[str, ...]
) -> dict[str, float]:
    """`names[i]` = METRICS[i] of the embeddings of `rows`, as a trial's report scores them."""
    from minesearch.train import embed_rows, retrieval_scores

    emb = embed_rows(state.model, state.preprocess, state.parts.source, rows, state.device)
    metrics = retrieval_scores(emb, labels).as_metrics()
    values = {name: float(metrics[m]) for name, m in zip(names, METRICS, strict=True)}
    if any(not math.isfinite(v) for v in values.values()):
        raise FloatingPointError("non-finite metrics")
    return values


def build(
    data: str,
    seeds: int,
    folds: int,
    jobs: int,
    out: Path,
    limit: int | None,
    vectors: Path = VECTORS,
    epochs: int | None = None,
) -> None:
    if data == "vectors" and not vectors.exists():
        raise SystemExit(
            f"{vectors} is missing: python scripts/make_topic_vectors.py --input "
            "search_spaces/data/package_topics.parquet --out <it>"
        )
    spec, searched, grid = grid_spec(data, vectors, epochs)
    recipes = recipes_of(spec)
    chosen = range(len(recipes)) if limit is None else _spread(len(recipes), limit)
    # Seed by seed: a build stopped early still holds every recipe and fold for its first seeds.
    tasks = [(i, s, k) for s in range(seeds) for k in range(folds) for i in chosen]
    partial = out.with_name(out.name + ".partial.jsonl")
    rows, done = _read_partial(partial, set(tasks))
    todo = [t for t in tasks if t not in done]
    print(f"{data}: {len(recipes)} recipes in the grid, {len(tasks)} runs, {len(todo)} to train")
    print(f"minesearch from {Path(minesearch.__file__).parent}")
    started = time.time()
    spec_json = json.dumps(spec.model_dump(mode="json"))
    with (
        partial.open("a") as log,
        ProcessPoolExecutor(jobs, get_context("spawn"), _init_worker, (spec_json, folds)) as pool,
    ):
        for n, result in enumerate(pool.map(run_one, todo, chunksize=1), 1):
            rows.extend(result)
            log.write(json.dumps(result) + "\n")
            log.flush()
            if n % 20 == 0 or n == len(todo):
                rate = (time.time() - started) / n
                left = rate * (len(todo) - n)
                print(f"  {n}/{len(todo)} runs, {rate:.1f} s each, ~{left:.0f} s left", flush=True)
    meta = {
        "data": data,
        "space_file": SPACES[data],
        "data_file": _file_digest(vectors) if data == "vectors" else None,
        "spec": spec.model_dump(mode="json"),
        "params": searched,  # as searched (ranges), the samplers' space
        "sampler": load_spec(ROOT / SPACES[data]).search.sampler.model_dump(mode="json"),
        "grid_params": grid,  # the table's recipes
        "epochs": spec.train.epochs,
        "trials": spec.search.trials,
        "concurrent": spec.search.concurrent,
        "metric": spec.search.metric,
        "seeds": seeds,
        "folds": folds,
        "fold_classes": fold_classes(spec, folds),
        "has_test": bool(len(load_parts(spec).rows("test"))),
        "recipes": len(chosen),
        "complete": limit is None,
        "run_seconds": sum(
            r.get("train_s", 0) + r.get("eval_s", 0) + r.get("test_eval_s", 0) + r.get("setup_s", 0)
            for r in rows
        ),
        "command": " ".join(["python", *sys.argv]),
    }
    write_table(rows, meta, out)
    partial.unlink(missing_ok=True)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {len(rows)} rows)")


def _file_digest(path: Path) -> dict[str, str]:
    """The vectors' file by name and content: a rebuilt table must read the same vectors."""
    import hashlib

    return {"name": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _spread(n: int, k: int) -> list[int]:
    return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(min(k, n))})


def _read_partial(
    path: Path, tasks: set[tuple[int, int, int]]
) -> tuple[list[dict[str, Any]], set[tuple[int, int, int]]]:
    """The finished runs among `tasks` (a build asked for fewer seeds ignores the others)."""
    rows: list[dict[str, Any]] = []
    done = set()
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                result = json.loads(line)
                first = result[0]
                task = (first["recipe_id"], first["seed"], first["fold"])
                if task in tasks:
                    rows.extend(result)
                    done.add(task)
    return rows, done


def write_table(rows: list[dict[str, Any]], meta: dict[str, Any], out: Path) -> None:
    rows = sorted(rows, key=lambda r: (r["recipe_id"], r["seed"], r["fold"], r["epoch"]))
    columns: dict[str, list[Any]] = {}
    names = ["recipe_id", "recipe", "seed", "fold", "epoch", "diverged", *METRICS]
    names += [*TEST_METRICS] if meta["has_test"] else []
    names += ["train_loss", "train_s", "eval_s", "test_eval_s", "setup_s"]
    names += ["train_cpu_s", "eval_cpu_s"]
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
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per recipe and fold")
    parser.add_argument("--folds", type=int, default=3, help="class-disjoint folds (K)")
    parser.add_argument("--jobs", type=int, default=1, help="processes (1 torch thread each)")
    parser.add_argument("--out", type=Path, help="default bench/tables/<data>_folds.parquet")
    parser.add_argument("--limit", type=int, help="only this many recipes, spread over the grid")
    parser.add_argument("--epochs", type=int, help="instead of the space's (tests)")
    parser.add_argument("--vectors", type=Path, default=VECTORS, help="the vectors' Parquet file")
    args = parser.parse_args(argv)
    out = args.out or TABLES / f"{args.data}_folds.parquet"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    build(
        args.data,
        args.seeds,
        args.folds,
        args.jobs,
        out,
        args.limit,
        args.vectors.resolve(),
        args.epochs,
    )


if __name__ == "__main__":
    main()
