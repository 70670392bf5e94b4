"""How a `Report` reads: the text leaderboard and the PNG plots (no MLflow access here).

Figures are built with `matplotlib.figure.Figure`, not pyplot: no global backend or figure
registry is touched (PNG output goes through Agg), so it is safe inside a search's driver process
and in threads, and nothing leaks between calls.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from minesearch.report._build import Report
from minesearch.results import TrialResult
from minesearch.tracking import names

FILES = {
    "margin": "metric_vs_margin.png",
    "loss_miner": "loss_miner_heatmap.png",
    "importance": "param_importance.png",
    "mining": "mining_difficulty.png",
}
TRIPLET_COLORS = {  # fixed per type, so colours mean the same in every report
    "all": "tab:blue",
    "hard": "tab:red",
    "semihard": "tab:orange",
    "easy": "tab:green",
}
NOT_APPLICABLE = "grey"
MINING_STYLE = {
    "mining.hard": "tab:red",
    "mining.semihard": "tab:orange",
    "mining.easy": "tab:green",
}
DPI = 120


def write_plots(report: Report, out_dir: Path) -> list[Path]:
    """Draw every plot the report has data for (see `report.skipped` for the others)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    drawers = {
        "margin": _margin,
        "loss_miner": _loss_miner,
        "importance": _importance,
        "mining": _mining,
    }
    paths = []
    for name, draw in drawers.items():
        if name in report.skipped:
            continue
        fig = draw(report)
        path = out_dir / FILES[name]
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        paths.append(path)
    return paths


def _metric_name(report: Report) -> str:
    short = {"mean_average_precision_at_r": "MAP@R", "precision_at_1": "P@1"}
    return short.get(report.metric, report.metric)


def _margin(report: Report) -> Figure:
    """Metric vs margin, coloured by type_of_triplets: where the margin/difficulty sweet spot is."""
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot()
    points = [(t, t.margin, report.score(t)) for t in report.ranked]
    trials = [(t, x, y) for t, x, y in points if x is not None and y is not None]
    for trial, x, y in trials:
        color = TRIPLET_COLORS.get(trial.params.get(names.TRIPLETS_PARAM, ""), NOT_APPLICABLE)
        face = "none" if trial.status == "pruned" else color
        if trial.role == "control":
            ax.scatter(x, y, s=220, marker="*", facecolors=face, edgecolors="black", zorder=3)
            ax.annotate("control", (x, y), xytext=(7, 5), textcoords="offset points", fontsize=8)
        else:
            ax.scatter(x, y, s=60, marker="o", facecolors=face, edgecolors=color, zorder=2)
            ax.annotate(
                trial.trial_id,
                (x, y),
                xytext=(6, -3),
                textcoords="offset points",
                fontsize=7,
                color="dimgrey",
            )
    kinds = sorted({t.params.get(names.TRIPLETS_PARAM, "n/a") for t, _, _ in trials})
    handles = [
        _dot(TRIPLET_COLORS.get(k, NOT_APPLICABLE), k.replace("n/a", "n/a (not asked)"))
        for k in kinds
    ]
    handles.append(_dot("black", "pruned (partial score)", hollow=True))
    if (pretrained := report.search.pretrained.get(report.metric)) is not None:
        ax.axhline(pretrained, color="black", linestyle="--", linewidth=1)
        handles.append(Line2D([], [], color="black", linestyle="--", label="pretrained model"))
    ax.legend(handles=handles, title="type_of_triplets", fontsize=8, loc="best")
    ax.set_xlabel("margin (miner.margin if the miner has one, else loss.margin)")
    ax.set_ylabel(f"{report.metric} (selected epoch)")
    ax.set_title(f"{_metric_name(report)} vs margin ({len(trials)} trials with a margin)")
    ax.grid(alpha=0.3)
    return fig


def _dot(color: str, label: str, hollow: bool = False) -> Line2D:
    face = "none" if hollow else color
    return Line2D([], [], marker="o", ls="", color=color, markerfacecolor=face, label=label)


def _loss_miner(report: Report) -> Figure:
    """Best metric per loss x miner pair: which combinations work, which were never tried."""
    best: dict[tuple[str, str], list[float]] = defaultdict(list)
    for trial in report.ranked:
        best[(trial.params.get("loss", "?"), trial.params.get("miner", "?"))].append(
            report.score(trial) or 0.0
        )
    losses = sorted({loss for loss, _ in best})
    miners = sorted({miner for _, miner in best}, key=lambda m: (m != "none", m))
    pick = max if report.mode == "max" else min
    grid = np.full((len(losses), len(miners)), np.nan)
    counts = np.zeros_like(grid, dtype=int)
    for (loss, miner), scores in best.items():
        grid[losses.index(loss), miners.index(miner)] = pick(scores)
        counts[losses.index(loss), miners.index(miner)] = len(scores)
    fig = Figure(figsize=(max(6.5, 1.9 * len(miners) + 3.5), max(3.4, 0.75 * len(losses) + 2.2)))
    ax = fig.add_subplot()
    cmap = mpl.colormaps["viridis" if report.mode == "max" else "viridis_r"]  # good is yellow
    cmap = cmap.with_extremes(bad="white")
    norm = Normalize(vmin=float(np.nanmin(grid)), vmax=float(np.nanmax(grid)))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
    fig.colorbar(image, ax=ax, label=f"best {_metric_name(report)}")
    ax.set_xticks(range(len(miners)), miners, rotation=20, ha="right")
    ax.set_yticks(range(len(losses)), losses)
    ax.set_xlabel("miner")
    ax.set_ylabel("loss")
    _annotate(ax, grid, counts, lambda value: cmap(norm(value)))
    better = "higher" if report.mode == "max" else "lower"
    pretrained = report.search.pretrained.get(report.metric)
    bar = "" if pretrained is None else f"; pretrained model: {pretrained:.3f}"
    ax.set_title(
        f"Best {_metric_name(report)} per loss x miner\n({better} is better; blank: not tried{bar})"
    )
    return fig


def _annotate(ax: Axes, grid: np.ndarray, counts: np.ndarray, rgba: Callable[[float], Any]) -> None:
    """Write each cell's value and trial count, in white on dark cells and black on light ones."""
    for (i, j), value in np.ndenumerate(grid):
        if np.isnan(value):
            continue
        red, green, blue, _ = rgba(value)
        color = "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black"
        ax.text(
            j,
            i,
            f"{value:.3f}\nn={counts[i, j]}",
            ha="center",
            va="center",
            color=color,
            fontsize=9,
        )


def _importance(report: Report) -> Figure:
    """fANOVA importances: which knobs explain the metric's variance across finished trials."""
    params = list(report.importance)[::-1]  # most important on top
    values = [report.importance[n] for n in params]
    fig = Figure(figsize=(7, 0.45 * len(params) + 1.8))
    ax = fig.add_subplot()
    bars = ax.barh(params, values, color="tab:blue")
    ax.bar_label(bars, fmt="%.2f", padding=3, fontsize=9)
    ax.set_xlim(0, max(values) * 1.15 or 1)
    ax.set_xlabel(f"importance for {report.metric} (fANOVA, shares sum to 1)")
    finished = report.count("finished")
    ax.set_title(f"Parameter importance for {_metric_name(report)} (fANOVA, {finished} trials)")
    if report.unrated:
        fig.text(
            0.01,
            -0.02,
            "not rated (set for some recipes only): " + ", ".join(report.unrated),
            fontsize=8,
            va="top",
        )
    return fig


def _mining(report: Report) -> Figure:
    """Shares of hard / semihard / easy candidate triplets per epoch for the top trials."""
    by_id: dict[str, TrialResult] = {t.run_id: t for t in report.trials}
    fig = Figure(figsize=(5.2 * len(report.mining), 4.2))
    axes = fig.subplots(1, len(report.mining), sharey=True, squeeze=False)[0]
    for place, (ax, (run_id, curves)) in enumerate(zip(axes, report.mining.items(), strict=True)):
        for key, color in MINING_STYLE.items():
            points = curves.get(key, [])
            if points:
                epochs, shares = zip(*points, strict=True)
                ax.plot(epochs, shares, marker="o", color=color, label=key.removeprefix("mining."))
        trial = by_id[run_id]
        ax.set_title(
            f"#{place + 1} {_wrap(trial.label)}\n{_metric_name(report)} {report.score(trial):.3f}",
            fontsize=9,
        )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of candidate triplets")
    axes[0].legend(title="difficulty", fontsize=8)
    fig.suptitle(
        "Mining difficulty of the top trials: m = d(a,n) - d(a,p); hard m ≤ 0, "
        "semihard 0 < m ≤ margin, easy m > margin",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _wrap(label: str, width: int = 40) -> str:
    """Break a long recipe label at spaces so panel titles stay inside their panel."""
    lines: list[str] = [""]
    for word in label.split(" "):
        if lines[-1] and len(lines[-1]) + len(word) + 1 > width:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}".strip()
    return "\n".join(lines)
