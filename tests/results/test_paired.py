"""The set indistinguishable from the best (`compare_to_best`) against a brute-force computation:
t statistics by hand, p-values from scipy's Student t, Holm's rule by explicit sorted thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from minesearch.results import ALPHA, compare_to_best, holm


def brute_force(x: np.ndarray, alpha: float = ALPHA) -> tuple[int, list[float], list[bool]]:
    """(best row, one-sided p per row, worse per row) computed the long way round."""
    rows, n = x.shape
    means = [sum(row) / n for row in x]
    best = max(range(rows), key=lambda i: (means[i], -i))  # the first of ties
    p = [math.nan] * rows
    for i in range(rows):
        if i == best:
            continue
        d = [x[best][u] - x[i][u] for u in range(n)]
        mean = sum(d) / n
        sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
        t = mean / (sd / math.sqrt(n))
        p[i] = 1.0 - stats.t.cdf(t, df=n - 1)
    others = sorted((i for i in range(rows) if i != best), key=lambda i: p[i])
    m = len(others)
    thresholds = [alpha / (m - k) for k in range(m)]  # alpha/m, alpha/(m-1), ..., alpha
    worse = [False] * rows
    for k, i in enumerate(others):
        if p[i] > thresholds[k]:
            break
        worse[i] = True
    return best, p, worse


HAND = np.array(
    [
        [0.70, 0.74, 0.69, 0.72, 0.75],
        [0.69, 0.73, 0.69, 0.70, 0.74],  # a little worse on every unit
        [0.60, 0.80, 0.55, 0.85, 0.65],  # about as good on average, very noisy
        [0.50, 0.52, 0.49, 0.51, 0.53],  # far worse
    ]
)


def test_hand_matrix_matches_brute_force_and_scipys_paired_test() -> None:
    got = compare_to_best(HAND)
    best, p, worse = brute_force(HAND)
    assert got.best == best == 0
    assert got.p_values[0] != got.p_values[0]  # nan for the best itself
    np.testing.assert_allclose(got.p_values[1:], p[1:], rtol=1e-10)
    for i in (1, 2, 3):  # scipy's own paired one-sided test agrees
        ref = stats.ttest_rel(HAND[0], HAND[i], alternative="greater").pvalue
        assert got.p_values[i] == pytest.approx(ref, rel=1e-10)
    assert got.worse == worse == [False, True, False, True]
    assert got.indistinguishable == [0, 2]  # the noisy one cannot be told apart
    assert got.choice == 0 and got.units == 5 and got.note == ""


@pytest.mark.parametrize("seed", range(20))
def test_random_matrices_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    recipes, units = int(rng.integers(2, 6)), int(rng.integers(2, 7))
    unit_luck = rng.normal(0, 0.05, size=units)  # common random numbers: shared by all recipes
    x = rng.normal(0.6, 0.03, size=(recipes, 1)) + unit_luck + rng.normal(0, 0.01, (recipes, units))
    got = compare_to_best(x)
    best, p, worse = brute_force(x)
    assert got.best == best
    np.testing.assert_allclose(np.asarray(got.p_values), np.asarray(p), rtol=1e-9)
    assert got.worse == worse


def test_min_mode_mirrors_max() -> None:
    up, down = compare_to_best(HAND, "max"), compare_to_best(-HAND, "min")
    assert down.best == up.best and down.worse == up.worse
    np.testing.assert_allclose(down.p_values, up.p_values)


def test_pairing_sees_a_small_consistent_gap_under_large_unit_luck() -> None:
    """Unit luck of +-0.1 swamps a 0.01 gap in the scores, not in the differences."""
    luck = np.array([0.1, -0.1, 0.05, -0.08, 0.02, 0.0])
    x = np.stack([0.7 + luck, 0.69 + luck + np.array([0.001, -0.001, 0.0, 0.001, 0.0, -0.001])])
    assert compare_to_best(x).worse == [False, True]
    unpaired = stats.ttest_ind(x[0], x[1], alternative="greater").pvalue
    assert unpaired > 0.4  # what an unpaired test would have said


def test_one_unit_cannot_tell_anything_apart() -> None:
    got = compare_to_best(HAND[:, :1])
    assert got.indistinguishable == [0, 1, 2, 3] and got.best == 0 and got.units == 1
    assert "one unit" in got.note and all(math.isnan(p) for p in got.p_values)


def test_zero_variance_differences_are_exact() -> None:
    x = np.array([[0.5, 0.6, 0.7], [0.4, 0.5, 0.6], [0.5, 0.6, 0.7]])  # -0.1 always; a copy
    got = compare_to_best(x)
    assert got.best == 0  # the first of the tied best
    assert got.p_values[1] == 0.0 and got.p_values[2] == 1.0
    assert got.worse == [False, True, False]


def test_one_recipe_is_its_own_set() -> None:
    got = compare_to_best([[0.3, 0.4, 0.5]])
    assert got.indistinguishable == [0] and got.note == ""


def test_holm_steps_down_and_beats_bonferroni() -> None:
    # sorted 0.01 <= 0.05/2, then 0.04 <= 0.05/1: both rejected (Bonferroni: 0.04 > 0.025)
    assert holm([0.04, 0.01]) == [True, True]
    # 0.001 <= 0.05/3; 0.03 > 0.05/2 stops it: 0.2 is not even tried
    assert holm([0.03, 0.001, 0.2]) == [False, True, False]
    assert holm([0.5, 0.001, 0.002]) == [False, True, True]
    assert holm([]) == []


@pytest.mark.parametrize(
    "bad", [np.array([0.1, 0.2]), np.zeros((0, 3)), np.array([[0.1, np.nan], [0.2, 0.3]])]
)
def test_bad_matrices_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="scores must be"):
        compare_to_best(bad)
