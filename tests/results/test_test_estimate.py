"""`--confirm K,S` read back: the 95% interval against a hand computation, recipe choice, output."""

from __future__ import annotations

import math

import pytest

from minesearch.recipe import Recipe
from minesearch.report import format_confirmations
from minesearch.results import Confirmation, mean_ci95, top_recipes
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
    assert "4 new seeds per recipe" in table
