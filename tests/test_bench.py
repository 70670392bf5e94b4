"""The benchmarks still run against the current code (one epoch each): a bench that rots is only
found when someone needs its numbers. The search replay (`bench/search_efficiency.py`) is checked
against the real things it models: Ray Tune's searcher (minesearch's `RecipeSearch`, driven through
`suggest`/`on_trial_result`/`on_trial_complete` without starting Ray) and Ray's ASHA rungs."""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import BENCH, load_bench

from minesearch.recipe import TrialConfig

DIGITS = BENCH / "tables" / "digits.parquet"
# the from-scratch table with class folds: what the test estimate is replayed on
DIGITS_FOLDS = BENCH / "tables" / "digits_folds.parquet"


def test_telemetry_overhead_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    module = load_bench("telemetry_overhead")
    module.main(epochs=1)
    out = capsys.readouterr().out
    assert "contrastive+batchhard" in out and "%" in out


def test_optimizer_step_bench_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.argv", ["optimizer_step.py", "--threads", "1", "--repeats", "1"])
    load_bench("optimizer_step").main()
    out = capsys.readouterr().out
    assert "fused / default" in out and "22.7 M parameters" in out


def test_side_by_side_bench_runs_each_arm_as_it_says() -> None:
    """Run as a user runs it (its processes are spawned: they import it by its path)."""
    import subprocess
    import sys

    arms = ["--steps", "1", "--arms", "1x1,2x1"]
    done = subprocess.run(
        [sys.executable, str(BENCH / "side_by_side.py"), *arms],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    assert lines[0].startswith("1 x 1 thread(s): ") and "(1.00x the first arm" in lines[0]
    assert lines[1].startswith("2 x 1 thread(s): ") and lines[1].count(" s)") == 1
    assert re.search(r"each process \d+\.\d, \d+\.\d s\)$", lines[1]), lines[1]


def test_evaluation_bench_quick_mode_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """Both arms in their own processes on one small case; their scores must agree."""
    agree = load_bench("evaluation").main(quick=True)
    out = capsys.readouterr().out
    assert "PML AccuracyCalculator" in out and "minesearch (chunked)" in out
    assert re.search(r"ours/PML: time \d+\.\d+, memory \d+\.\d+", out)
    assert agree and "(ok)" in out


def test_mining_bench_quick_mode_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """PML's miner and ours in their own processes; ours uncapped must give PML's triplets."""
    bench = load_bench("mining")
    same = bench.main(bench.QUICK_SIZES, bench.QUICK_TYPES, judge=False)
    out = capsys.readouterr().out
    for arm in ("pml", "ours", "ours-uncapped"):
        assert re.search(rf"B=256 +semihard +{arm} +\d+\.\d+ s", out), arm
    assert re.search(r"ours-uncapped .* time x\d+\.\d+, memory x\d+\.\d+", out)
    assert same and "DIFFER" not in out


def test_trial_overhead_bench_runs_each_arm_as_it_says(capsys: pytest.CaptureFixture[str]) -> None:
    """The arms' spaces and the report, on made-up trials (a real run is minutes of searches)."""
    bench = load_bench("trial_overhead")
    shipped = yaml.safe_load((BENCH.parent / "search_spaces" / "quickstart.yaml").read_text())
    one, two = bench.Arm(1, False), bench.Arm(2, True)
    assert bench.arm_spec(shipped, one) == shipped  # the quickstart is the single-worker arm
    changed = {"workers": 2, "cpus_per_worker": 1}  # today's quickstart: 2 workers of 1 CPU
    assert bench.arm_spec(shipped, two)["train"] == shipped["train"] | changed

    def rows(fixed: float) -> list[dict[str, float]]:
        keys = {k: 0.1 for k in bench.KEYS} | {"epoch_time": 0.5}
        return [keys | {"fixed": fixed + i} for i in range(3)]

    outcomes = [
        bench.Outcome(bench.Arm(1, True), 100.0, rows(10.0), ["a", "b"], [0.5, 0.7], False),
        bench.Outcome(one, 50.0, rows(1.0), ["a", "b"], [0.5, 0.7], True),
        bench.Outcome(two, 120.0, rows(12.0), ["a", "c"], [0.6, 0.55], False),
        bench.Outcome(bench.Arm(2, False), 60.0, rows(6.5), ["a", "b"], [0.52, 0.66], False),
    ]
    bench.report(outcomes)
    out = capsys.readouterr().out
    assert "1 worker(s): 2.0 s (x0.18 of 11.0 s); target <= 2 s, bar 3 s: met" in out
    assert "2 worker(s): 7.5 s (x0.58 of 13.0 s); target <= 6 s, bar 8 s: missed by 1.5 s" in out
    assert "50 s wall vs 120 s the old way with 2 workers (x0.42)" in out
    same = r"the same recipes, scores apart by 0.0300 on average \(max 0.0400\); best 0.6600"
    assert re.search(r"2 workers, new way +" + same, out)
    upto = r"the same recipes up to trial 1, scores apart by 0.1000 on average \(max 0.1000\)"
    assert re.search(r"2 workers, old way +" + upto + "; best 0.6000", out)
    assert re.search(r"1 worker, new way +the same recipes, scores apart by 0.0000", out)


# --- the replay -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replay() -> ModuleType:
    return load_bench("search_efficiency")


@pytest.fixture(scope="module")
def table(replay: ModuleType) -> Any:
    return replay.load_table(DIGITS)


def tune_searcher(replay: ModuleType, strategy: Any, seed: int, table: Any) -> Any:
    """RecipeSearch built as minesearch/search/_tuner.py builds it, on the strategy's sampler."""
    from minesearch.search._recipe_search import RecipeSearch

    space, sampler, _ = strategy.search(seed, table, table.trials)
    return RecipeSearch(
        space=space,
        metric=table.meta["metric"],
        mode="max",
        sampler=sampler,
        epochs=table.epochs,
    )


STRATEGIES = {
    "tpe (shipped)": dict(sampler="tpe"),
    "tpe + asha, decline": dict(
        sampler="tpe", scheduler="asha", grace=1, reduction=2.0, tell_budget=True, decline=True
    ),
    "random, control first": dict(control_first=True),
    "tpe, budget": dict(sampler="tpe", tell_budget=True),
    "random + asha": dict(scheduler="asha", grace=1, reduction=2.0),
    "tpe + asha": dict(sampler="tpe", scheduler="asha", grace=1, reduction=2.0, tell_budget=True),
    "tpe + liar, 4 at once": dict(
        sampler="tpe", concurrent=4, tell_budget=True, tell_concurrent=True
    ),
    "grid": dict(sampler="grid"),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_replay_proposes_what_ray_tunes_searcher_proposes(
    replay: ModuleType, table: Any, name: str
) -> None:
    """Every proposal of a replayed search (ASHA's stops, PRUNED trials, repeats told for free and
    trials running side by side included) is what RecipeSearch proposes when Tune feeds it the
    same results in the same order."""
    strategy = replay.Strategy(name, **STRATEGIES[name])
    control = None
    if strategy.control_first:
        control = replay.control_params(table, replay.control_key(table))
    run = replay.replay(table, strategy, seed=5, cap=2 * table.budget, log=True, control=control)
    search = tune_searcher(replay, strategy, 5, table)
    if control is not None:  # as the search will enqueue its control
        search._ot_study.enqueue_trial(control)
    suggested = 0
    for kind, trial, *rest in run.events:
        if kind == "suggest":
            config = search.suggest(str(trial))
            assert TrialConfig.from_config(config) == TrialConfig.from_config(rest[0]), trial
            suggested += 1
        elif kind == "result":
            search.on_trial_result(str(trial), rest[0])
        else:
            search.on_trial_complete(str(trial), rest[0], error=rest[1])
    assert suggested == run.proposals >= table.trials
    states = {t.state.name for t in search._ot_study.trials}
    if strategy.scheduler == "asha":
        assert "PRUNED" in states  # ASHA stopped some: told as RecipeSearch tells them


def test_repeats_are_free_and_the_grid_tries_each_recipe_once(
    replay: ModuleType, table: Any
) -> None:
    run = replay.replay(table, replay.Strategy("random"), seed=0, cap=4 * table.budget)
    assert run.proposals > run.trials  # random proposals repeat recipes: those cost nothing
    assert run.trial_epochs[-1] == 4 * table.budget == run.trials * table.epochs
    grid = replay.replay(table, replay.Strategy("grid", "grid"), seed=0, cap=240)
    assert grid.proposals == grid.trials == 60  # 60 distinct recipes of the 198


def test_quick_mode_prints_every_strategy(
    replay: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    replay.main([str(DIGITS_FOLDS), "--quick"])
    out = capsys.readouterr().out
    for level in ("budget 1x", "budget 2x", "budget 4x"):
        assert level in out
    chosen = replay.strategies(replay.load_table(DIGITS_FOLDS))
    assert len(chosen) >= 4
    for strategy in chosen:
        assert out.count(f"\n{strategy.name:<34} ") == 3, strategy.name  # a row per budget
    assert "today's default at 1x: median true regret" in out


@pytest.mark.parametrize("path", sorted((BENCH / "tables").glob("*.parquet")), ids=lambda p: p.stem)
def test_every_shipped_table_replays_in_this_checkout(replay: ModuleType, path: Path) -> None:
    """A table records the space it was built with, data path included: one built in another
    worktree must still find its data (shipped under search_spaces/) and its control here."""
    table = replay.load_table(path)
    data = table.meta["spec"]["data"]
    assert data.get("path") is None or Path(data["path"]).is_file()
    assert replay.control_key(table) in table.index


# --- ASHA's rule ------------------------------------------------------------------------------


def test_asha_rungs_as_ray_places_them(replay: ModuleType) -> None:
    assert replay.Asha(1, 4, 2).milestones == [1, 2, 4]
    assert replay.Asha(1, 4, 3).milestones == [1, 3]  # int(log 4 / log 3 + 1) = 2 rungs
    assert replay.Asha(1, 4, 4).milestones == [1, 4]
    assert replay.Asha(2, 4, 2).milestones == [2, 4]
    assert replay.Asha(2, 4, 4).milestones == [2]
    assert replay.Asha(6, 4, 2).milestones == [4]  # grace capped at max_t, as make_scheduler does


def test_asha_stops_below_the_rungs_cutoff_hand_worked(replay: ModuleType) -> None:
    asha = replay.Asha(1, 4, 2)  # rungs at epochs 1, 2, 4; cutoff: the median of the rung
    assert not asha.on_result(0, 0, 0.9)  # epoch 0 is below every rung
    assert not asha.on_result(0, 1, 0.5)  # first at rung 1: nothing to compare with
    assert asha.on_result(1, 1, 0.3)  # median of [0.5] = 0.5 > 0.3
    assert not asha.on_result(2, 1, 0.4)  # median of [0.5, 0.3] = 0.4: not below it
    assert not asha.on_result(0, 2, 0.6)  # first at rung 2
    assert asha.on_result(2, 2, 0.55)  # median of [0.6] = 0.6
    assert not asha.on_result(0, 3, 0.1)  # between rungs: no decision
    assert asha.on_result(0, 4, 0.1)  # max_t: the trial is done
    rf3 = replay.Asha(1, 4, 3)  # cutoff: the 66.7th percentile
    for trial, value in enumerate((0.1, 0.2, 0.4)):
        rf3.on_result(trial, 1, value)
    # [0.1, 0.2, 0.4] at 2/3: index 1.33 -> 0.2 + 0.33 * 0.2 = 0.2667
    assert rf3.on_result(3, 1, 0.26)
    assert not rf3.on_result(4, 1, 0.27)


@pytest.mark.parametrize(("grace", "rf"), [(1, 2.0), (1, 3.0), (2, 2.0), (1, 4.0)])
def test_asha_decides_as_rays_bracket(replay: ModuleType, grace: int, rf: float) -> None:
    from types import SimpleNamespace

    from ray.tune.schedulers.async_hyperband import _Bracket

    ours, rays = replay.Asha(grace, 4, rf), _Bracket(grace, 4, rf, 0)
    rng = np.random.default_rng(0)
    alive = list(range(30))
    for epoch in range(4):
        for trial in list(alive):
            value = float(rng.random())
            stop = rays.on_result(SimpleNamespace(trial_id=trial), epoch, value) == "STOP"
            assert ours.on_result(trial, epoch, value) == stop
            if stop:
                alive.remove(trial)


# --- judging what a search selects ------------------------------------------------------------


def synthetic(table: Any, unit: np.ndarray, test: np.ndarray | None = None) -> Any:
    """`table`'s recipes and space with made-up scores: unit [R, S, K] is each run's score at
    every epoch (flat curves), test the same on test classes; every epoch takes 1 s."""
    Table = load_bench("_table").Table
    r, s, k = unit.shape
    epochs = table.epochs + 1
    scores = np.repeat(unit[..., None], epochs, axis=3)
    tests = None if test is None else np.repeat(test[..., None], epochs, axis=3)
    return Table(
        table.meta,
        table.keys,
        scores,
        tests,
        np.ones((r, s, k, epochs)),
        np.full((r, s, k), -1),
        table.index,
    )


def hand_run(replay: ModuleType, table: Any, scores: dict[int, float]) -> Any:
    """A search that tried these recipes (row: score), each to the end, 10 worker-s apiece."""
    run = replay.Run()
    for n, (row, score) in enumerate(scores.items(), start=1):
        run.worker_s.append(10.0 * n)
        run.trial_epochs.append(n * table.epochs)
        run.key.append(table.keys[row])
        run.score.append(score)
        run.epoch.append(table.epochs)
        run.done.append(True)
    return run


def test_regret_is_the_gap_between_true_means(replay: ModuleType, table: Any) -> None:
    """Noise-free recipes: the search picks the best it tried; the regret is the table's best
    true mean minus that recipe's, and the reported best is the truth (no optimism)."""
    rows = len(table.keys)
    quality = np.linspace(0.3, 0.8, rows)[np.random.default_rng(0).permutation(rows)]
    flat = synthetic(table, np.broadcast_to(quality[:, None, None], (rows, 4, 3)).copy())
    for seed in range(3):
        run = replay.replay(flat, replay.Strategy("random"), seed, cap=table.budget)
        tried = {flat.index[k] for k in run.key}
        got = replay.judge(flat, replay.Strategy("random"), seed, run, math.inf, 11.0, None)
        assert got.chosen == max(tried, key=lambda r: quality[r])
        assert got.regret == pytest.approx(quality.max() - quality[list(tried)].max())
        assert got.best_val_optimism == pytest.approx(0.0, abs=1e-12)
        assert got.cost == pytest.approx(run.worker_s[-1])


def test_the_reported_best_of_equal_recipes_is_optimistic_by_the_max_of_its_draws(
    replay: ModuleType, table: Any
) -> None:
    """Every recipe's true mean is 0.5 (its runs' noise sums to zero): any choice has no regret,
    and the search's best validation score is the max of its draws above 0.5."""
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.05, (len(table.keys), 4, 3))
    noise -= noise.mean(axis=(1, 2), keepdims=True)
    equal = synthetic(table, 0.5 + noise)
    strategy = replay.Strategy("random")
    for seed in range(3):
        run = replay.replay(equal, strategy, seed, cap=table.budget)
        got = replay.judge(equal, strategy, seed, run, math.inf, 11.0, None)
        assert got.regret == pytest.approx(0.0, abs=1e-12)
        assert got.best_val_optimism == pytest.approx(max(run.score) - 0.5)
        assert got.best_val_optimism > 0


def test_k_fold_trials_report_the_mean_over_their_folds(replay: ModuleType, table: Any) -> None:
    unit = np.random.default_rng(2).random((len(table.keys), 4, 3))
    t = synthetic(table, unit)
    t.scores[0, 1, 2, 3] = np.nan  # fold 2 of seed 1 diverged at epoch 3
    t.fail_at[0, 1, 2] = 3
    curve, seconds, fail_at = replay.trial_curve(t, 0, 1, [0, 2])
    assert curve[0] == pytest.approx((unit[0, 1, 0] + unit[0, 1, 2]) / 2)
    assert np.isnan(curve[3]) and fail_at == 3 and np.all(seconds == 2.0)


def test_paired_reruns_choose_the_best_mean_not_the_lucky_winner(
    replay: ModuleType, table: Any
) -> None:
    """Recipe 0 won the search's seed by luck; on the re-run seeds recipe 1 is better on every
    fold: the re-runs choose recipe 1, whose true mean is the best."""
    unit = np.full((len(table.keys), 4, 3), 0.2)
    unit[1] = 0.7
    unit[0] = 0.6
    luck = replay.Luck.draw(synthetic(table, unit), 0)
    unit[0, luck.seeds[0]] = 0.85  # the search's seed, every fold: mean 0.683 over the units
    t = synthetic(table, unit)
    strategy = replay.Strategy("m", folds=2, rerun_top=2, rerun_seeds=2)
    run = hand_run(replay, t, {0: 0.85, 1: 0.7, 2: 0.2})
    plain = replay.judge(t, replay.Strategy("plain", folds=2), 0, run, math.inf, 11.0, None)
    assert plain.chosen == 0 and plain.regret > 0
    got = replay.judge(t, strategy, 0, run, math.inf, 11.0, table.keys[2])
    assert got.chosen == 1 and got.regret == pytest.approx(0.0)
    assert not got.control_chosen
    # re-runs cost: 3 candidates (top 2 and the control) x 2 seeds x (11 s + 2 folds x 5 epochs)
    assert got.cost == pytest.approx(30.0 + 3 * 2 * (11.0 + 2 * table.epochs + 2))


def test_the_test_estimate_covers_as_its_interval_says(replay: ModuleType, table: Any) -> None:
    """Test scores that are independent normal draws around each recipe's level: the estimate
    from 3 fresh runs is unbiased and its interval passes the predictive check about 95% of the
    time; a constant test score is estimated exactly."""
    Table = load_bench("_table").Table
    rows, seeds, folds = len(table.keys), 30, 3
    rng = np.random.default_rng(3)
    test = 0.6 + rng.normal(0, 0.02, (rows, seeds, folds))
    base = synthetic(table, np.full((rows, seeds, folds), 0.5), test)
    hits, optimism = [], []
    for seed in range(1500):
        luck = replay.Luck.draw(base, seed)
        got = replay.test_estimate(base, luck, seed % rows, [(0, 0)], 3, [0], [0])
        optimism.append(got[1])
        hits.append(got[2])
    assert 0.93 <= np.mean(hits) <= 0.97
    assert abs(np.mean(optimism)) < 3 * 0.02 / math.sqrt(3 * 1500)
    constant = Table(
        base.meta,
        base.keys,
        base.scores,
        np.full_like(base.scores, 0.4),
        base.seconds,
        base.fail_at,
        base.index,
    )
    got = replay.test_estimate(constant, replay.Luck.draw(constant, 0), 0, [], 3, [0], [0])
    assert got[0] == pytest.approx(0.4) and got[1] == pytest.approx(0.0) and got[2] == 1.0


def test_the_test_estimate_retrains_to_the_chosen_trials_selected_epoch(
    replay: ModuleType, table: Any
) -> None:
    """The search's test estimate retrains the chosen recipe to the epoch its trial was selected
    at (at least 1): the replay reads each fresh run's test score at its best val epoch up to
    there, and pays for those epochs only. Recipe 0's val rises to the last epoch while its test
    score peaks at epoch 1."""
    rows, epochs = len(table.keys), table.epochs
    t = synthetic(table, np.full((rows, 4, 3), 0.5), np.full((rows, 4, 3), 0.3))
    t.scores[0] = 0.5 + 0.01 * np.arange(epochs + 1)  # val: best at the last epoch
    t.test[0] = 0.3
    t.test[0, :, :, 1] = 0.6
    luck = replay.Luck.draw(t, 0)
    assert t.test is not None and luck.held_fold is None  # test classes
    np.testing.assert_array_equal(t.selected_test(epochs), t.selected_test())
    full = replay.test_estimate(t, luck, 0, [], 3, [0], [0])
    capped = replay.test_estimate(t, luck, 0, [], 3, [0], [0], 1)
    assert full[0] == pytest.approx(0.3) and capped[0] == pytest.approx(0.6)
    assert full[3] == pytest.approx(3 * (epochs + 1)) and capped[3] == pytest.approx(3 * 2)
    # the epoch: the trial's best up to where it got, at least 1
    key = t.keys[0]
    assert replay.retrain_epochs(t, 0, 0, [0], {key: epochs}) == epochs
    assert replay.retrain_epochs(t, 0, 0, [0], {key: 2}) == 2  # stopped at epoch 2
    assert replay.retrain_epochs(t, 0, 0, [0], {}) == epochs  # not in the run: the budget
    t.scores[0] = 0.5 - 0.01 * np.arange(epochs + 1)  # declined from epoch 0
    assert replay.retrain_epochs(t, 0, 0, [0], {key: epochs}) == 1
    # a replayed search records the epochs its trials reached
    run = replay.replay(t, replay.Strategy("s", scheduler="asha", grace=1), 0, cap=t.budget)
    reached = run.reached(math.inf)
    assert set(reached) == set(run.key) and max(reached.values()) == epochs


def test_without_test_classes_a_held_out_fold_scores_at_the_selected_epoch(
    replay: ModuleType, table: Any
) -> None:
    rows = len(table.keys)
    t = synthetic(table, np.full((rows, 4, 3), 0.5))
    t.scores[0, :, :, 2] = 0.7  # recipe 0 peaks at epoch 2 on every run
    luck = replay.Luck.draw(t, 0)
    assert luck.held_fold is not None and luck.held_fold not in luck.folds
    used = [(int(luck.seeds[0]), int(f)) for f in luck.folds]
    mean, optimism, covered, _ = replay.test_estimate(
        t, luck, 0, used, 3, [int(luck.seeds[0])], [int(f) for f in luck.folds]
    )
    assert mean == pytest.approx(0.7) and optimism == pytest.approx(0.0) and covered == 1.0


def test_a_trial_that_declines_from_epoch_0_stops_at_the_first_rung(
    replay: ModuleType, table: Any
) -> None:
    """Every recipe only loses ground after epoch 0: with the decline rule each trial stops at
    the first rung (epoch 1 with grace 1); without it, ASHA's cutoff lets the first run on."""
    rows = len(table.keys)
    t = synthetic(table, np.full((rows, 4, 3), 0.0))
    t.scores[...] = 0.8 - 0.1 * np.arange(table.epochs + 1)  # 0.8, 0.7, ...
    t.scores[...] += np.random.default_rng(4).normal(0, 0.01, (rows, 1, 1, 1))
    declining = replay.Strategy("d", scheduler="asha", grace=1, decline=True)
    run = replay.replay(t, declining, 0, cap=20)
    assert run.trial_epochs[-1] == run.trials == 20  # one trained epoch a trial
    plain = replay.replay(t, replay.Strategy("p", scheduler="asha", grace=1), 0, cap=20)
    assert plain.trials < 20  # the first trial, alone at its rungs, trained on


def test_epochs_cost_their_cpu_seconds_imputed_from_the_same_work() -> None:
    """A run without CPU times (recorded before they were) takes the other seeds' CPU time for
    the same recipe, fold and epoch; with none, its wall time at the table's CPU / wall ratio."""
    cpu_seconds = load_bench("_table").cpu_seconds
    wall = np.full((2, 3, 1, 2), 4.0)
    cpu = np.full_like(wall, np.nan)
    cpu[0, 1:] = [[[1.0, 2.0]], [[1.0, 4.0]]]  # recipe 0: seeds 1 and 2 timed; recipe 1: none
    ran = np.ones(wall.shape, bool)
    ran[1, 2, 0, 1] = False  # diverged before epoch 1: costs nothing
    got = cpu_seconds(cpu, wall, ran)
    np.testing.assert_allclose(got[0, 0, 0], [1.0, 3.0])  # the mean of seeds 1 and 2
    np.testing.assert_allclose(got[0, 1:], cpu[0, 1:])
    ratio = np.median([1 / 4, 2 / 4, 1 / 4, 4 / 4])
    np.testing.assert_allclose(got[1, :2], 4.0 * ratio)
    assert got[1, 2, 0, 1] == 0.0
    np.testing.assert_allclose(cpu_seconds(np.full_like(wall, np.nan), wall, ran)[0], 4.0)


# --- the tables -------------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["digits", "vectors"])
def test_tabular_records_every_recipe_seed_fold_and_epoch(data: str, tmp_path: Path) -> None:
    """One recipe, 2 seeds x 2 class folds, 1 epoch: a row per (seed, fold, epoch), the folds'
    val classes disjoint and covering the non-test classes, test scores where the space has test
    classes (vectors: the shipped text_topics vectors stand in for the package-topics ones)."""
    tabular, tables = load_bench("tabular"), load_bench("_table")
    out = tmp_path / f"{data}.parquet"
    args = ["--data", data, "--seeds", "2", "--folds", "2", "--limit", "1", "--epochs", "1"]
    vectors = BENCH.parent / "search_spaces" / "data" / "text_topics_minilm.parquet"
    tabular.main(
        [*args, "--out", str(out), *(["--vectors", str(vectors)] if data == "vectors" else [])]
    )
    t = tables.load_table(out)
    assert t.scores.shape == (1, 2, 2, 2) and np.all(np.isfinite(t.scores))
    assert np.all(t.seconds > 0)
    folds = t.meta["fold_classes"]
    vals = [set(f["val"]) for f in folds]
    assert not vals[0] & vals[1]
    assert all(set(f["train"]) == vals[1 - i] for i, f in enumerate(folds))
    if data == "vectors":
        assert t.test is not None and np.all(np.isfinite(t.selected_test()))
        assert folds[0]["test"] and not set(folds[0]["test"]) & (vals[0] | vals[1])
    else:
        assert t.test is None and vals[0] | vals[1] == {str(d) for d in range(10)}
    assert not out.with_name(out.name + ".partial.jsonl").exists()


def test_a_regret_against_todays_zero_is_a_difference_not_a_ratio(replay: ModuleType) -> None:
    """Today's median regret of 6e-7 (float noise under the printed 0.0000) once made a strategy
    at 0.0018 read "2897.55x today's"."""
    assert replay.against_today(0.0017, 6e-7) == "today's is 0; +0.0017"
    assert replay.against_today(0.02, 0.04) == "0.50x today's"
    assert replay.against_today(0.0, 0.0) == "today's is 0; +0.0000"
