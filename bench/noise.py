"""How noisy is a recipe's score, and what does averaging over folds or seeds buy? Read from a
tabular benchmark with folds (`bench/tabular.py`).

Run:
    python bench/noise.py bench/tables/digits_folds.parquet    # -> bench/results/noise_<table>.txt
    python bench/noise.py bench/tables/vectors_folds.parquet

The score is the selected one: each run's best validation epoch, as a trial is scored.

1. **Variance decomposition** of that score over the table's balanced crossed design (every recipe
   x seed x fold), by the method of moments (random-effects ANOVA of a three-way crossed design
   with one run a cell): recipe (the signal), fold (which classes land in val: moves every recipe),
   seed (initialisation and batch order, shared by every recipe: common random numbers),
   recipe x fold and recipe x seed (how much a recipe's own luck differs from the others'), fold x
   seed, and the residual (recipe x fold x seed). Fold, seed and fold x seed move all recipes
   alike, so comparing recipes on the same units (pairing) removes them; the recipe x ... terms
   are the noise that pairing cannot remove.
2. The median **seed sd** of a recipe (over seeds, one fold) against the **spread of the top 10**
   recipes' true means (max - min): when the first is larger, one run cannot rank the top.
3. **Kendall's tau** of the ranking one design gives (the mean over F folds x N seeds of the
   table, every choice of them) against the truth, and the true regret of that design's best
   recipe: the median [quartiles] over the choices. The truth is the mean over all folds and
   seeds (`tau all`, which shares the design's own runs and so flatters it), and over all folds of
   the *other* seeds (`tau held`, `regret held`: independent of the design's seed luck). F = 1, N
   = 1 is one split; F = 2, 3 is what folds buy; F = 1, N = 2, 3 the same cost spent on seeds.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benches' shared modules

from _table import Table, load_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TOP = 10

COMPONENTS = ("recipe", "fold", "seed", "recipe x fold", "recipe x seed", "fold x seed", "residual")


# --- the variance decomposition ----------------------------------------------------------------


@dataclass(frozen=True)
class Decomposition:
    """Variance components (method of moments; may come out negative: read those as ~0)."""

    components: dict[str, float]
    mean_squares: dict[str, float]
    dof: dict[str, int]

    def sd(self, name: str) -> float:
        return float(np.sqrt(max(self.components[name], 0.0)))

    @property
    def pairable(self) -> float:
        """What moves every recipe alike in a unit: removed by comparing on the same units."""
        return sum(max(self.components[n], 0.0) for n in ("fold", "seed", "fold x seed"))

    @property
    def recipe_noise(self) -> float:
        """A recipe's own luck in one unit: what a paired difference still carries (per recipe)."""
        return sum(
            max(self.components[n], 0.0) for n in ("recipe x fold", "recipe x seed", "residual")
        )


def decompose(y: np.ndarray) -> Decomposition:
    """Method-of-moments variance components of y [recipes, seeds, folds], one run a cell.

    Expected mean squares (R recipes, S seeds, K folds; e = residual):
    E[MS_rs] = e + K rs, E[MS_rk] = e + S rk, E[MS_sk] = e + R sk,
    E[MS_r] = e + S rk + K rs + S K r, E[MS_s] = e + K rs + R sk + R K s,
    E[MS_k] = e + S rk + R sk + R S k; solved for the components.
    """
    y = np.asarray(y, dtype=float)
    if y.ndim != 3 or min(y.shape) < 2:
        raise ValueError(f"need recipes x seeds x folds, each at least 2, got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("every run needs a finite score (a balanced design)")
    r, s, k = y.shape
    m = y.mean()
    mr, ms, mk = y.mean(axis=(1, 2)), y.mean(axis=(0, 2)), y.mean(axis=(0, 1))
    mrs, mrk, msk = y.mean(axis=2), y.mean(axis=1), y.mean(axis=0)
    resid = (
        y
        - mrs[:, :, None]
        - mrk[:, None, :]
        - msk[None, :, :]
        + mr[:, None, None]
        + ms[None, :, None]
        + mk[None, None, :]
        - m
    )
    ss = {
        "recipe": s * k * np.sum((mr - m) ** 2),
        "seed": r * k * np.sum((ms - m) ** 2),
        "fold": r * s * np.sum((mk - m) ** 2),
        "recipe x seed": k * np.sum((mrs - mr[:, None] - ms[None, :] + m) ** 2),
        "recipe x fold": s * np.sum((mrk - mr[:, None] - mk[None, :] + m) ** 2),
        "fold x seed": r * np.sum((msk - ms[:, None] - mk[None, :] + m) ** 2),
        "residual": np.sum(resid**2),
    }
    dof = {
        "recipe": r - 1,
        "seed": s - 1,
        "fold": k - 1,
        "recipe x seed": (r - 1) * (s - 1),
        "recipe x fold": (r - 1) * (k - 1),
        "fold x seed": (s - 1) * (k - 1),
        "residual": (r - 1) * (s - 1) * (k - 1),
    }
    ms_ = {name: float(ss[name] / dof[name]) for name in ss}
    e = ms_["residual"]
    rs_, rk_, sk_ = (
        (ms_["recipe x seed"] - e) / k,
        (ms_["recipe x fold"] - e) / s,
        (ms_["fold x seed"] - e) / r,
    )
    comp = {
        "recipe": (ms_["recipe"] - ms_["recipe x fold"] - ms_["recipe x seed"] + e) / (s * k),
        "fold": (ms_["fold"] - ms_["recipe x fold"] - ms_["fold x seed"] + e) / (r * s),
        "seed": (ms_["seed"] - ms_["recipe x seed"] - ms_["fold x seed"] + e) / (r * k),
        "recipe x fold": rk_,
        "recipe x seed": rs_,
        "fold x seed": sk_,
        "residual": e,
    }
    return Decomposition({n: float(comp[n]) for n in COMPONENTS}, ms_, dof)


# --- rankings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DesignResult:
    folds: int
    seeds: int
    tau_all: np.ndarray  # one per choice of folds and seeds
    tau_held: np.ndarray  # against the other seeds' mean (empty when no seed is left)
    regret_held: np.ndarray


def rank_designs(y: np.ndarray, designs: list[tuple[int, int]]) -> list[DesignResult]:
    """For each (F folds, N seeds): every choice of F of the folds and N of the seeds, the
    ranking of the recipes by their mean over those runs, against the truth."""
    from scipy.stats import kendalltau

    _, s, k = y.shape
    truth = y.mean(axis=(1, 2))
    out = []
    for f, n in designs:
        tau_all, tau_held, regret = [], [], []
        for seeds in itertools.combinations(range(s), n):
            others = [i for i in range(s) if i not in seeds]
            held = y[:, others, :].mean(axis=(1, 2)) if others else None
            for folds in itertools.combinations(range(k), f):
                est = y[:, list(seeds)][:, :, list(folds)].mean(axis=(1, 2))
                tau_all.append(kendalltau(est, truth).statistic)
                if held is not None:
                    tau_held.append(kendalltau(est, held).statistic)
                    regret.append(held.max() - held[int(np.argmax(est))])
        out.append(DesignResult(f, n, np.array(tau_all), np.array(tau_held), np.array(regret)))
    return out


def default_designs(table: Table) -> list[tuple[int, int]]:
    k, s = table.folds, table.seeds
    out = [(f, 1) for f in range(1, k + 1)] + [(1, n) for n in range(2, min(s, k) + 1)]
    return [*out, (k, s - 1)] if s > 2 else out


# --- the report ----------------------------------------------------------------------------------


def _quartiles(x: np.ndarray, spec: str = ".3f") -> str:
    if not len(x):
        return "-"
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return f"{med:{spec}} [{q1:{spec}}, {q3:{spec}}]"


def decomposition_lines(title: str, y: np.ndarray) -> list[str]:
    d = decompose(y)
    total = sum(max(v, 0.0) for v in d.components.values())
    lines = [title, f"{'component':<15} {'variance':>10} {'sd':>7} {'share':>6}"]
    for name in COMPONENTS:
        v = d.components[name]
        lines.append(f"{name:<15} {v:>10.2e} {d.sd(name):>7.4f} {max(v, 0.0) / total:>6.0%}")
    lines += [
        f"moves every recipe alike (fold + seed + fold x seed: pairing removes it): sd "
        f"{np.sqrt(d.pairable):.4f}; a recipe's own luck in one run (recipe x fold + recipe x "
        f"seed + residual): sd {np.sqrt(d.recipe_noise):.4f}; recipes' spread (recipe): sd "
        f"{d.sd('recipe'):.4f}",
    ]
    return lines


def report(table: Table) -> list[str]:
    y = table.selected()  # [R, S, K]
    truth = table.true_mean()
    top = np.sort(truth)[::-1][:TOP]
    seed_sd = np.median(np.std(y, axis=1, ddof=1))
    fold_sd = np.median(np.std(y, axis=2, ddof=1))
    metric = table.meta["metric"]
    lines = [
        f"table: {table.meta['data']} ({len(table.keys)} recipes x {table.seeds} seeds x "
        f"{table.folds} folds, {table.epochs} epochs); score: {metric} at each run's best "
        "validation epoch",
        f"untrained (epoch 0) mean {np.nanmean(table.scores[..., 0]):.4f}; best true mean "
        f"{truth.max():.4f}; median true mean {np.median(truth):.4f}",
        "",
        *decomposition_lines("variance decomposition (method of moments, balanced crossed):", y),
        "",
        f"median seed sd of a recipe (sd over seeds within a fold): {seed_sd:.4f}; median fold sd "
        f"(sd over folds within a seed): {fold_sd:.4f}",
        f"spread of the top {TOP} recipes' true means (max - min): {top[0] - top[-1]:.4f} "
        f"({top[-1]:.4f} .. {top[0]:.4f}); seed sd / top-{TOP} spread = "
        f"{seed_sd / max(top[0] - top[-1], 1e-12):.1f}",
        "",
        "rankings of the recipes by the mean over F folds x N seeds (every choice of them) "
        "against the truth: median [quartiles]",
    ]
    head = f"{'F x N':<6} {'runs':>4} {'tau all':>22} {'tau held':>22} {'regret held':>22}"
    lines += [head, "-" * len(head)]
    for d in rank_designs(y, default_designs(table)):
        lines.append(
            f"{f'{d.folds} x {d.seeds}':<6} {d.folds * d.seeds:>4} {_quartiles(d.tau_all):>22} "
            f"{_quartiles(d.tau_held):>22} {_quartiles(d.regret_held, '.4f'):>22}"
        )
    if table.test is not None:
        test = table.selected_test()
        lines += [
            "",
            *decomposition_lines(
                f"the test classes' score at the selected epoch (mean {np.mean(test):.4f}):", test
            ),
        ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", type=Path)
    parser.add_argument("--out", type=Path, help="default bench/results/noise_<table>.txt")
    args = parser.parse_args(argv)
    started = time.time()
    lines = report(load_table(args.table))
    print("\n".join(lines))
    out = args.out or RESULTS / f"noise_{args.table.stem}.txt"
    command = " ".join(["python", "bench/noise.py", *(argv if argv is not None else sys.argv[1:])])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join([f"$ {command}", *lines, ""]))
    print(f"\n{out} ({time.time() - started:.1f} s)")


if __name__ == "__main__":
    main()
