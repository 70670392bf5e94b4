"""Paired re-runs read back: the recipes and the control on the search's seed plus fresh seeds,
compared on common random numbers; the choice is the best mean, not the luckiest draw."""

from __future__ import annotations

from typing import Any

import pytest

from minesearch.recipe import Recipe
from minesearch.results import SearchResult, TrialResult
from minesearch.search._rerun import compare_reruns, rerun_recipes, rerun_seeds

MAP = "mean_average_precision_at_r"
A, B = Recipe("ContrastiveLoss", lr=1e-3), Recipe("ContrastiveLoss", lr=1e-2)
CONTROL = Recipe("TripletMarginLoss")


def run(
    trial_id: str, role: Any, recipe: Recipe, score: float, seed: int | None = None
) -> TrialResult:
    params = {} if seed is None else {"seed": str(seed)}
    return TrialResult(
        f"r-{trial_id}",
        trial_id,
        trial_id,
        role,
        "finished",
        params,
        {f"selected.{MAP}": score},
        recipe=recipe,
    )


def result(trials: list[TrialResult], chosen: str | None = None) -> SearchResult:
    return SearchResult("u", "e", "0", "p", "s", MAP, "max", trials, {}, chosen_trial_id=chosen)


def test_the_luckiest_draw_loses_to_the_best_mean() -> None:
    """A tops the search on seed 0 by luck; on three fresh seeds B is better every time."""
    seeds = rerun_seeds(0, 3)
    search = [
        run("a", "trial", A, 0.80),
        run("b", "trial", B, 0.70),
        run("c", "control", CONTROL, 0.6),
    ]
    reruns = [
        run(f"{n}{s}", "rerun", r, v, s)
        for n, r, vs in (
            ("a", A, (0.60, 0.62, 0.61)),
            ("b", B, (0.72, 0.74, 0.73)),
            ("c", CONTROL, (0.5, 0.52, 0.5)),
        )
        for s, v in zip(seeds, vs, strict=True)
    ]
    found = rerun_recipes(result(search), top=2)
    assert [r for r, _ in found] == [A, B, CONTROL]  # the top 2 and the control
    compared = compare_reruns(result(search + reruns), found, seeds)
    assert compared is not None and compared.comparison.units == 4
    assert compared.chosen.trial_id == "b"
    assert compared.comparison.means[1] == pytest.approx((0.70 + 0.72 + 0.74 + 0.73) / 4)
    assert 2 not in compared.comparison.indistinguishable  # the control is worse, every seed


def test_a_recipe_that_failed_a_seed_is_left_out() -> None:
    seeds = rerun_seeds(0, 2)
    search = [run("a", "trial", A, 0.8), run("b", "trial", B, 0.7)]
    reruns = [
        run("a1", "rerun", A, 0.7, seeds[0]),
        run("b1", "rerun", B, 0.7, seeds[0]),
        run("b2", "rerun", B, 0.71, seeds[1]),
    ]  # A's second seed never finished
    compared = compare_reruns(result(search + reruns), rerun_recipes(result(search), 2), seeds)
    assert compared is not None and compared.recipes == [B] and compared.chosen.trial_id == "b"


def test_the_choice_becomes_the_searchs_best() -> None:
    search = [run("a", "trial", A, 0.80), run("b", "trial", B, 0.70)]
    assert result(search).best.trial_id == "a"  # type: ignore[union-attr]
    assert result(search, chosen="b").best.trial_id == "b"  # type: ignore[union-attr]
