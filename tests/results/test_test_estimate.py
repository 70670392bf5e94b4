"""The test estimate read back: the 95% interval against a hand computation, recipe choice, the
control's own run as one of its seeds, output."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from scipy import stats

from minesearch.recipe import Recipe
from minesearch.report import format_confirmations
from minesearch.results import (
    Confirmation,
    SearchResult,
    TrialResult,
    confirmations,
    estimate_of,
    mean_ci95,
    top_recipes,
    unchosen_control,
    welch_half_width,
)
from minesearch.search._steps import confirmation_metrics

METRIC = "mean_average_precision_at_r"


def test_mean_ci95_by_hand() -> None:
    values = [0.70, 0.74, 0.72, 0.78]
    mean = sum(values) / 4
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)
    t_975_df3 = 3.182446305284263  # Student t quantile, tables
    got_mean, half = mean_ci95(values)
    assert got_mean == pytest.approx(mean)
    assert half == pytest.approx(t_975_df3 * sd / 2)
    assert mean_ci95([0.5, 0.5]) == (0.5, 0.0)
    assert math.isnan(mean_ci95([0.5])[1])


def test_welch_half_width_by_hand() -> None:
    """Two seeds each: s1^2 = 2e-4, s2^2 = 8e-5 (from the pairs below); Welch-Satterthwaite
    df = (a + b)^2 / (a^2 + b^2) with a = 1e-4, b = 4e-5 (each dof 1): 1.6897."""
    a, b = 1e-4, 4e-5
    df = (a + b) ** 2 / (a**2 + b**2)
    want = float(stats.t.ppf(0.975, df)) * math.sqrt(a + b)
    assert welch_half_width([0.30, 0.32], [0.40, 0.4 + math.sqrt(2 * 8e-5)]) == pytest.approx(want)
    assert welch_half_width([0.3], [0.5]) == 0.0  # single runs: no spread to show
    assert welch_half_width([0.3, 0.3], [0.5, 0.5]) == 0.0


@pytest.mark.parametrize("sizes", [(2, 2), (3, 3), (2, 5), (4, 3)])
def test_welch_half_width_is_scipys_welch_interval(sizes: tuple[int, int]) -> None:
    """The interval scipy's Welch test gives for the difference of means, and a lead beyond it
    exactly when the two-sided Welch p-value is under 0.05."""
    rng = np.random.default_rng(sum(sizes))
    for _ in range(20):
        x = rng.normal(0.30, rng.uniform(0.001, 0.03), sizes[0])
        y = rng.normal(0.31, rng.uniform(0.001, 0.03), sizes[1])
        found = stats.ttest_ind(x, y, equal_var=False)
        low, high = found.confidence_interval(0.95)
        half = welch_half_width(list(x), list(y))
        assert half == pytest.approx((high - low) / 2, rel=1e-9)
        assert (abs(x.mean() - y.mean()) > half) == (found.pvalue < 0.05)


def test_welch_against_a_score_without_noise_is_the_one_sample_interval() -> None:
    x = [0.31, 0.33, 0.30]
    low, high = stats.ttest_1samp(x, 0.28).confidence_interval(0.95)
    assert welch_half_width(x, [0.28]) == pytest.approx((high - low) / 2, rel=1e-9)


def test_top_recipes_skips_repeats() -> None:
    a = Recipe(loss="ContrastiveLoss", lr=1e-3)
    b = Recipe(loss="TripletMarginLoss", lr=1e-3)
    assert top_recipes([a, Recipe(loss="ContrastiveLoss", lr=1e-3), b], 2) == [a, b]
    assert top_recipes([a], 3) == [a]


def test_confirmation_metrics_and_table() -> None:
    scores = [{f"test.{METRIC}": v} for v in (0.6, 0.7, 0.8)]
    c = Confirmation(1, Recipe(loss="ContrastiveLoss", lr=1e-3), scores, failed=1)
    mean, half = c.interval(METRIC)
    assert mean == pytest.approx(0.7)
    metrics = confirmation_metrics(c, METRIC)  # what the parent run records
    assert metrics[f"confirm.1.test.{METRIC}.mean"] == pytest.approx(0.7)
    assert metrics[f"confirm.1.test.{METRIC}.ci95"] == pytest.approx(half)
    assert metrics["confirm.1.seeds"] == 3
    table = format_confirmations([c], METRIC)
    assert f"{mean:.4f} ± {half:.4f}" in table and "(1 failed)" in table
    assert "4 seeds per recipe" in table and "the control's own run is one of its seeds" in table


def _run(
    name: str, role: Any, recipe: Recipe, checkpoint: str | None = "ck", **metrics: float
) -> TrialResult:
    return TrialResult(
        f"run-{name}", name, name, role, "finished", {}, metrics, recipe, checkpoint=checkpoint
    )


CHOSEN = Recipe(loss="ContrastiveLoss", lr=1e-3)
CONTROL = Recipe(loss="NTXentLoss", lr=2e-5, head="none")


def _search(*trials: TrialResult) -> SearchResult:
    return SearchResult("u", "e", "0", "p", "s", METRIC, "max", list(trials))


def test_the_unchosen_controls_own_run_is_a_seed_of_its_estimate() -> None:
    """The control's run scored on test joins its new seeds (mean and interval over both, as
    Student t with 1 df); the chosen recipe's own run never joins its own."""
    best = _run("a", "trial", CHOSEN, **{f"selected.{METRIC}": 0.5, f"test.{METRIC}": 0.9})
    control = replace(  # proposed first inside the search, ranked second
        _run("c", "trial", CONTROL, **{f"selected.{METRIC}": 0.4, f"test.{METRIC}": 0.30}),
        is_control=True,
    )
    confirms = [
        _run("e0", "confirm", CHOSEN, **{f"test.{METRIC}": 0.33}),
        _run("e1", "confirm", CHOSEN, **{f"test.{METRIC}": 0.35}),
        _run("e2", "confirm", CONTROL, **{f"test.{METRIC}": 0.32}),
    ]
    result = _search(best, control, *confirms)
    assert unchosen_control(result) is control
    estimate = estimate_of(result, CONTROL)
    assert estimate is not None and estimate.values(METRIC) == [0.30, 0.32]
    mean, half = estimate.interval(METRIC)
    assert mean == pytest.approx(0.31) and half == pytest.approx(12.706204736 * 0.01, rel=1e-6)
    chosen = estimate_of(result, CHOSEN)
    assert chosen is not None and chosen.values(METRIC) == [0.33, 0.35]  # not 0.9
    ranked = [(c.rank, c.recipe, c.values(METRIC)) for c in confirmations(result)]
    assert ranked == [(1, CHOSEN, [0.33, 0.35]), (2, CONTROL, [0.30, 0.32])]


def test_the_controls_own_run_counts_only_unchosen_scored_and_with_an_estimate() -> None:
    control = _run("c", "control", CONTROL, **{f"selected.{METRIC}": 0.4, f"test.{METRIC}": 0.3})
    best = _run("a", "trial", CHOSEN, **{f"selected.{METRIC}": 0.5})
    confirm = _run("e0", "confirm", CONTROL, **{f"test.{METRIC}": 0.32})
    assert estimate_of(_search(best, control), CONTROL) is None  # no test estimate ran
    no_checkpoint = _run("c", "control", CONTROL, checkpoint=None, **{f"test.{METRIC}": 0.3})
    found = estimate_of(_search(best, no_checkpoint, confirm), CONTROL)
    assert found is not None and found.values(METRIC) == [0.32]
    inside = TrialResult(
        "run-c",
        "c",
        "c",
        "trial",
        "finished",
        {},
        {f"selected.{METRIC}": 0.6, f"test.{METRIC}": 0.3},
        CONTROL,
        checkpoint="ck",
        is_control=True,
    )
    chosen = _search(inside, best, confirm)
    assert chosen.best is inside and unchosen_control(chosen) is None
    found = estimate_of(chosen, CONTROL)
    assert found is not None and found.values(METRIC) == [0.32]
