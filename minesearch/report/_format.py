"""How a `Report` reads as text: the leaderboard, then what the search found and where to look.

`minesearch run` prints it when a search ends and `minesearch report` prints it any time later:
one text for one result model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from minesearch.config.vocab import SELECTED_PREFIX, TEST_PREFIX
from minesearch.report._build import Report
from minesearch.results import (
    SHOWN,
    Confirmation,
    SearchResult,
    TrialResult,
    summary_line,
    verdict,
)
from minesearch.tracking import names, open_ui_command, recipe_params, runs_url

ERROR_CHARS = 300  # the tail of a failed trial's traceback shown


def format_report(report: Report) -> str:
    """The leaderboard, the best recipe and its scores, the test split, the confirmations, the
    failed trials, and the command that opens the MLflow UI."""
    lines = [format_leaderboard(report)]
    search = report.search
    best = search.best
    if best is not None:
        params = recipe_params(best.recipe) if best.recipe is not None else dict(best.params)
        lines += ["", f"best recipe ({best.trial_id}): {params}"]
        scores: dict[str, float] = {k: v for k in SHOWN if (v := best.score(k)) is not None}
        lines.append(f"best scores ({_at(best)}): " + _scores(scores, SHOWN))
    for name, trial in (("best", best), ("control", search.control)):
        test = {
            k: v for k, v in (trial.metrics if trial else {}).items() if k.startswith(TEST_PREFIX)
        }
        if test:
            lines.append(
                f"{name} on the test split (scored once, after selection): "
                + _scores(test, tuple(f"{TEST_PREFIX}{k}" for k in SHOWN), TEST_PREFIX)
            )
    if reruns := format_reruns(search):
        lines += ["", reruns]
    if report.confirmations:
        lines += ["", format_confirmations(report.confirmations, report.metric)]
    if (found := verdict(search)) is not None:
        lines += ["", f"verdict: {summary_line(found)}", *(f"  {line}" for line in found.lines)]
    for t in search.searched:
        if t.status == "failed":
            reason = (t.error or "").strip()[-ERROR_CHARS:]
            lines.append(f"failed {t.trial_id} ({t.label}): {reason}")
    lines += ["", f"compare the trials in MLflow: {ui_line(search)}"]
    return "\n".join(lines)


def ui_line(search: SearchResult) -> str:
    """Where to look: on a tracking server, whose UI is up already, its runs page of this search
    (best first); on a local store, the command that starts the UI there (`minesearch ui`)."""
    uri = search.tracking_uri
    if uri.startswith(("http://", "https://")):
        metric = f"{SELECTED_PREFIX}{search.metric}"
        asc = search.mode == "min"
        return "open " + runs_url(uri, search.experiment_id, search.parent_run_id, metric, asc)
    return open_ui_command(uri)


def format_leaderboard(report: Report) -> str:
    """The leaderboard as text: counts by status, the top trials, the control, importances."""
    search = report.search
    trials = search.searched
    lines = [
        f"search {search.parent_name} ({search.parent_run_id}), experiment {search.experiment}",
        f"{len(trials)} trials: {report.count('finished')} finished, {report.count('pruned')} "
        f"pruned, {report.count('failed')} failed"
        + "".join(f", {report.count(s)} {s}" for s in ("killed", "running") if report.count(s)),
        "",
        f"ranked by {report.metric} ({report.mode}) at each trial's selected epoch (column "
        "epoch: selected/run); epoch 0: before training"
        + (
            "\nvs control: score - the control's score (the practitioner's recipe for this model)"
            if report.control
            else ""
        ),
    ]
    pretrained = search.pretrained.get(report.metric)
    if pretrained is not None:
        lines.append("pretrained: the pretrained model itself, the bar every recipe must clear")
    if not report.rows:
        return "\n".join([*lines, "no trial has a score yet"])
    vs = f"  {'vs control':>10}" if report.control else ""
    lines.append(
        f"{'rank':>4}  {'score':>7}  {'epoch 0':>7}{vs}  {'epoch':>7}  {'status':<8}  recipe"
    )
    rows = []
    for row in report.rows:
        delta = f"  {_num(row.delta, signed=True):>10}" if report.control else ""
        rows.append(
            f"{row.rank:>4}  {row.score:>7.4f}  {_num(row.baseline):>7}{delta}  "
            f"{_epochs(row.trial):>7}  {row.trial.status:<8}  {row.trial.label}"
        )
    if pretrained is not None:  # a row of its own, where its score ranks
        sign = 1 if report.mode == "max" else -1
        place = sum(1 for row in report.rows if sign * row.score > sign * pretrained)
        delta = ""
        if report.control and (control := report.score(report.control)) is not None:
            delta = f"  {_num(pretrained - control, signed=True):>10}"
        elif report.control:
            delta = f"  {'-':>10}"
        rows.insert(
            place,
            f"{'-':>4}  {pretrained:>7.4f}  {'-':>7}{delta}  {'-':>7}  {'-':<8}  pretrained model",
        )
    lines += rows
    ranked = report.ranked
    if report.control is not None and report.control in ranked:
        place = ranked.index(report.control) + 1
        lines.append(
            f"the control ranks {place} of {len(ranked)} with {report.score(report.control):.4f}: "
            f"{report.control.label}"
        )
    elif report.control is not None:
        lines.append(f"the control has no score ({report.control.status}): {report.control.label}")
    if report.importance:
        rated = ", ".join(f"{k} {v:.2f}" for k, v in report.importance.items())
        lines += ["", f"parameter importance (fANOVA over finished trials): {rated}"]
        if report.unrated:
            lines.append(f"  not rated (set for some recipes only): {', '.join(report.unrated)}")
    return "\n".join(lines)


def _epochs(trial: TrialResult) -> str:
    """`selected/last`, e.g. 2/4: scored at epoch 2 of the 4 it ran."""
    selected = trial.selected_epoch
    return f"{trial.epochs}" if selected is None else f"{selected}/{trial.epochs}"


def _at(trial: TrialResult) -> str:
    selected = trial.selected_epoch
    return "last epoch" if selected is None else f"epoch {selected} of {trial.epochs}"


def format_reruns(search: SearchResult) -> str:
    """The paired re-runs, when they ran: each recipe's mean over the seeds (the search's and the
    fresh ones), its p-value against the best and whether it is told apart from it."""
    metrics, tags, prefix = search.parent_metrics, search.parent_tags, names.RERUN_PREFIX
    units = metrics.get(f"{prefix}units")
    if units is None:
        return ""
    lines = [
        f"paired re-runs on val: {int(units)} seeds per recipe (the search's and fresh ones), "
        f"mean {search.metric}; p: one-sided paired t-test against the best mean (Holm, 0.05)"
    ]
    i = 0
    while (label := tags.get(f"{prefix}{i}.recipe")) is not None:
        mean = metrics.get(f"{prefix}{i}.mean", math.nan)
        p = metrics.get(f"{prefix}{i}.p_worse")
        worse = metrics.get(f"{prefix}{i}.worse", 0.0) > 0
        verdict_of = "worse" if worse else "best mean" if p is None else "indistinguishable"
        shown = "" if p is None else f"p={p:.3f}"
        lines.append(f"  {mean:.4f}  {shown:>8}  {verdict_of:<17}  {label}")
        i += 1
    return "\n".join(lines)


def format_confirmations(confirmations: list[Confirmation], metric: str) -> str:
    seeds = max((len(c.scores) + c.failed for c in confirmations), default=0)
    lines = [  # the control's own run is one of its seeds unless chosen (results.unchosen_control)
        f"confirmation on the test split: {seeds} seeds per recipe, mean ± 95% CI (new seeds; "
        "the control's own run is one of its seeds unless the search chose it)"
    ]
    lines.append(f"{'rank':>4} {'test ' + metric[:18]:>24} {'seeds':>5}  recipe")
    for c in confirmations:
        mean, half = c.interval(metric)
        shown = f"{mean:.4f} ± {half:.4f}" if math.isfinite(half) else f"{mean:.4f}"
        note = f" ({c.failed} failed)" if c.failed else ""
        lines.append(f"{c.rank:>4} {shown:>24} {len(c.scores):>5}  {c.recipe.label()}{note}")
    return "\n".join(lines)


def _scores(metrics: Mapping[str, float], keys: tuple[str, ...], strip: str = "") -> str:
    return ", ".join(f"{k.removeprefix(strip)}={metrics[k]:.4f}" for k in keys if k in metrics)


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"
