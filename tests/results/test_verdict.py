"""The verdict against the pretrained model, on fixed scores: val, test, confirmations, ties."""

from __future__ import annotations

from typing import Any

from minesearch.recipe import Recipe
from minesearch.results import SearchResult, TrialResult, summary_line, verdict

MAP = "mean_average_precision_at_r"
RECIPE = Recipe("ContrastiveLoss", lr=1e-3)


def trial(trial_id: str, role: Any = "trial", **metrics: float) -> TrialResult:
    return TrialResult(
        f"run-{trial_id}", trial_id, trial_id, role, "finished", {}, metrics, recipe=RECIPE
    )


def search(trials: list[TrialResult], pretrained: dict[str, float]) -> SearchResult:
    return SearchResult("uri", "exp", "0", "p", "search", MAP, "max", trials, pretrained)


def selected(val: float, test: float | None = None, epoch: int = 2) -> dict[str, float]:
    metrics = {f"selected.{MAP}": val, "selected_epoch": float(epoch), MAP: val - 0.05}
    return metrics | ({f"test.{MAP}": test} if test is not None else {})


def test_no_pretrained_reference_no_verdict() -> None:
    assert verdict(search([trial("a", **selected(0.5))], {})) is None


def test_val_only_says_selection_favours_it() -> None:
    found = verdict(search([trial("a", **selected(0.5))], {MAP: 0.4}))
    assert found is not None and found.name == "fine_tuned_better" and found.evidence == "val"
    assert abs(found.margin - 0.1) < 1e-12
    assert "selection favours it" in summary_line(found)


def test_test_split_decides_over_val() -> None:
    result = search(
        [trial("a", **selected(0.5, test=0.25)), trial("c", "control", **selected(0.3, 0.2))],
        {MAP: 0.4, f"test.{MAP}": 0.28},
    )
    found = verdict(result)
    assert found is not None and found.name == "pretrained_better" and found.evidence == "test"
    assert abs(found.margin + 0.03) < 1e-12
    assert "no recipe beat the pretrained model on the test split" in summary_line(found)
    assert found.lines[0] == "val: best 0.5000 vs pretrained 0.4000 (control 0.3000)"
    assert found.lines[1] == "test: best 0.2500 vs pretrained 0.2800 (control 0.2000)"


def test_a_tie_is_not_an_improvement() -> None:
    """The best trial selected at epoch 0 is the pretrained model itself."""
    found = verdict(search([trial("a", **selected(0.4, epoch=0))], {MAP: 0.4}))
    assert found is not None and found.name == "pretrained_better" and found.margin == 0


def test_confirmations_decide_over_a_single_test_score() -> None:
    confirms = [trial(f"c{i}", "confirm", **{f"test.{MAP}": v}) for i, v in enumerate((0.3, 0.32))]
    result = search(
        [trial("a", **selected(0.5, test=0.25)), *confirms], {MAP: 0.4, f"test.{MAP}": 0.28}
    )
    found = verdict(result)
    assert found is not None and found.evidence == "confirmation"
    assert found.name == "fine_tuned_better" and abs(found.margin - 0.03) < 1e-9
    assert found.lines[-1].startswith("test, 2 new seeds: 0.3100 ± ")


def test_mode_min_flips_the_sign() -> None:
    result = SearchResult(
        "u", "e", "0", "p", "s", MAP, "min", [trial("a", **selected(0.2))], {MAP: 0.3}
    )
    found = verdict(result)
    assert found is not None and found.name == "fine_tuned_better" and found.margin > 0
