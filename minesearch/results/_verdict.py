"""What should the user keep? The one-line answer every search ends with.

Three candidates: the search's chosen recipe (its best trial), the control (the practitioner's
recipe for this model, `minesearch.recipe.control_recipe`) and the pretrained model (scored
exactly as trials are; none when the network starts from scratch). A search that cannot beat the
control has no reason to exist, and fine-tuning that cannot beat the pretrained model should not
ship, so the verdict names the best of the three.

It is read on the most honest evidence the search has: the test estimate (recipes retrained with
new seeds and scored on the test classes: their mean) when it ran, else the test split, else (no
test split) validation, which selection favours and is said to do so. A tie is not a win: the
simpler answer is kept (the pretrained model over a recipe, the control over the search's recipe).
On the test estimate a lead within the seed noise is a tie too: a candidate displaces a simpler
one only when its mean leads by more than the half-width of the 95% interval of the difference,
by Welch's t (each recipe's seeds with their own variance; the pretrained model has no seed
noise), i.e. when a two-sided Welch test at 0.05 says the means differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from minesearch.config.vocab import TEST_PREFIX
from minesearch.results._test_estimate import estimate_of, welch_half_width
from minesearch.results._trials import SearchResult, TrialResult

VerdictName = Literal["fine_tuned_better", "control_better", "pretrained_better"]
VERDICTS: tuple[VerdictName, ...] = get_args(VerdictName)
FINE_TUNED_BETTER, CONTROL_BETTER, PRETRAINED_BETTER = VERDICTS
Evidence = Literal["confirmation", "test", "val"]
EVIDENCE: tuple[Evidence, ...] = get_args(Evidence)  # the most honest first
# Who wins a tie: the simpler answer (no training over training, the practitioner's recipe over
# the search's).
PREFERENCE: tuple[VerdictName, ...] = (PRETRAINED_BETTER, CONTROL_BETTER, FINE_TUNED_BETTER)
CANDIDATE = {
    FINE_TUNED_BETTER: "chosen",
    CONTROL_BETTER: "control",
    PRETRAINED_BETTER: "pretrained",
}


@dataclass(frozen=True)
class Verdict:
    name: VerdictName  # which candidate won
    evidence: Evidence  # which scores decided
    # the chosen recipe minus the pretrained model, signed so that > 0 is better (mode min:
    # flipped); nan when there is no pretrained model
    margin: float
    metric: str
    lines: tuple[str, ...]  # the comparisons, val first
    control_margin: float = math.nan  # the chosen recipe minus the control, signed likewise
    # the candidate with the best mean, when its lead over the winner was within the seed noise:
    # (who, its lead, the noise's half-width)
    within_noise: tuple[VerdictName, float, float] | None = None


def verdict(search: SearchResult) -> Verdict | None:
    """None when there is nothing to weigh the best trial against (no pretrained model and no
    control) or no best trial."""
    best, metric = search.best, search.metric
    if best is None or best.score(metric) is None:
        return None
    control = search.control
    if control is not None and control.run_id == best.run_id:
        best, control = None, best  # the search chose the control itself: two candidates
    shown = [(level, _scores(search, level, best, control)) for level in EVIDENCE]
    shown = [(level, s) for level, s in shown if len(s) >= 2]
    if not shown:
        return None
    evidence, scores = shown[0][0], {k: v for k, (v, _) in shown[0][1].items()}
    sign = 1.0 if search.mode == "max" else -1.0
    winner, within_noise = _winner(scores, _seed_scores(search, evidence, best, control), sign)
    chosen = scores.get(FINE_TUNED_BETTER, scores.get(CONTROL_BETTER, math.nan))
    return Verdict(
        name=winner,
        evidence=evidence,
        margin=sign * (chosen - scores.get(PRETRAINED_BETTER, math.nan)),
        metric=metric,
        lines=tuple(_line(level, s) for level, s in reversed(shown)),
        control_margin=sign
        * (scores.get(FINE_TUNED_BETTER, math.nan) - scores.get(CONTROL_BETTER, math.nan)),
        within_noise=within_noise,
    )


def _winner(
    scores: dict[VerdictName, float], seeds: dict[VerdictName, list[float]], sign: float
) -> tuple[VerdictName, tuple[VerdictName, float, float] | None]:
    """The simplest candidate, displaced in turn by each less simple one whose lead over it is
    larger than the noise of the difference; and the best mean's lead when the noise kept it
    from winning."""
    order = [n for n in PREFERENCE if n in scores]
    winner = order[0]
    for name in order[1:]:
        if sign * (scores[name] - scores[winner]) > _noise(seeds, name, winner):
            winner = name
    best = max(order, key=lambda n: (sign * scores[n], -order.index(n)))
    if best == winner:
        return winner, None
    return winner, (best, sign * (scores[best] - scores[winner]), _noise(seeds, best, winner))


def _noise(seeds: dict[VerdictName, list[float]], a: VerdictName, b: VerdictName) -> float:
    """The 95% half-width of a - b (Welch); 0 when neither has seeds to show a spread."""
    return welch_half_width(seeds.get(a, []), seeds.get(b, []))


def _seed_scores(
    search: SearchResult, level: Evidence, best: TrialResult | None, control: TrialResult | None
) -> dict[VerdictName, list[float]]:
    """Each retrained candidate's test scores over its seeds, on the test estimate (none on other
    evidence: one run cannot show its noise)."""
    if level != "confirmation":
        return {}
    found: dict[VerdictName, list[float]] = {}
    for name, trial in ((FINE_TUNED_BETTER, best), (CONTROL_BETTER, control)):
        estimate = estimate_of(search, trial.recipe) if trial and trial.recipe else None
        if estimate is not None and len(values := estimate.values(search.metric)) >= 2:
            found[name] = values
    return found


def _scores(
    search: SearchResult,
    level: Evidence,
    best: TrialResult | None,
    control: TrialResult | None,
) -> dict[VerdictName, tuple[float, str]]:
    """Each candidate's score on the evidence of `level` and how it reads, for those that have
    one."""
    metric, test = search.metric, f"{TEST_PREFIX}{search.metric}"
    found: dict[VerdictName, tuple[float | None, str]] = {}
    for name, trial in ((FINE_TUNED_BETTER, best), (CONTROL_BETTER, control)):
        if trial is None:
            continue
        if level == "val":
            found[name] = (trial.score(metric), "")
        elif level == "test":
            found[name] = (trial.metrics.get(test), "")
        elif trial.recipe is not None and (estimate := estimate_of(search, trial.recipe)):
            mean, half = estimate.interval(metric)
            spread = f" ± {half:.4f}" if math.isfinite(half) else ""
            found[name] = (mean, f"{spread} ({len(estimate.scores)} seeds)")
    pretrained = search.pretrained.get(metric if level == "val" else test)
    if pretrained is not None:
        found[PRETRAINED_BETTER] = (pretrained, "")
    return {k: (v, t) for k, (v, t) in found.items() if v is not None and math.isfinite(v)}


def _line(level: Evidence, scores: dict[VerdictName, tuple[float, str]]) -> str:
    where = {"val": "val", "test": "test", "confirmation": "test, retrained"}[level]
    parts = [f"{CANDIDATE[n]} {scores[n][0]:.4f}{scores[n][1]}" for n in VERDICTS if n in scores]
    return f"{where}: {' · '.join(parts)}"


def summary_line(found: Verdict) -> str:
    """The verdict as a person reads it."""
    where = {
        "confirmation": "on the test split, over new seeds",
        "test": "on the test split",
        "val": "on the validation split (selection favours it: no test split to check)",
    }[found.evidence]
    noise = ""
    if found.within_noise is not None:
        who, lead, half = found.within_noise
        noise = (
            f" ({CANDIDATE[who]} led by {lead:+.4f}, within the seed noise ±{half:.4f}: "
            "a tie keeps the simpler answer)"
        )
    return _summary(found, where) + noise


def _summary(found: Verdict, where: str) -> str:
    if found.name == FINE_TUNED_BETTER:
        margins = (("the control", found.control_margin), ("the pretrained model", found.margin))
        parts = [f"{what} by {m:+.4f}" for what, m in margins if math.isfinite(m)]
        return f"the search's recipe beat {' and '.join(parts)} {where} ({found.metric}): use it"
    if found.name == CONTROL_BETTER:
        return (
            f"the control (the practitioner's recipe) did best {where} ({found.metric}): "
            "no searched recipe beat it; use the control"
        )
    return (
        f"no recipe beat the pretrained model {where} ({found.metric} {found.margin:+.4f}): "
        "keep the pretrained model"
    )
