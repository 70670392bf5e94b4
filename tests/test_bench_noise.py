"""The noise report (`bench/noise.py`): its variance decomposition against sums of squares written
out cell by cell and against synthetic data whose components are known, and its rankings on cases
whose answers are known."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from conftest import load_bench

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def noise() -> ModuleType:
    return load_bench("noise")


def brute_mean_squares(y: np.ndarray) -> dict[str, float]:
    """Mean squares of the three-way crossed design: sums of squares cell by cell, over dof."""
    r, s, k = y.shape
    m = sum(y[i, j, h] for i in range(r) for j in range(s) for h in range(k)) / (r * s * k)

    def mean(i: int | None, j: int | None, h: int | None) -> float:
        cells = [
            y[a, b, c]
            for a, b, c in itertools.product(range(r), range(s), range(k))
            if (i is None or a == i) and (j is None or b == j) and (h is None or c == h)
        ]
        return sum(cells) / len(cells)

    ss = dict.fromkeys(
        ["recipe", "seed", "fold", "recipe x seed", "recipe x fold", "fold x seed", "residual"], 0.0
    )
    for i, j, h in itertools.product(range(r), range(s), range(k)):
        a, b, c = mean(i, None, None), mean(None, j, None), mean(None, None, h)
        ab, ac, bc = mean(i, j, None), mean(i, None, h), mean(None, j, h)
        ss["recipe"] += (a - m) ** 2
        ss["seed"] += (b - m) ** 2
        ss["fold"] += (c - m) ** 2
        ss["recipe x seed"] += (ab - a - b + m) ** 2
        ss["recipe x fold"] += (ac - a - c + m) ** 2
        ss["fold x seed"] += (bc - b - c + m) ** 2
        ss["residual"] += (y[i, j, h] - ab - ac - bc + a + b + c - m) ** 2
    dof = {
        "recipe": r - 1,
        "seed": s - 1,
        "fold": k - 1,
        "recipe x seed": (r - 1) * (s - 1),
        "recipe x fold": (r - 1) * (k - 1),
        "fold x seed": (s - 1) * (k - 1),
        "residual": (r - 1) * (s - 1) * (k - 1),
    }
    return {name: ss[name] / dof[name] for name in ss}


def test_mean_squares_match_the_cell_by_cell_sums(noise: ModuleType) -> None:
    y = np.random.default_rng(0).normal(size=(4, 3, 3))
    got = noise.decompose(y)
    want = brute_mean_squares(y)
    for name, value in want.items():
        assert got.mean_squares[name] == pytest.approx(value, rel=1e-10), name
    e = want["residual"]  # the expected-mean-square solution, written out
    assert got.components["recipe x seed"] == pytest.approx((want["recipe x seed"] - e) / 3)
    assert got.components["recipe"] == pytest.approx(
        (want["recipe"] - want["recipe x fold"] - want["recipe x seed"] + e) / 9
    )
    assert got.components["fold"] == pytest.approx(
        (want["fold"] - want["recipe x fold"] - want["fold x seed"] + e) / 12
    )


def test_additive_effects_without_noise_are_recovered_exactly(noise: ModuleType) -> None:
    recipe, fold, seed = (
        np.array([0.1, 0.3, 0.2, 0.6]),
        np.array([0.0, 0.05, -0.02]),
        np.array([0.01, -0.01]),
    )
    y = recipe[:, None, None] + seed[None, :, None] + fold[None, None, :]
    got = noise.decompose(y).components
    assert got["recipe"] == pytest.approx(np.var(recipe, ddof=1))
    assert got["fold"] == pytest.approx(np.var(fold, ddof=1))
    assert got["seed"] == pytest.approx(np.var(seed, ddof=1))
    for name in ("recipe x fold", "recipe x seed", "fold x seed", "residual"):
        assert got[name] == pytest.approx(0.0, abs=1e-12), name


def test_components_are_unbiased_on_synthetic_data(noise: ModuleType) -> None:
    """Random effects with known variances: the estimates average to them over many tables."""
    sds = {
        "recipe": 0.05,
        "fold": 0.04,
        "seed": 0.02,
        "recipe x fold": 0.03,
        "recipe x seed": 0.025,
        "fold x seed": 0.015,
        "residual": 0.02,
    }
    rng = np.random.default_rng(1)
    r, s, k, tables = 8, 4, 3, 1500
    total = dict.fromkeys(sds, 0.0)
    for _ in range(tables):
        y = (
            rng.normal(0, sds["recipe"], (r, 1, 1))
            + rng.normal(0, sds["seed"], (1, s, 1))
            + rng.normal(0, sds["fold"], (1, 1, k))
            + rng.normal(0, sds["recipe x seed"], (r, s, 1))
            + rng.normal(0, sds["recipe x fold"], (r, 1, k))
            + rng.normal(0, sds["fold x seed"], (1, s, k))
            + rng.normal(0, sds["residual"], (r, s, k))
        )
        for name, value in noise.decompose(y).components.items():
            total[name] += value / tables
    for name, sd in sds.items():
        assert total[name] == pytest.approx(sd**2, rel=0.12), name


def test_decompose_refuses_unbalanced_or_flat_designs(noise: ModuleType) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        noise.decompose(np.zeros((5, 1, 3)))
    y = np.zeros((3, 2, 2))
    y[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        noise.decompose(y)


def test_rankings_without_recipe_noise_are_the_truth(noise: ModuleType) -> None:
    """Fold and seed luck shared by every recipe (common random numbers) leaves every ranking
    exact: tau 1 and no regret, whatever the design."""
    recipe = np.array([0.1, 0.5, 0.3, 0.2, 0.4])
    y = recipe[:, None, None] + np.array([0.2, -0.1, 0.0])[None, :, None]
    y = y + np.array([0.05, -0.3])[None, None, :]
    choices = {(1, 1): 6, (2, 1): 3, (1, 2): 6}  # C(3 seeds, N) x C(2 folds, F)
    for d in noise.rank_designs(y, list(choices)):
        assert len(d.tau_all) == choices[(d.folds, d.seeds)]
        np.testing.assert_allclose(d.tau_all, 1.0)
        np.testing.assert_allclose(d.tau_held, 1.0)
        np.testing.assert_allclose(d.regret_held, 0.0, atol=1e-12)


def test_one_lucky_run_misleads_one_split_not_the_fold_mean(noise: ModuleType) -> None:
    """Recipe 0 is best; recipe 1 got one lucky run (seed 0, fold 0): that split picks it (regret
    0.1 against the other seed), the mean over both folds does not."""
    y = np.zeros((3, 2, 2))
    y[0], y[1], y[2] = 0.6, 0.5, 0.1
    y[1, 0, 0] = 0.65
    single, both = noise.rank_designs(y, [(1, 1), (2, 1)])
    assert sorted(single.regret_held.round(9)) == [0.0, 0.0, 0.0, 0.1]
    np.testing.assert_allclose(both.regret_held, 0.0, atol=1e-12)  # seed 0: 0.575 < 0.6
    assert sorted(single.tau_all.round(6)) == [0.333333, 1.0, 1.0, 1.0]
    np.testing.assert_allclose(both.tau_held, 1.0)
