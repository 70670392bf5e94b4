"""The benchmarks still run against the current code (one epoch each): a bench that rots is only
found when someone needs its numbers. The search replay (`bench/search_efficiency.py`) is checked
against the real things it models: Ray Tune's searcher (minesearch's `RecipeSearch`, driven through
`suggest`/`on_trial_result`/`on_trial_complete` without starting Ray) and Ray's ASHA rungs."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml

from minesearch.recipe import TrialConfig

BENCH = Path(__file__).resolve().parents[1] / "bench"
DIGITS = BENCH / "tables" / "digits.parquet"


def load_bench(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    if str(BENCH) not in sys.path:  # the benches import their shared helpers (bench/_arms.py)
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_telemetry_overhead_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    module = load_bench("telemetry_overhead")
    module.main(epochs=1)
    out = capsys.readouterr().out
    assert "contrastive+batchhard" in out and "%" in out


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
    from minesearch.search._searcher import RecipeSearch

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
    run = replay.replay(table, strategy, seed=5, cap=2 * table.budget, log=True)
    search = tune_searcher(replay, strategy, 5, table)
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
    replay.main([str(DIGITS), "--quick"])
    out = capsys.readouterr().out
    for level in ("budget 1B", "budget 4B"):
        assert level in out
    for strategy in replay.strategies(replay.load_table(DIGITS)):
        assert out.count(f"\n{strategy.name:<24} ") == 2, strategy.name  # a row per budget


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
