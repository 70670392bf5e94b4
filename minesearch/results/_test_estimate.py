"""`--confirm K,S` read back: each top recipe's test-split scores over S new seeds, mean ± 95% CI.

One search run per recipe is a sample of one: a recipe can top the leaderboard through a lucky
initialisation or batch order. Re-training with other seeds and reporting the mean with its 95%
confidence interval (Student t, S-1 degrees of freedom) on the class-disjoint test split says
whether the winner's lead is larger than the seed noise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from minesearch.config.vocab import TEST_PREFIX
from minesearch.recipe import Recipe
from minesearch.results._trials import SearchResult, TrialResult, recipe_key, top_recipes

SEED_OFFSET = 1000  # confirmation seeds: train.seed + 1000 + i, disjoint from the search's seed


def confirmation_seeds(train_seed: int, seeds: int) -> list[int]:
    return [train_seed + SEED_OFFSET + i for i in range(seeds)]


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval (nan for fewer than 2 values)."""
    from scipy import stats  # only where an interval is computed: its import is slow

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    t = float(stats.t.ppf(0.975, len(values) - 1))
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def welch_half_width(*samples: list[float]) -> float:
    """Half-width of the 95% interval of a difference of means, by Welch's t: each sample's own
    variance, the Welch-Satterthwaite degrees of freedom. A sample of fewer than two values adds
    nothing (the pretrained model, scored once, has no seed noise; one run cannot show its own),
    so with one noisy sample this is the one-sample t-interval; 0 when no sample has a spread.

    Why not each mean's own interval, combined: with 2 seeds each, every interval takes t at one
    degree of freedom (12.7), and their root-sum-square is about three times Welch's width
    (t at ~2 degrees of freedom, 4.3), so real leads were called ties (issue 19's split 1)."""
    from scipy import stats  # only where an interval is computed: its import is slow

    parts = [(statistics.variance(v) / len(v), len(v) - 1) for v in samples if len(v) >= 2]
    se2 = sum(var for var, _ in parts)
    if se2 == 0:
        return 0.0
    df = se2**2 / sum(var**2 / dof for var, dof in parts)
    return float(stats.t.ppf(0.975, df)) * math.sqrt(se2)


@dataclass(frozen=True)
class Confirmation:
    """One recipe's test-split scores over the confirmation seeds."""

    rank: int  # 1 = the search's best (0: not ranked, e.g. the control's estimate)
    recipe: Recipe
    scores: list[dict[str, float]]  # one per seed that finished, test.* metrics
    failed: int  # seeds whose run failed

    def values(self, metric: str) -> list[float]:
        """The seeds' test scores of `metric`."""
        return [s[TEST_PREFIX + metric] for s in self.scores if TEST_PREFIX + metric in s]

    def interval(self, metric: str) -> tuple[float, float]:
        values = self.values(metric)
        return mean_ci95(values) if values else (math.nan, math.nan)


def estimate_of(search: SearchResult, recipe: Recipe) -> Confirmation | None:
    """`recipe`'s test estimate: its confirmation runs (new seeds, scored on the test split), or
    None when it was not retrained."""
    key = recipe_key(recipe)
    runs = [r for r in search.of_role("confirm") if r.recipe and recipe_key(r.recipe) == key]
    if not runs:
        return None
    finished = [_test_scores(r) for r in runs if r.status == "finished" and _test_scores(r)]
    return Confirmation(0, recipe, finished, len(runs) - len(finished))


def _test_scores(run: TrialResult) -> dict[str, float]:
    return {k: v for k, v in run.metrics.items() if k.startswith(TEST_PREFIX)}


def confirmations(search: SearchResult) -> list[Confirmation]:
    """The confirmation runs of `search`, grouped by recipe, ranked as their recipes were in the
    search (the top K distinct recipes are what `--confirm K,S` re-trains)."""
    runs = search.of_role("confirm")
    by_key: dict[str, list[dict[str, float]]] = {}
    failed: dict[str, int] = {}
    for run in runs:
        if run.recipe is None:
            continue
        key = recipe_key(run.recipe)
        test = {k: v for k, v in run.metrics.items() if k.startswith(TEST_PREFIX)}
        by_key.setdefault(key, [])
        failed.setdefault(key, 0)
        if run.status == "finished" and test:
            by_key[key].append(test)
        else:
            failed[key] += 1
    ranked = [t.recipe for t in search.ranked if t.recipe is not None]
    top = top_recipes(ranked, len(by_key)) if by_key else []
    return [
        Confirmation(place, recipe, by_key[recipe_key(recipe)], failed[recipe_key(recipe)])
        for place, recipe in enumerate(top, start=1)
        if recipe_key(recipe) in by_key
    ]
