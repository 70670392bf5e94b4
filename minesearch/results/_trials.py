"""One trial's result and the ranking of a search's trials: the model both the end of a search and
`minesearch report` read, built from MLflow by `minesearch.tracking.read_search`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from minesearch.config.vocab import SELECTED_EPOCH, SELECTED_PREFIX, Metric, Mode
from minesearch.recipe import Recipe

# How a trial ended: finished (every epoch), pruned (stopped early by the scheduler), failed
# (raised, or its loss diverged), killed (an interrupted search), running (a search in progress).
Status = Literal["finished", "pruned", "failed", "killed", "running"]
STATUSES: tuple[Status, ...] = get_args(Status)
# Why a child run exists: proposed by the search's sampler, the control trained beside it, a top
# recipe or the control re-trained with a fresh seed on val (paired re-runs: `rerun`), or
# re-trained with a new seed and scored on test (the test estimate, `--confirm`: `confirm`).
Role = Literal["trial", "control", "rerun", "confirm"]
ROLES: tuple[Role, ...] = get_args(Role)
# The scores a summary shows of a trial (and the parent run records for the best one).
SHOWN: tuple[Metric, ...] = (
    "mean_average_precision_at_r",
    "precision_at_1",
    "r_precision",
    "recall_at_1",
)


@dataclass(frozen=True)
class TrialResult:
    """One child run of a search as it was recorded (params are strings, as MLflow keeps them)."""

    run_id: str
    trial_id: str
    label: str  # the run name: the recipe label and the trial id
    role: Role
    status: Status
    params: Mapping[str, str]
    metrics: Mapping[str, float]  # the last value of each metric (test.* included)
    recipe: Recipe | None = None  # the exact recipe, when the run recorded it
    error: str | None = None  # why it failed
    checkpoint: str | None = None  # its last checkpoint, in the search's storage
    epochs: int = 0  # the last epoch it reported
    is_control: bool = False  # the control recipe, proposed first inside the search
    # the margin it trained with: the miner's when it has one (it chose the tuples), else the loss's
    margin: float | None = None

    def score(self, metric: str) -> float | None:
        """The trial's score: its selected epoch's (`selected.<metric>`), else the last logged."""
        value = self.metrics.get(f"{SELECTED_PREFIX}{metric}", self.metrics.get(metric))
        return value if value is not None and math.isfinite(value) else None

    @property
    def selected_epoch(self) -> int | None:
        value = self.metrics.get(SELECTED_EPOCH)
        return None if value is None else int(value)


def rank(trials: Sequence[TrialResult], metric: str, mode: Mode) -> list[TrialResult]:
    """Every trial with a score except failed ones, best first (pruned ones keep their partial
    score); ties are broken by label, so a ranking never depends on the order runs were read."""
    scored = [t for t in trials if t.status != "failed" and t.score(metric) is not None]
    sign = -1.0 if mode == "max" else 1.0
    return sorted(scored, key=lambda t: (sign * (t.score(metric) or 0.0), t.label))


def recipe_key(recipe: Recipe) -> str:
    """Equal recipes, equal keys: what makes two trials "the same recipe"."""
    return json.dumps(recipe.to_dict(), sort_keys=True, default=str)


def top_recipes(ranked: Sequence[Recipe], k: int) -> list[Recipe]:
    """The first k distinct recipes of a leaderboard (a sampler may propose one twice)."""
    seen: dict[str, Recipe] = {}
    for recipe in ranked:
        seen.setdefault(recipe_key(recipe), recipe)
        if len(seen) == k:
            break
    return list(seen.values())


@dataclass(frozen=True)
class SearchResult:
    """A search read back: its parent run, its metric, every child run and the parent's metrics."""

    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    parent_name: str
    metric: str
    mode: Mode
    trials: list[TrialResult]  # every child run: trials, the control, confirmations
    # the pretrained model's own scores (val: <metric>, test: test.<metric>); empty for a fresh
    # network, which has no pretrained reference
    pretrained: Mapping[str, float] = field(default_factory=dict)
    parent_metrics: Mapping[str, float] = field(default_factory=dict)
    parent_tags: Mapping[str, str] = field(default_factory=dict)
    # the trial the paired re-runs chose (the best mean over seeds), when they ran
    chosen_trial_id: str | None = None

    def of_role(self, role: Role) -> list[TrialResult]:
        return [t for t in self.trials if t.role == role]

    @property
    def searched(self) -> list[TrialResult]:
        """The trials the sampler proposed (no control, no confirmation)."""
        return self.of_role("trial")

    @property
    def ranked(self) -> list[TrialResult]:
        """The searched trials with a score, best first."""
        return rank(self.searched, self.metric, self.mode)

    @property
    def best(self) -> TrialResult | None:
        """The search's answer: the re-runs' choice when they ran, else the top of the ranking."""
        if self.chosen_trial_id is not None:
            candidates = [*self.searched, *self.of_role("control")]
            found = [t for t in candidates if t.trial_id == self.chosen_trial_id]
            if found:
                return found[0]
        ranked = self.ranked
        return ranked[0] if ranked else None

    @property
    def control(self) -> TrialResult | None:
        """The control: its own run beside the search, else the searched trial that trained the
        control recipe (proposed first when the space holds it)."""
        beside = self.of_role("control")
        return next(iter(beside or [t for t in self.searched if t.is_control]), None)

    def count(self, status: Status) -> int:
        return sum(1 for t in self.searched if t.status == status)
