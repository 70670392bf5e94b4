"""A tabular benchmark as arrays (`bench/tabular.py` writes it): what the replay
(`search_efficiency.py`) and the noise report (`noise.py`) read.

A run is one (recipe, seed, fold); its score is the selection metric at each epoch. A run's
*selected* score is its best validation epoch (epoch 0 included), as a trial is scored; its test
score is the test classes' score at that same epoch. A recipe's *true mean* is its selected score
averaged over every seed and fold of the table: the best estimate of what it would score in
expectation over initialisations, batch orders and which classes land in val.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from minesearch.recipe import Recipe

META_KEY = b"minesearch.table"
TEST_PREFIX = "test."
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Table:
    """Every recipe's curves, by seed and fold. Arrays are [R, S, K, E+1] unless noted."""

    meta: dict[str, Any]
    keys: list[str]  # recipe keys (JSON of Recipe.to_dict(), sorted keys)
    scores: np.ndarray  # the selection metric on val per epoch; NaN once diverged
    test: np.ndarray | None  # the same on the test classes (tables with a test split)
    seconds: np.ndarray  # each epoch's train + val-eval CPU seconds (epoch 0: eval; cpu_seconds)
    fail_at: np.ndarray  # [R, S, K] epoch where training diverged, -1 if it did not
    index: dict[str, int] = field(repr=False)

    @property
    def epochs(self) -> int:
        return int(self.meta["epochs"])

    @property
    def trials(self) -> int:
        return int(self.meta["trials"])

    @property
    def seeds(self) -> int:
        return self.scores.shape[1]

    @property
    def folds(self) -> int:
        return self.scores.shape[2]

    @property
    def budget(self) -> int:
        """B: the shipped space's trial-epochs (trials x epochs)."""
        return self.trials * self.epochs

    def best_epoch(self, last: int | None = None) -> np.ndarray:
        """[R, S, K] each run's best validation epoch among 0..last (None: all; the first of ties;
        -1 if none scored): `last` is where a retraining to a selected epoch stops."""
        scores = self.scores if last is None else self.scores[..., : last + 1]
        filled = np.where(np.isnan(scores), -np.inf, scores)
        best = np.argmax(filled, axis=3)
        return np.where(np.isfinite(np.max(filled, axis=3)), best, -1)

    def selected(self) -> np.ndarray:
        """[R, S, K] each run's score at its best validation epoch."""
        with warnings.catch_warnings():  # a run that diverged before epoch 0 has none
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmax(self.scores, axis=3)

    def selected_test(self, last: int | None = None) -> np.ndarray:
        """[R, S, K] each run's test score at its best validation epoch (among 0..last)."""
        if self.test is None:
            raise ValueError(f"table {self.meta['data']!r} has no test classes")
        best = self.best_epoch(last)
        picked = np.take_along_axis(self.test, np.clip(best, 0, None)[..., None], axis=3)[..., 0]
        return np.where(best >= 0, picked, np.nan)

    def true_mean(self) -> np.ndarray:
        """[R] each recipe's selected score averaged over all seeds and folds."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(self.selected(), axis=(1, 2))

    def run_seconds(self) -> np.ndarray:
        """[R, S, K] a run's time over all its epochs (what a retraining costs)."""
        return self.seconds.sum(axis=3)


def load_table(path: Path) -> Table:
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[META_KEY])
    meta["spec"] = rooted_here(meta["spec"])
    metric = meta["metric"]
    cols = table.to_pydict()
    n = len(cols["recipe"])
    cols["recipe"] = [_canonical(k) for k in cols["recipe"]]
    folds_col = cols.get("fold", [0] * n)  # tables built before folds: one split
    first: dict[str, int] = {}
    for i, key in enumerate(cols["recipe"]):
        first.setdefault(key, cols["recipe_id"][i])
    keys = sorted(first, key=first.__getitem__)
    index = {k: i for i, k in enumerate(keys)}
    seeds, folds, epochs = int(meta["seeds"]), int(meta.get("folds", 1)), int(meta["epochs"])
    shape = (len(keys), seeds, folds, epochs + 1)
    scores, wall, cpu = np.full(shape, np.nan), np.zeros(shape), np.full(shape, np.nan)
    test_col = cols.get(TEST_PREFIX + metric)
    test = np.full(shape, np.nan) if test_col is not None else None
    fail_at = np.full(shape[:3], -1)
    nan = [math.nan] * n
    train_cpu, eval_cpu = cols.get("train_cpu_s", nan), cols.get("eval_cpu_s", nan)
    for i, key in enumerate(cols["recipe"]):
        r, s, k, e = index[key], cols["seed"][i], folds_col[i], cols["epoch"][i]
        if cols["diverged"][i]:
            fail_at[r, s, k] = e
            continue
        scores[r, s, k, e] = cols[metric][i]
        wall[r, s, k, e] = cols["eval_s"][i] + (cols["train_s"][i] if e > 0 else 0.0)
        cpu[r, s, k, e] = _number(eval_cpu[i]) + (_number(train_cpu[i]) if e > 0 else 0.0)
        if test is not None and test_col is not None:
            test[r, s, k, e] = test_col[i]
    seconds = cpu_seconds(cpu, wall, np.isfinite(scores))
    return Table(meta, keys, scores, test, seconds, fail_at, index)


def rooted_here(spec: dict[str, Any]) -> dict[str, Any]:
    """The table's space with its data path moved to this checkout when it no longer exists:
    tabular.py records the absolute path it read, in whichever worktree built the table, and
    the data ships in `search_spaces/` (under the same relative path, or in its data/ folder
    for tables built before the file moved there). A table then replays in any checkout."""
    path = (spec.get("data") or {}).get("path")
    if not path or Path(path).exists():
        return spec
    shipped = ROOT / "search_spaces"
    for here in (
        shipped / path.rsplit("/search_spaces/", 1)[-1],
        shipped / "data" / Path(path).name,
    ):
        if here.is_file():
            return {**spec, "data": {**spec["data"], "path": str(here)}}
    return spec


def cpu_seconds(cpu: np.ndarray, wall: np.ndarray, ran: np.ndarray) -> np.ndarray:
    """Each epoch's CPU seconds (one torch thread: an idle core's time), the wall clock of a
    shared machine being mostly queueing. Runs recorded before CPU time was (tables built in
    several sittings) take the same recipe, fold and epoch's mean over the seeds that have it
    (the same work), else their wall time scaled by the table's median CPU / wall ratio; a table
    without CPU times keeps its wall times."""
    have = np.isfinite(cpu) & ran
    if not have.any():
        return np.where(ran, wall, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        same_work = np.nanmean(np.where(have, cpu, np.nan), axis=1, keepdims=True)
    ratio = float(np.median(cpu[have & (wall > 0)] / wall[have & (wall > 0)]))
    filled = np.where(have, cpu, np.broadcast_to(same_work, cpu.shape))
    filled = np.where(np.isfinite(filled), filled, wall * ratio)
    return np.where(ran, filled, 0.0)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def recipe_key(recipe: Recipe) -> str:
    """A recipe's identity in the table (bench/tabular.py writes it, the replay looks proposals up
    by it): its fields as JSON, unset (None) ones left out so that a field added to Recipe later
    with a None default does not change the keys of a table built before it."""
    fields = {k: v for k, v in recipe.to_dict().items() if v is not None}
    return json.dumps(fields, sort_keys=True)


def _canonical(key: str) -> str:
    """A key as `recipe_key` writes it now (tables written before it kept None fields)."""
    return json.dumps({k: v for k, v in json.loads(key).items() if v is not None}, sort_keys=True)
