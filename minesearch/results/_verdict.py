"""Did fine-tuning beat the pretrained model? The one-line answer every search ends with.

Fine-tuning means improving a pretrained model on the user's data, so the pretrained embedding
itself (scored exactly as trials are) is the bar. The verdict is read on the most honest evidence
the search has: the confirmation runs' test mean when `--confirm` ran, else the best trial's test
score, else (no test split) its validation score, which selection has biased upwards and is said
to be so. A tie is not an improvement: a best trial selected at epoch 0 is the pretrained model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from minesearch.config.vocab import TEST_PREFIX
from minesearch.results._confirm import confirmations
from minesearch.results._trials import SearchResult

VerdictName = Literal["fine_tuned_better", "pretrained_better"]
VERDICTS: tuple[VerdictName, ...] = get_args(VerdictName)
FINE_TUNED_BETTER, PRETRAINED_BETTER = VERDICTS
Evidence = Literal["confirmation", "test", "val"]


@dataclass(frozen=True)
class Verdict:
    name: VerdictName
    evidence: Evidence  # which scores decided
    margin: float  # fine-tuned minus pretrained, signed so that > 0 is better (mode min: flipped)
    metric: str
    lines: tuple[str, ...]  # the comparisons, val first


def verdict(search: SearchResult) -> Verdict | None:
    """None when the search has no pretrained reference (a fresh network) or no best trial."""
    best, reference = search.best, search.pretrained
    metric = search.metric
    if best is None or best.score(metric) is None or metric not in reference:
        return None
    sign = 1.0 if search.mode == "max" else -1.0
    val = best.score(metric) or 0.0
    lines = [_line("val", val, reference[metric], search)]
    evidence: Evidence = "val"
    margin = sign * (val - reference[metric])
    test_key = f"{TEST_PREFIX}{metric}"
    if test_key in best.metrics and test_key in reference:
        test = best.metrics[test_key]
        lines.append(_line("test", test, reference[test_key], search))
        margin, evidence = sign * (test - reference[test_key]), "test"
    top = next((c for c in confirmations(search) if c.rank == 1), None)
    if top is not None and test_key in reference:
        mean, half = top.interval(metric)
        if math.isfinite(mean):
            shown = f"{mean:.4f} ± {half:.4f}" if math.isfinite(half) else f"{mean:.4f}"
            lines.append(
                f"test, {len(top.scores)} new seeds: {shown} vs pretrained "
                f"{reference[test_key]:.4f}"
            )
            margin, evidence = sign * (mean - reference[test_key]), "confirmation"
    name = FINE_TUNED_BETTER if margin > 0 else PRETRAINED_BETTER
    return Verdict(name, evidence, margin, metric, tuple(lines))


def _line(split: str, fine_tuned: float, pretrained: float, search: SearchResult) -> str:
    control = search.control
    key = search.metric if split == "val" else f"{TEST_PREFIX}{search.metric}"
    text = f"{split}: best {fine_tuned:.4f} vs pretrained {pretrained:.4f}"
    if control is not None:
        value = control.score(search.metric) if split == "val" else control.metrics.get(key)
        if value is not None:
            text += f" (control {value:.4f})"
    return text


def summary_line(found: Verdict) -> str:
    """The verdict as a person reads it."""
    where = {
        "confirmation": "on the test split, over the confirmation seeds",
        "test": "on the test split",
        "val": "on the validation split (selection favours it: no test split to check)",
    }[found.evidence]
    if found.name == FINE_TUNED_BETTER:
        return f"fine-tuning beat the pretrained model {where}: {found.metric} {found.margin:+.4f}"
    return (
        f"no recipe beat the pretrained model {where} ({found.metric} {found.margin:+.4f}): "
        "keep the pretrained model"
    )
