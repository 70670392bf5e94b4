"""`--confirm K,S` read back: each top recipe's test-split scores over S new seeds, mean ± 95% CI.

One search run per recipe is a sample of one: a recipe can top the leaderboard through a lucky
initialisation or batch order. Re-training with other seeds and reporting the mean with its 95%
confidence interval (Student t, S-1 degrees of freedom) on the class-disjoint test split says
whether the winner's lead is larger than the seed noise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace

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


def unchosen_control(search: SearchResult) -> TrialResult | None:
    """The control's own run when it is a seed of the control's test estimate like a new one.

    The control was fixed before the search (the practitioner's recipe for the model), not picked
    for its score: unless the search chose it, its run is one draw of the recipe's
    train-select-score procedure, and scoring it on the test split (which happens anyway) saves a
    retrain of S. The chosen recipe's own run is never one: it won on val, and a lucky seed is
    partly lucky on test too. Losing on val conditions the control's run a little the other way
    (by at most its seed noise: ~0.0004 MAP@R on package_topics, where 2 new seeds scored 0.2952
    +- 0.0038); it needs a checkpoint to be scored."""
    control, best = search.control, search.best
    if control is None or control.recipe is None or control.checkpoint is None:
        return None
    if best is not None and best.run_id == control.run_id:
        return None
    return control


def unchosen_control_key(search: SearchResult) -> str | None:
    """The recipe key of `unchosen_control`, None when there is no such run."""
    return _key_of(unchosen_control(search))


def _key_of(run: TrialResult | None) -> str | None:
    return recipe_key(run.recipe) if run is not None and run.recipe is not None else None


def estimate_of(search: SearchResult, recipe: Recipe) -> Confirmation | None:
    """`recipe`'s test estimate: its confirmation runs (new seeds, scored on the test split), with
    the control's own run when the search did not choose it (`unchosen_control`), or None when it
    was not retrained."""
    key = recipe_key(recipe)
    estimated = search.of_role("confirm")
    runs = [r for r in estimated if r.recipe and recipe_key(r.recipe) == key]
    own = unchosen_control(search)
    if estimated and own is not None and _key_of(own) == key:
        runs.insert(0, own)
    if not runs:
        return None
    finished = [_test_scores(r) for r in runs if r.status == "finished" and _test_scores(r)]
    return Confirmation(0, recipe, finished, len(runs) - len(finished))


def _test_scores(run: TrialResult) -> dict[str, float]:
    return {k: v for k, v in run.metrics.items() if k.startswith(TEST_PREFIX)}


def confirmations(search: SearchResult) -> list[Confirmation]:
    """The test estimates of `search` (`estimate_of`), ranked as their recipes were in the search
    (the top K distinct recipes are what `--confirm K,S` re-trains)."""
    estimated = [r.recipe for r in search.of_role("confirm") if r.recipe is not None]
    keys = {recipe_key(recipe) for recipe in estimated}
    if keys and (own := unchosen_control_key(search)) is not None:
        keys.add(own)
    ranked = [t.recipe for t in search.ranked if t.recipe is not None]
    top = top_recipes(ranked, len(keys)) if keys else []
    found = [(place, estimate_of(search, recipe)) for place, recipe in enumerate(top, start=1)]
    return [replace(estimate, rank=place) for place, estimate in found if estimate is not None]
