"""The verdict among the chosen recipe, the control and the pretrained model, on fixed scores:
val, test, the retrained test estimate, ties, and the control winning."""

from __future__ import annotations

from typing import Any

from minesearch.recipe import Recipe
from minesearch.results import SearchResult, TrialResult, summary_line, verdict

MAP = "mean_average_precision_at_r"
RECIPE = Recipe("ContrastiveLoss", lr=1e-3)


def trial(
    trial_id: str, role: Any = "trial", recipe: Recipe = RECIPE, **metrics: float
) -> TrialResult:
    return TrialResult(
        f"run-{trial_id}", trial_id, trial_id, role, "finished", {}, metrics, recipe=recipe
    )


def search(trials: list[TrialResult], pretrained: dict[str, float]) -> SearchResult:
    return SearchResult("uri", "exp", "0", "p", "search", MAP, "max", trials, pretrained)


def selected(val: float, test: float | None = None, epoch: int = 2) -> dict[str, float]:
    metrics = {f"selected.{MAP}": val, "selected_epoch": float(epoch), MAP: val - 0.05}
    return metrics | ({f"test.{MAP}": test} if test is not None else {})


def test_nothing_to_weigh_against_no_verdict() -> None:
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
    assert found.lines[0] == "val: chosen 0.5000 · control 0.3000 · pretrained 0.4000"
    assert found.lines[1] == "test: chosen 0.2500 · control 0.2000 · pretrained 0.2800"


def test_a_tie_is_not_an_improvement() -> None:
    """The best trial selected at epoch 0 is the pretrained model itself."""
    found = verdict(search([trial("a", **selected(0.4, epoch=0))], {MAP: 0.4}))
    assert found is not None and found.name == "pretrained_better" and found.margin == 0


def test_confirmations_decide_over_a_single_test_score() -> None:
    scores = (0.308, 0.31, 0.312)  # a lead of 0.03 over the pretrained model, noise ±0.005
    confirms = [trial(f"c{i}", "confirm", **{f"test.{MAP}": v}) for i, v in enumerate(scores)]
    result = search(
        [trial("a", **selected(0.5, test=0.25)), *confirms], {MAP: 0.4, f"test.{MAP}": 0.28}
    )
    found = verdict(result)
    assert found is not None and found.evidence == "confirmation"
    assert found.name == "fine_tuned_better" and abs(found.margin - 0.03) < 1e-9
    assert found.lines[-1].startswith("test, retrained: chosen 0.3100 ± 0.0050")
    assert found.lines[-1].endswith("(3 seeds) · pretrained 0.2800")
    assert found.within_noise is None


def test_a_lead_within_the_seed_noise_keeps_the_simpler_answer() -> None:
    """The same mean lead of 0.03 with seeds spread over ±0.127 (2 seeds, t = 12.7): a tie, so
    the pretrained model is kept, and the summary says why."""
    confirms = [trial(f"c{i}", "confirm", **{f"test.{MAP}": v}) for i, v in enumerate((0.3, 0.32))]
    result = search(
        [trial("a", **selected(0.5, test=0.35)), *confirms], {MAP: 0.4, f"test.{MAP}": 0.28}
    )
    found = verdict(result)
    assert found is not None and found.evidence == "confirmation"
    assert found.name == "pretrained_better"
    assert found.within_noise is not None
    who, lead, half = found.within_noise
    assert who == "fine_tuned_better" and abs(lead - 0.03) < 1e-9 and 0.12 < half < 0.13
    line = summary_line(found)
    assert line.startswith("no recipe beat the pretrained model on the test split, over new seeds")
    assert "(chosen led by +0.0300, within the seed noise ±0.1271" in line


def test_a_lead_beyond_welchs_interval_wins_over_the_control() -> None:
    """Issue 19's split 1, in round numbers: the chosen recipe retrained on 2 seeds leads the
    control's 2 seeds by 0.022, each recipe's seeds 0.006 apart. Welch's interval of the
    difference (df ~2, t 4.3) is +-0.018: the chosen recipe wins. Each mean's own interval
    (t at 1 df, 12.7), combined, would have been +-0.054 and called it a tie."""
    estimates = [
        trial(f"e{i}", "confirm", recipe, **{f"test.{MAP}": v})
        for i, (recipe, v) in enumerate(
            [(RECIPE, 0.438), (RECIPE, 0.444), (CONTROL, 0.416), (CONTROL, 0.422)]
        )
    ]
    result = search(
        [
            trial("a", **selected(0.43, test=0.44)),
            trial("c", "control", CONTROL, **selected(0.42, 0.42)),
            *estimates,
        ],
        {MAP: 0.38, f"test.{MAP}": 0.37},
    )
    found = verdict(result)
    assert found is not None and found.evidence == "confirmation"
    assert found.name == "fine_tuned_better" and found.within_noise is None
    assert abs(found.control_margin - 0.022) < 1e-9


def test_mode_min_flips_the_sign() -> None:
    result = SearchResult(
        "u", "e", "0", "p", "s", MAP, "min", [trial("a", **selected(0.2))], {MAP: 0.3}
    )
    found = verdict(result)
    assert found is not None and found.name == "fine_tuned_better" and found.margin > 0


CONTROL = Recipe("NTXentLoss", lr=2e-5, head="none")


def test_the_control_wins_and_is_named() -> None:
    """The control beats the chosen recipe and the pretrained model on test: the search says
    so (and its model is the one kept: minesearch.export)."""
    result = search(
        [
            trial("a", **selected(0.5, test=0.30)),
            trial("c", "control", CONTROL, **selected(0.45, 0.33)),
        ],
        {MAP: 0.4, f"test.{MAP}": 0.28},
    )
    found = verdict(result)
    assert found is not None and found.name == "control_better" and found.evidence == "test"
    assert abs(found.control_margin + 0.03) < 1e-12 and abs(found.margin - 0.02) < 1e-12
    assert "the control (the practitioner's recipe) did best on the test split" in summary_line(
        found
    )


def test_the_control_proposed_inside_the_search_and_chosen() -> None:
    """The control trained as the search's first trial, and it is the best trial: two
    candidates, and the answer is the control."""
    inside = TrialResult(
        "run-c", "c", "c", "trial", "finished", {}, selected(0.6, 0.35), CONTROL, is_control=True
    )
    result = search([inside, trial("a", **selected(0.5, test=0.4))], {MAP: 0.4, f"test.{MAP}": 0.3})
    assert result.control is inside and result.best is inside
    found = verdict(result)
    assert found is not None and found.name == "control_better"
    assert found.lines[-1] == "test: control 0.3500 · pretrained 0.3000"


def test_a_tie_with_the_control_keeps_the_control() -> None:
    result = search(
        [
            trial("a", **selected(0.5, test=0.3)),
            trial("c", "control", CONTROL, **selected(0.4, 0.3)),
        ],
        {},
    )
    found = verdict(result)
    assert found is not None and found.name == "control_better" and found.control_margin == 0
    assert found.lines[-1] == "test: chosen 0.3000 · control 0.3000"


def test_retrained_estimates_of_both_decide() -> None:
    """The chosen recipe and the control retrained on the same new seeds: their means decide."""
    estimates = [
        trial(f"e{i}", "confirm", recipe, **{f"test.{MAP}": v})
        for i, (recipe, v) in enumerate(
            [(RECIPE, 0.319), (RECIPE, 0.321), (CONTROL, 0.30), (CONTROL, 0.30)]
        )
    ]
    result = search(
        [
            trial("a", **selected(0.5, test=0.25)),
            trial("c", "control", CONTROL, **selected(0.45, 0.4)),
            *estimates,
        ],
        {MAP: 0.4, f"test.{MAP}": 0.28},
    )
    found = verdict(result)
    assert found is not None and found.evidence == "confirmation"
    assert found.name == "fine_tuned_better" and abs(found.control_margin - 0.02) < 1e-9
    assert "beat the control by +0.0200 and the pretrained model by +0.0400" in summary_line(found)
