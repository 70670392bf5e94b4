"""Driver-side helpers of search.py that need no Ray: device, concurrency, storage."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from minesearch.config import parse_spec
from minesearch.search import ClusterTooSmall, concurrency, resolve_storage, with_device
from minesearch.search._test_estimate_runs import Retrain, balanced_in, side_by_side


def spec_with(**train: object):  # type: ignore[no-untyped-def]
    return parse_spec({"name": "x", "train": train, "search": {"concurrent": 4}})


def test_use_gpu_auto_follows_the_cluster() -> None:
    spec = spec_with(use_gpu="auto")
    assert with_device(spec, {"CPU": 8, "GPU": 2}).train.use_gpu is True
    assert with_device(spec, {"CPU": 8}).train.use_gpu is False
    assert with_device(spec_with(use_gpu=False), {"GPU": 2}).train.use_gpu is False


def test_concurrency_is_capped_by_what_fits() -> None:
    assert concurrency(spec_with(workers=2), {"CPU": 2.0}, local=True) == 1
    assert concurrency(spec_with(workers=1), {"CPU": 8.0}, local=True) == 4
    assert concurrency(spec_with(workers=2, use_gpu=True), {"CPU": 8, "GPU": 4}, local=False) == 2
    # An autoscaling cluster may have no GPU yet: the file's value stands.
    assert concurrency(spec_with(workers=2, use_gpu=True), {"CPU": 8}, local=False) == 4


def test_a_trial_larger_than_this_machine_is_an_error() -> None:
    with pytest.raises(ClusterTooSmall, match=r"train.workers: one trial needs 3 CPU"):
        concurrency(spec_with(workers=3, batch={"classes": 6}), {"CPU": 2.0}, local=True)


def test_storage_uris_are_kept_local_paths_made_absolute() -> None:
    assert resolve_storage("s3://bucket/runs") == "s3://bucket/runs"
    assert resolve_storage("runs").startswith("/")


def test_train_storage_keeps_uris() -> None:
    from minesearch.search import train_storage

    assert train_storage("s3://bucket/runs") == "s3://bucket/runs/train"
    assert train_storage("/data/runs") == "/data/runs/train"


def test_a_search_costs_the_sum_of_its_runs() -> None:
    """The parent's cost.* sum every child run's last value, failed ones too; a search whose runs
    report none (older runs) gets no cost metric rather than a zero."""
    from minesearch.results import SearchResult, TrialResult
    from minesearch.search._steps import cost_totals

    def run(trial_id: str, status: str, metrics: dict[str, float]) -> TrialResult:
        return TrialResult("r" + trial_id, trial_id, trial_id, "trial", status, {}, metrics)  # type: ignore[arg-type]

    def search(trials: list[TrialResult]) -> SearchResult:
        return SearchResult("u", "e", "0", "p", "s", "m", "max", trials)

    trials = [
        run("a", "finished", {"cost.worker_seconds": 10.0, "cost.gpu_seconds": 10.0}),
        run("b", "failed", {"cost.worker_seconds": 2.5}),
        run("c", "finished", {}),
    ]
    assert cost_totals(search(trials)) == {"cost.worker_seconds": 12.5, "cost.gpu_seconds": 10.0}
    assert cost_totals(search([trials[2]])) == {}


def test_the_test_estimate_retrains_each_recipe_to_its_selected_epoch() -> None:
    """The chosen recipe and the control, each for as many epochs as its trial was selected at
    (epoch 0, the start, still trains 1; no selection recorded: the space's budget); the
    control once when it is the chosen recipe; the next recipes with --confirm K."""
    from minesearch.recipe import Recipe
    from minesearch.results import SearchResult, TrialResult
    from minesearch.search._steps import estimated_recipes

    def run(name: str, score: float, epoch: float | None, control: bool = False) -> TrialResult:
        recipe = Recipe("ContrastiveLoss", lr=float(len(name)) * 1e-3)
        metrics = {"m": score} | ({} if epoch is None else {"selected_epoch": epoch})
        return TrialResult(
            "r" + name, name, name, "trial", "finished", {}, metrics, recipe, is_control=control
        )

    best, second, control = run("a", 0.9, 1), run("bb", 0.8, 0), run("ccc", 0.7, 3, True)
    result = SearchResult("u", "e", "0", "p", "s", "m", "max", [control, second, best])
    assert result.best == best and result.control == control
    assert estimated_recipes(result, 1, 2) == [
        Retrain(best.recipe, 1, 2),
        Retrain(control.recipe, 3, 2),
    ]
    assert estimated_recipes(result, 2, 3) == [
        Retrain(best.recipe, 1, 3),
        Retrain(second.recipe, 1, 3),
        Retrain(control.recipe, 3, 3),
    ]
    unselected = run("a", 0.9, None, True)
    alone = SearchResult("u", "e", "0", "p", "s", "m", "max", [unselected])
    assert estimated_recipes(alone, 1, 2) == [Retrain(unselected.recipe, None, 2)]


def test_the_control_not_chosen_needs_one_new_seed_fewer() -> None:
    """The control's own run is one of its seeds when the search did not choose it and it has a
    checkpoint to score; chosen, it is retrained on all S new seeds like any chosen recipe; with
    S = 1 its own run is its estimate and nothing of it is retrained."""
    from minesearch.recipe import Recipe
    from minesearch.results import SearchResult, TrialResult
    from minesearch.search._steps import estimated_recipes

    def run(
        name: str, score: float, control: bool = False, checkpoint: str | None = "ck"
    ) -> TrialResult:
        recipe = Recipe("ContrastiveLoss", lr=float(len(name)) * 1e-3)
        metrics = {"m": score, "selected_epoch": 2.0}
        return TrialResult(
            "r" + name,
            name,
            name,
            "trial",
            "finished",
            {},
            metrics,
            recipe,
            checkpoint=checkpoint,
            is_control=control,
        )

    def searched(*trials: TrialResult) -> SearchResult:
        return SearchResult("u", "e", "0", "p", "s", "m", "max", list(trials))

    best, control = run("a", 0.9), run("ccc", 0.7, True)
    assert estimated_recipes(searched(control, best), 1, 2) == [
        Retrain(best.recipe, 2, 2),
        Retrain(control.recipe, 2, 1),
    ]
    assert estimated_recipes(searched(control, best), 1, 1) == [Retrain(best.recipe, 2, 1)]
    chosen = run("ccc", 0.95, True)
    assert estimated_recipes(searched(chosen, best), 1, 2) == [Retrain(chosen.recipe, 2, 2)]
    unscorable = run("ccc", 0.7, True, checkpoint=None)
    assert estimated_recipes(searched(unscorable, best), 1, 2) == [
        Retrain(best.recipe, 2, 2),
        Retrain(unscorable.recipe, 2, 2),
    ]


def test_the_longest_retrains_start_first_on_shared_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs side by side: the control's 2 epochs start beside the chosen recipe's first 1-epoch
    seed, not alone after both; each recipe's seeds are train.seed + 1000 + i."""
    from minesearch.recipe import Recipe, TrialConfig
    from minesearch.search import _test_estimate_runs
    from minesearch.search._trial import TrialSetup

    started: list[TrialConfig] = []
    monkeypatch.setattr(
        _test_estimate_runs,
        "run_fixed",
        lambda setup, name, trials, callback, at_once, view: started.extend(trials),
    )
    monkeypatch.setattr(_test_estimate_runs, "MlflowTrialCallback", lambda *a, **k: None)
    spec = parse_spec({"name": "x", "train": {"epochs": 3, "seed": 7}})
    chosen, control = Recipe("ContrastiveLoss", lr=1e-3), Recipe("NTXentLoss", lr=2e-5)
    retrains = [Retrain(chosen, 1, 2), Retrain(control, 2, 1), Retrain(chosen, None, 1)]
    _test_estimate_runs.run_confirm(TrialSetup(spec, "/tmp/x"), "s", "u", "p", {}, retrains, 2)
    assert [(t.recipe, t.epochs, t.seed) for t in started] == [
        (chosen, None, 1007),  # the space's budget, 3
        (control, 2, 1007),
        (chosen, 1, 1007),
        (chosen, 1, 1008),
    ]


def test_slots_taking_the_longest_run_first_are_balanced_or_not() -> None:
    assert balanced_in([2, 1, 1], 2) and balanced_in([1, 1], 2) and balanced_in([1, 2, 3], 2)
    assert not balanced_in([2, 2, 2], 2) and not balanced_in([1, 1, 1], 2)
    assert not balanced_in([3, 1], 2) and not balanced_in([2], 2) and not balanced_in([], 2)
    assert balanced_in([2, 2, 2], 3) and balanced_in([1, 1, 1], 3) and balanced_in([3, 2, 1], 2)
    assert not balanced_in([2, 1, 1], 3) and not balanced_in([1, 1], 3)  # a slot left empty
    assert not balanced_in([2, 2], 1)  # one slot is one at a time


def test_the_test_estimate_goes_side_by_side_only_where_a_run_takes_the_machine() -> None:
    """A share of the CPUs each, k at a time (the fewest that end together, whole threads or one
    thread each for one run more than the CPUs): one-worker CPU runs that each take more than
    half the cluster; otherwise None (as the search runs)."""
    train = parse_spec({"name": "x", "train": {"cpus_per_worker": 2}}).train

    def on(cpus: float) -> Callable[[], float]:
        return lambda: cpus

    assert side_by_side(train, [2, 1, 1], 1, on(2)) == (1.0, 2)
    assert side_by_side(train, [2, 1, 1], 1, on(3)) == (1.0, 2)
    assert side_by_side(train, [2, 1, 1], 1, on(4)) is None  # two runs fit side by side already
    assert side_by_side(train, [2, 1, 1], 2, on(2)) is None  # the space runs two at once
    # three equal runs: all at once on a third each (2 then 1 would leave the last alone)
    assert side_by_side(train, [2, 2, 2], 1, on(2)) == (0.6666, 3)
    assert 3 * 0.6666 <= 2
    assert side_by_side(train, [2, 2, 2, 2], 1, on(2)) == (1.0, 2)
    assert side_by_side(train, [2, 2, 2, 2, 2], 1, on(2)) is None  # no k up to 3 balances
    assert side_by_side(train, [2, 1], 1, on(2)) is None
    four = train.model_copy(update={"cpus_per_worker": 4.0})
    assert side_by_side(four, [1, 1, 1, 1], 1, on(4)) == (2.0, 2)  # the fewest that balance
    assert side_by_side(four, [1, 1, 1], 1, on(4)) is None  # 3 would leave a core idle
    assert side_by_side(four, [1, 1, 1, 1, 1], 1, on(4)) == (0.8, 5)
    for other in ({"cpus_per_worker": 1}, {"cpus_per_worker": 3}, {"workers": 2}):
        raw = {"name": "x", "train": {"cpus_per_worker": 2, **other}}
        assert side_by_side(parse_spec(raw).train, [1, 1], 1, on(2)) is None, other
    assert side_by_side(train.model_copy(update={"cpus_per_worker": 2.5}), [1, 1], 1, on(2)) is None
    gpu = train.model_copy(update={"use_gpu": True})
    assert side_by_side(gpu, [1, 1], 1, on(2)) is None


def test_balanced_retrains_run_side_by_side_on_a_share_of_the_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from minesearch.recipe import Recipe
    from minesearch.search import _test_estimate_runs
    from minesearch.search._trial import TrialSetup

    ran: list[tuple[float, int]] = []
    monkeypatch.setattr(
        _test_estimate_runs,
        "run_fixed",
        lambda setup, name, trials, callback, at_once, view: ran.append(
            (setup.spec.train.cpus_per_worker, at_once)
        ),
    )
    monkeypatch.setattr(_test_estimate_runs, "MlflowTrialCallback", lambda *a, **k: None)
    monkeypatch.setattr(_test_estimate_runs, "cluster_cpus", lambda: 2.0)
    spec = parse_spec({"name": "x", "train": {"epochs": 2, "cpus_per_worker": 2}})
    chosen, control = Recipe("ContrastiveLoss", lr=1e-3), Recipe("NTXentLoss", lr=2e-5)
    setup = TrialSetup(spec, "/tmp/x")
    _test_estimate_runs.run_confirm(
        setup, "s", "u", "p", {}, [Retrain(chosen, 1, 2), Retrain(control, 2, 1)], 1
    )
    _test_estimate_runs.run_confirm(
        setup, "s", "u", "p", {}, [Retrain(chosen, 2, 2), Retrain(control, 2, 1)], 1
    )
    _test_estimate_runs.run_confirm(
        setup, "s", "u", "p", {}, [Retrain(chosen, 2, 2), Retrain(control, 1, 1)], 1
    )
    assert ran == [(1.0, 2), (0.6666, 3), (2.0, 1)]
