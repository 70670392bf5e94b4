"""What a finished search says: the best recipe, its scores, the leaderboard, what failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ray.tune import ResultGrid

from minesearch.confirm import Confirmation, format_confirmations
from minesearch.recipe import Recipe

SHOWN = ("mean_average_precision_at_r", "precision_at_1", "r_precision", "recall_at_1")
TEST_SHOWN = tuple(f"test.{k}" for k in SHOWN)


@dataclass(frozen=True)
class TrialOutcome:
    trial_id: str
    recipe: Recipe
    status: str  # "finished" (all epochs), "stopped" (early, by the scheduler), "failed"
    epochs: int  # last epoch reported
    metrics: dict[str, float]  # at the last reported epoch
    baseline: dict[str, float]  # at epoch 0, before training
    error: str | None = None


@dataclass(frozen=True)
class SearchSummary:
    metric: str
    mode: str
    trials: list[TrialOutcome]
    ui_command: str
    control: dict[str, float] | None = None  # the default recipe's last metrics, when it ran
    # test-split scores of the chosen recipes only ("best", "control"): see holdout.py
    test: dict[str, dict[str, float]] = field(default_factory=dict)
    confirmations: list[Confirmation] = field(default_factory=list)  # --confirm K,S

    @property
    def ranked(self) -> list[TrialOutcome]:
        scored = [t for t in self.trials if t.status != "failed" and self.metric in t.metrics]
        return sorted(scored, key=lambda t: t.metrics[self.metric], reverse=self.mode == "max")

    @property
    def best(self) -> TrialOutcome | None:
        ranked = self.ranked
        return ranked[0] if ranked else None

    @property
    def failed(self) -> list[TrialOutcome]:
        return [t for t in self.trials if t.status == "failed"]

    def best_for_mlflow(self) -> dict[str, Any] | None:
        best = self.best
        if best is None:
            return None
        metrics = {f"best.{k}": best.metrics[k] for k in SHOWN if k in best.metrics}
        metrics |= {f"best.epoch0.{k}": best.baseline[k] for k in SHOWN if k in best.baseline}
        control = self.control or {}
        metrics |= {f"control.{k}": control[k] for k in SHOWN if k in control}
        for name, scores in self.test.items():  # e.g. best.test.mean_average_precision_at_r
            metrics |= {f"{name}.{k}": v for k, v in scores.items()}
        for confirmation in self.confirmations:
            metrics |= confirmation.mlflow_metrics(self.metric)
        return {
            "trial_id": best.trial_id,
            "params": best.recipe.mlflow_params(),
            "metrics": metrics,
        }

    def format(self, top: int = 5) -> str:
        lines = [f"{len(self.trials)} trials: {len(self.ranked)} scored, {len(self.failed)} failed"]
        header = f"{'trial':<12} {'epochs':>6} {self.metric[:12]:>12} {'epoch 0':>8}  recipe"
        lines += ["", header]
        for t in self.ranked[:top]:
            lines.append(
                f"{t.trial_id:<12} {t.epochs:>6} {t.metrics[self.metric]:>12.4f} "
                f"{t.baseline.get(self.metric, float('nan')):>8.4f}  {t.recipe.label()}"
            )
        if self.control and self.metric in self.control:
            lines.append(
                f"{'control':<12} {int(self.control.get('epoch', 0)):>6} "
                f"{self.control[self.metric]:>12.4f} {'':>8}  TripletMargin, no miner, PML defaults"
            )
        best = self.best
        if best is not None:
            lines += ["", f"best recipe ({best.trial_id}): {best.recipe.mlflow_params()}"]
            lines.append(
                "best scores: "
                + ", ".join(f"{k}={best.metrics[k]:.4f}" for k in SHOWN if k in best.metrics)
            )
        for name, scores in self.test.items():
            lines.append(
                f"{name} on the test split (scored once, after selection): "
                + ", ".join(f"{k[5:]}={scores[k]:.4f}" for k in TEST_SHOWN if k in scores)
            )
        if self.confirmations:
            lines += ["", format_confirmations(self.confirmations, self.metric)]
        for t in self.failed:
            lines.append(
                f"failed {t.trial_id} ({t.recipe.label()}): {(t.error or '').strip()[-300:]}"
            )
        lines += ["", f"compare the trials in MLflow: {self.ui_command}"]
        return "\n".join(lines)


def summarize(
    results: ResultGrid,
    metric: str,
    mode: str,
    epochs: int,
    ui_command: str,
    control: dict[str, float] | None = None,
) -> SearchSummary:
    started = [results[i] for i in range(len(results)) if results[i].config]
    outcomes = [_outcome(result, epochs) for result in started]
    return SearchSummary(metric, mode, outcomes, ui_command, control)


def _outcome(result: Any, epochs_planned: int) -> TrialOutcome:
    recipe = Recipe.from_dict(result.config["recipe"])
    metrics = dict(result.metrics or {})
    trial_id = str(metrics.get("trial_id", "?"))
    epoch = int(metrics.get("epoch", -1))
    frame = result.metrics_dataframe
    baseline: dict[str, float] = {}
    if frame is not None and "epoch" in frame and (frame["epoch"] == 0).any():
        row = frame[frame["epoch"] == 0].iloc[0]
        baseline = {k: float(row[k]) for k in SHOWN if k in row}
    if result.error is not None:
        return TrialOutcome(trial_id, recipe, "failed", epoch, {}, baseline, str(result.error))
    status = "finished" if epoch >= epochs_planned else "stopped"
    return TrialOutcome(trial_id, recipe, status, epoch, metrics, baseline)
