"""`--confirm K,S`: the top K recipes trained again with S fresh seeds, scored on the test split.

One search run per recipe is a sample of one: a recipe can top the leaderboard through a lucky
initialisation or batch order. Re-training with other seeds and reporting mean ± 95% confidence
interval (Student t, S-1 degrees of freedom) on the class-disjoint test split says whether the
winner's lead is larger than the seed noise. The seeds are new (not the search's), so a
confirmation never replays the run that won the selection.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from typing import Any

from ray import tune
from scipy import stats

from minesearch.holdout import TEST_PREFIX
from minesearch.recipe import Recipe
from minesearch.spec import SpaceSpec
from minesearch.tracking import MlflowTrialCallback
from minesearch.trial import TrialSetup, run_fixed

SEED_OFFSET = 1000  # confirmation seeds: train.seed + 1000 + i, disjoint from the search's seed


class ConfirmError(ValueError):
    """A `--confirm` value that cannot work: names the option and what it needs."""


def parse_confirm(text: str) -> tuple[int, int]:
    """`K,S` -> (K, S); S >= 2 because a confidence interval needs a spread."""
    parts = text.split(",")
    try:
        top, seeds = (int(p) for p in parts)
    except ValueError:
        raise ConfirmError(
            f"--confirm: expected K,S (two integers, e.g. 3,5), got {text!r}"
        ) from None
    if top < 1 or seeds < 2:
        raise ConfirmError(
            f"--confirm: K >= 1 recipes and S >= 2 seeds (an interval needs 2), got {text!r}"
        )
    return top, seeds


def confirm_errors(spec: SpaceSpec) -> list[str]:
    if spec.data.split.test <= 0:
        return [
            "--confirm: scores the test split, but data.split.test is 0; give the space a test "
            "split (a fraction of the classes, e.g. 0.2)"
        ]
    return []


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval (nan for fewer than 2 values)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    t = float(stats.t.ppf(0.975, len(values) - 1))
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


@dataclass(frozen=True)
class Confirmation:
    """One recipe's test-split scores over the confirmation seeds."""

    rank: int  # 1 = the search's best
    recipe: Recipe
    scores: list[dict[str, float]]  # one per seed that finished, test.* metrics
    failed: int  # seeds whose run failed

    def interval(self, metric: str) -> tuple[float, float]:
        values = [s[TEST_PREFIX + metric] for s in self.scores if TEST_PREFIX + metric in s]
        return mean_ci95(values) if values else (math.nan, math.nan)

    def mlflow_metrics(self, metric: str) -> dict[str, float]:
        mean, half = self.interval(metric)
        key = f"confirm.{self.rank}.test.{metric}"
        seeds = float(len(self.scores))
        values = {f"{key}.mean": mean, f"{key}.ci95": half, f"confirm.{self.rank}.seeds": seeds}
        return {k: v for k, v in values.items() if math.isfinite(v)}


def top_recipes(ranked: list[Recipe], k: int) -> list[Recipe]:
    """The first k distinct recipes of a leaderboard (a sampler may propose one twice)."""
    seen: dict[str, Recipe] = {}
    for recipe in ranked:
        seen.setdefault(_key(recipe.to_dict()), recipe)
        if len(seen) == k:
            break
    return list(seen.values())


def _key(recipe: dict[str, Any]) -> str:
    return json.dumps(recipe, sort_keys=True, default=str)


def run_confirm(
    spec: SpaceSpec,
    setup: TrialSetup,
    name: str,
    uri: str,
    parent_run_id: str,
    trial_params: dict[str, Any],
    recipes: list[Recipe],
    seeds: int,
    at_once: int,
) -> list[Confirmation]:
    """Train every (recipe, seed) pair to the full budget as child runs (role `confirm`)."""
    seed_values = [spec.train.seed + SEED_OFFSET + i for i in range(seeds)]
    space = {
        "recipe": tune.grid_search([r.to_dict() for r in recipes]),
        "seed": tune.grid_search(seed_values),
        "score_test": True,
    }
    callback = MlflowTrialCallback(uri, parent_run_id, trial_params, role="confirm")
    results = run_fixed(setup, f"{name}-confirm", space, callback, at_once)
    by_recipe: dict[str, list[dict[str, float]]] = {_key(r.to_dict()): [] for r in recipes}
    failed = dict.fromkeys(by_recipe, 0)
    for i in range(len(results)):
        result = results[i]
        key = _key((result.config or {})["recipe"])
        metrics = result.metrics or {}
        test = {k: float(v) for k, v in metrics.items() if k.startswith(TEST_PREFIX)}
        if result.error is not None or not test:
            failed[key] += 1
        else:
            by_recipe[key].append(test)
    keys = [_key(r.to_dict()) for r in recipes]
    return [
        Confirmation(rank, recipe, by_recipe[key], failed[key])
        for rank, (recipe, key) in enumerate(zip(recipes, keys, strict=True), start=1)
    ]


def format_confirmations(confirmations: list[Confirmation], metric: str) -> str:
    seeds = max((len(c.scores) + c.failed for c in confirmations), default=0)
    lines = [f"confirmation on the test split: {seeds} new seeds per recipe, mean ± 95% CI"]
    lines.append(f"{'rank':>4} {'test ' + metric[:18]:>24} {'seeds':>5}  recipe")
    for c in confirmations:
        mean, half = c.interval(metric)
        shown = f"{mean:.4f} ± {half:.4f}" if math.isfinite(half) else f"{mean:.4f}"
        note = f" ({c.failed} failed)" if c.failed else ""
        lines.append(f"{c.rank:>4} {shown:>24} {len(c.scores):>5}  {c.recipe.label()}{note}")
    return "\n".join(lines)
