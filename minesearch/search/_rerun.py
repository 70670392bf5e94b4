"""Paired re-runs: the top recipes and the control trained again with fresh seeds, the choice the
best mean.

The search's best trial is the maximum of noisy draws: from scratch, one seed's score moves more
than good recipes differ, so the top of the leaderboard is partly luck. Re-running the top m
recipes and the control with R fresh seeds, every recipe on the same seeds (common random
numbers: the same initial weights and batch order per seed), gives each recipe R + 1 paired
scores (the search's own seed included); `minesearch.results.compare_to_best` tells which are
indistinguishable from the best mean (one-sided paired t-test, Holm), and the choice is the best
mean rather than the luckiest draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from minesearch.recipe import Recipe, TrialConfig
from minesearch.results import (
    PairedComparison,
    SearchResult,
    TrialResult,
    compare_to_best,
    recipe_key,
    top_recipes,
)
from minesearch.search._callback import MlflowTrialCallback
from minesearch.search._search_state import Search
from minesearch.search._trial import run_fixed
from minesearch.tracking import names, read_search

RERUN_SEED_OFFSET = 2000  # re-run seeds: train.seed + 2000 + i (the test estimate's: + 1000 + i)


def rerun_seeds(train_seed: int, seeds: int) -> list[int]:
    return [train_seed + RERUN_SEED_OFFSET + i for i in range(seeds)]


@dataclass(frozen=True)
class Reruns:
    """The re-run recipes, their search trials (the first unit) and the comparison."""

    recipes: list[Recipe]
    trials: list[TrialResult]  # each recipe's run on the search's seed
    comparison: PairedComparison

    @property
    def chosen(self) -> TrialResult:
        return self.trials[self.comparison.choice]


def rerun_recipes(result: SearchResult, top: int) -> list[tuple[Recipe, TrialResult]]:
    """The top recipes and the control, each with its run on the search's own seed."""
    ranked = [t for t in result.ranked if t.recipe is not None]
    chosen = top_recipes([t.recipe for t in ranked if t.recipe is not None], top)
    found = [(r, next(t for t in ranked if t.recipe == r)) for r in chosen]
    control = result.control
    known = {recipe_key(r) for r, _ in found}
    if (
        control is not None
        and control.recipe is not None
        and recipe_key(control.recipe) not in known
    ):
        found.append((control.recipe, control))
    return found


def run_reruns(search: Search, params: dict[str, Any], result: SearchResult) -> Reruns | None:
    """Re-run the top `search.rerun.top` recipes and the control with `search.rerun.seeds` fresh
    seeds (child runs of role `rerun`), then compare them; None when nothing is re-run."""
    spec = search.spec
    rerun = spec.search.rerun
    if rerun is None or rerun.top < 1 or result.best is None:
        return None
    found = rerun_recipes(result, rerun.top)
    if len(found) < 2:
        return None
    seeds = rerun_seeds(spec.train.seed, rerun.seeds)
    callback = MlflowTrialCallback(
        search.tracking_uri, search.parent.run_id, params, spec.train.epochs, role="rerun"
    )
    trials = [TrialConfig(recipe, seed=seed) for recipe, _ in found for seed in seeds]
    view = search.view("re-runs", len(trials))
    run_fixed(search.setup, f"{search.name}-rerun", trials, callback, search.at_once, view)
    return compare_reruns(read_search(search.tracking_uri, search.parent.run_id), found, seeds)


def compare_reruns(
    result: SearchResult, found: list[tuple[Recipe, TrialResult]], seeds: list[int]
) -> Reruns | None:
    """The paired comparison of the recipes that finished every unit (the search's seed first):
    a recipe that failed or diverged on a seed is no reliable choice, and is left out."""
    metric = result.metric
    runs = result.of_role("rerun")
    kept: list[tuple[Recipe, TrialResult, list[float]]] = []
    for recipe, trial in found:
        key = recipe_key(recipe)
        by_seed = {
            int(r.params.get(names.SEED_PARAM, -1)): r.score(metric)
            for r in runs
            if r.recipe is not None and recipe_key(r.recipe) == key and r.status == "finished"
        }
        row = [_finite(trial.score(metric)), *(_finite(by_seed.get(s)) for s in seeds)]
        if all(math.isfinite(v) for v in row):
            kept.append((recipe, trial, row))
    if not kept:
        return None
    comparison = compare_to_best([row for *_, row in kept], result.mode)
    return Reruns([r for r, _, _ in kept], [t for _, t, _ in kept], comparison)


def _finite(value: float | None) -> float:
    return math.nan if value is None else float(value)
