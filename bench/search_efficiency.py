"""How much compute does each search strategy need to find a good recipe? Searches replayed against
a tabular benchmark (`bench/tabular.py`) with the real samplers and the scheduler's real rule.

Run:
    python bench/search_efficiency.py bench/tables/digits.parquet            # 50 seeds, 2 CPUs
    python bench/search_efficiency.py bench/tables/vectors_pilot.parquet
    python bench/search_efficiency.py bench/tables/digits.parquet --sweep    # the defaults' choice
    python bench/search_efficiency.py bench/tables/digits.parquet --quick    # CI: < 1 minute

A replay is one search: Optuna's sampler, made by `minesearch.space.make_search` over the space as
searched (`build_space` of the shipped space's params), is asked and told exactly as Ray's
OptunaSearch (minesearch's `RecipeSearch`) asks and tells it, trial results included, so the
proposals are those a real search would make (`tests/test_bench.py` checks this against
`RecipeSearch` itself). A proposal's ranges snap to the nearest grid value (in log space for a log
range) and its recipe's curve is read from the table, from one of its training seeds picked at
random (per replay seed and recipe, so strategies replayed with the same seed meet the same luck).
`concurrent` workers are simulated event by event: a trial reports epoch 0 after a fixed
per-trial cost (setup: `--fixed-s`, default 11 s, as measured for a Ray Train trial) plus its
evaluation, then each epoch after its training and evaluation times from the table; a free worker
asks for the next trial at once. The scheduler is FIFO or ASHA with Ray's own rungs and cutoffs
(`Asha` copies `ray.tune.schedulers.async_hyperband._Bracket`, one bracket, stop_last_trials).

A trial's score is its best validation epoch so far (epoch 0 included): it is what the trial
reports, what ASHA compares at a rung and what the search selects. A proposal that repeats a recipe
already tried costs nothing: Optuna is told the earlier trial's outcome (its intermediate values
and its final state); if that trial is still running, the repeat is told when it ends. A search
stops at its trial-epoch cap, or once `MAX_REPEATS` proposals in a row were repeats (the sampler has
converged), or when the grid is done.

Printed per strategy and budget level (B = the shipped space's trials x epochs, and 4B): the median
[quartiles] over seeds of the best validation score reached within the budget, the trial-epochs
(and worker time) each seed needed to reach random search's median best at that budget (median
over seeds, and as a multiple of the budget), the share of seeds that reached it, and the
selected recipe's mean best-epoch score over the table's seeds (the same recipe without the luck
of the seed it was drawn with). A PNG shows the curves (median and quartiles).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's minesearch

from minesearch.config import ParamValue, Range, SchedulerSpec, parse_spec
from minesearch.recipe import Recipe, TrialConfig
from minesearch.space import build_space, make_search, tpe_sampler

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
META_KEY = b"minesearch.table"
FIXED_S = 11.0  # per-trial cost beside its epochs (Ray Train worker group, data, model)
MAX_REPEATS = 200  # proposals in a row that repeat a known recipe: the search has converged
MAX_PROPOSALS = 4000


# --- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A tabular benchmark: every recipe's curves, by training seed."""

    meta: dict[str, Any]
    keys: list[str]  # recipe keys (JSON of Recipe.to_dict(), sorted keys)
    scores: np.ndarray  # [R, S, E+1] the selection metric per epoch; NaN once diverged
    seconds: np.ndarray  # [R, S, E+1] each epoch's train + eval time (epoch 0: eval)
    fail_at: np.ndarray  # [R, S] epoch where training diverged, -1 if it did not
    index: dict[str, int] = field(repr=False)

    @property
    def epochs(self) -> int:
        return int(self.meta["epochs"])

    @property
    def trials(self) -> int:
        return int(self.meta["trials"])

    @property
    def budget(self) -> int:
        """B: the shipped space's trial-epochs (trials x epochs)."""
        return self.trials * self.epochs

    def recipe_quality(self) -> np.ndarray:
        """[R] mean over seeds of each recipe's best epoch (a diverged run scores its epochs)."""
        return np.nanmean(np.nanmax(self.scores, axis=2), axis=1)


def load_table(path: Path) -> Table:
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[META_KEY])
    metric = meta["metric"]
    cols = table.to_pydict()
    cols["recipe"] = [_canonical(k) for k in cols["recipe"]]
    keys = sorted(set(cols["recipe"]), key=lambda k: cols["recipe_id"][cols["recipe"].index(k)])
    index = {k: i for i, k in enumerate(keys)}
    seeds, epochs = int(meta["seeds"]), int(meta["epochs"])
    scores = np.full((len(keys), seeds, epochs + 1), np.nan)
    seconds = np.zeros((len(keys), seeds, epochs + 1))
    fail_at = np.full((len(keys), seeds), -1)
    for i, key in enumerate(cols["recipe"]):
        r, s, e = index[key], cols["seed"][i], cols["epoch"][i]
        if cols["diverged"][i]:
            fail_at[r, s] = e
            continue
        scores[r, s, e] = cols[metric][i]
        seconds[r, s, e] = cols["eval_s"][i] + (cols["train_s"][i] if e > 0 else 0.0)
    return Table(meta, keys, scores, seconds, fail_at, index)


def recipe_key(recipe: Recipe) -> str:
    """A recipe's identity in the table (bench/tabular.py and the replay compute it alike): its
    fields as JSON, unset (None) ones left out so that a field added to Recipe later with a None
    default does not change the keys of a table built before it."""
    fields = {k: v for k, v in recipe.to_dict().items() if v is not None}
    return json.dumps(fields, sort_keys=True)


def _canonical(key: str) -> str:
    """A key as `recipe_key` writes it now (tables written before it kept None fields)."""
    return json.dumps({k: v for k, v in json.loads(key).items() if v is not None}, sort_keys=True)


def parsed_params(table: Table, key: str) -> dict[str, ParamValue]:
    search = table.meta["spec"]["search"]
    raw = {"name": "replay", "search": {"params": table.meta[key]}}
    raw["search"]["weight_miners"] = search["weight_miners"]
    return dict(parse_spec(raw).search.params)


class Snap:
    """A proposal of the searched space (ranges) -> the table's recipe (grid values)."""

    def __init__(self, table: Table) -> None:
        self.searched = parsed_params(table, "params")
        grid = parsed_params(table, "grid_params")
        self.grid_space = build_space(grid, table.meta["spec"]["search"]["weight_miners"])
        self.values = {k: np.asarray(v, float) for k, v in grid.items() if k in self.ranges}

    @property
    def ranges(self) -> dict[str, Range]:
        return {k: v for k, v in self.searched.items() if isinstance(v, Range)}

    def __call__(self, params: dict[str, Any]) -> Recipe:
        fixed = dict(params)
        for name, rng in self.ranges.items():
            if name in fixed:
                grid = self.values[name]
                far = (
                    np.abs(np.log(grid) - math.log(fixed[name]))
                    if rng.log
                    else np.abs(grid - fixed[name])
                )
                fixed[name] = float(grid[int(np.argmin(far))])
        return self.grid_space.recipe(optuna.trial.FixedTrial(fixed))  # type: ignore[arg-type]


# --- ASHA, as Ray decides ---------------------------------------------------------------------


class Asha:
    """Ray's ASHAScheduler with one bracket (`ray/tune/schedulers/async_hyperband.py`): rungs at
    grace * rf**k below max_t; a trial reaching a rung it has not recorded is stopped when its
    value is below the (1 - 1/rf) percentile of the values recorded there so far (numpy's
    nanpercentile, linear), then recorded. Results at max_t stop the trial (stop_last_trials)."""

    def __init__(self, grace: int, max_t: int, reduction_factor: float) -> None:
        grace = min(grace, max_t)  # as minesearch's make_scheduler caps it
        self.rf, self.max_t = reduction_factor, max_t
        rungs = int(np.log(max_t / grace) / np.log(reduction_factor) + 1)  # Ray's MAX_RUNGS, s=0
        self.rungs: list[tuple[float, dict[int, float]]] = [
            (grace * reduction_factor**k, {}) for k in reversed(range(rungs))
        ]

    @property
    def milestones(self) -> list[float]:
        return [m for m, _ in reversed(self.rungs)]

    def cutoff(self, recorded: dict[int, float]) -> float | None:
        if not recorded:
            return None
        return float(np.nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100))

    def on_result(self, trial: int, t: int, value: float) -> bool:
        """Tune's on_trial_result: True when the trial stops here."""
        if t >= self.max_t:
            return True
        return self._bracket(trial, t, value)

    def on_complete(self, trial: int, t: int, value: float) -> None:
        self._bracket(trial, t, value)

    def _bracket(self, trial: int, t: int, value: float) -> bool:
        for milestone, recorded in self.rungs:
            if t < milestone or trial in recorded:
                continue
            cutoff = self.cutoff(recorded)
            recorded[trial] = value
            return cutoff is not None and value < cutoff
        return False


# --- the replay -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Strategy:
    name: str
    sampler: str = "random"  # random | tpe | grid (minesearch's names)
    scheduler: str = "fifo"  # fifo | asha
    grace: int = 1
    reduction: float = 2.0
    concurrent: int = 1
    tell_budget: bool = False  # make_search(..., budget=trials)
    tell_concurrent: bool = False  # make_search(..., concurrent=concurrent)
    startup: int | None = None  # sweeps: TPE's n_startup_trials set directly
    liar: bool = False  # sweeps, with startup

    @property
    def budget_aware(self) -> bool:
        return self.tell_budget or self.startup is not None

    def search(
        self, seed: int, table: Table, trials: int
    ) -> tuple[Any, optuna.samplers.BaseSampler, int | None]:
        """(space function, sampler, grid size) as the search driver would make them."""
        key = "grid_params" if self.sampler == "grid" else "params"
        wm = table.meta["spec"]["search"]["weight_miners"]
        space = build_space(parsed_params(table, key), wm)
        if self.startup is not None:
            return space, tpe_sampler(seed, self.startup, self.liar), None
        return make_search(
            self.sampler,
            seed,
            space,
            budget=trials if self.tell_budget else None,
            concurrent=self.concurrent if self.tell_concurrent else 1,
        )


@dataclass
class _Trial:
    number: int
    ot: optuna.Trial
    key: str
    scores: np.ndarray  # [E+1]
    seconds: np.ndarray  # [E+1]
    fail_at: int
    best: float = -math.inf
    reports: list[tuple[float, int]] = field(default_factory=list)  # Optuna's (value, step)
    waiting: list[tuple[int, optuna.Trial]] = field(default_factory=list)  # repeats


@dataclass(frozen=True)
class _Outcome:
    reports: list[tuple[float, int]]
    state: optuna.trial.TrialState
    value: float | None
    result: dict[str, Any] | None  # what Tune gave on_trial_complete


@dataclass
class Run:
    """One replayed search: after every trial report, what had been spent and the best so far."""

    trial_epochs: list[int] = field(default_factory=list)
    worker_s: list[float] = field(default_factory=list)
    best: list[float] = field(default_factory=list)
    best_key: list[str] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)  # trials trained to their end or stopped
    trials: int = 0  # trials started (repeats are free: not trials)
    proposals: int = 0
    events: list[tuple[Any, ...]] = field(default_factory=list)  # for the RecipeSearch test


def replay(
    table: Table,
    strategy: Strategy,
    seed: int,
    cap: int,
    trials: int | None = None,
    fixed_s: float = FIXED_S,
    log: bool = False,
    max_proposals: int = MAX_PROPOSALS,
) -> Run:
    """One search to `cap` trial-epochs. `trials`: the budget in trials the sampler is told
    (budget-aware strategies), default the shipped space's."""
    trials = trials or table.trials
    metric, epochs = table.meta["metric"], table.epochs
    space, sampler, grid_size = strategy.search(seed, table, trials)
    study = optuna.create_study(
        sampler=sampler, pruner=optuna.pruners.NopPruner(), direction="maximize"
    )
    snap = None if strategy.sampler == "grid" else Snap(table)
    asha = None
    if strategy.scheduler == "asha":
        asha = Asha(strategy.grace, epochs, strategy.reduction)
    # Which training seed each recipe's curve comes from: drawn per (replay seed, recipe), so
    # that every strategy replayed with this seed meets the same curve for the same recipe.
    pick = np.random.default_rng([seed, 7]).integers(table.scores.shape[1], size=len(table.keys))
    run = Run()
    known: dict[str, _Outcome] = {}
    running: dict[str, _Trial] = {}
    heap: list[tuple[float, int, int, _Trial]] = []
    spent, worker_s, best, best_key = 0, 0.0, -math.inf, ""
    free, number, repeats, ended, now = strategy.concurrent, 0, 0, 0, 0.0

    def event(*item: Any) -> None:
        if log:
            run.events.append(item)

    def tell(ot: optuna.Trial, n: int, outcome: _Outcome) -> None:
        for value, step in outcome.reports:
            ot.report(value, step)
            event("result", n, {metric: value, "epoch": step - 1, "training_iteration": step})
        error = outcome.state == optuna.trial.TrialState.FAIL
        event("complete", n, outcome.result, error)
        with contextlib.suppress(RuntimeError):  # GridSampler stops the study when it is done
            study.tell(ot, outcome.value, state=outcome.state)

    def finish(trial: _Trial, epoch: int, failed: bool) -> None:
        nonlocal free, ended
        free += 1
        ended += 1
        del running[trial.key]
        if failed:
            state, value, result = optuna.trial.TrialState.FAIL, None, None
        else:
            result = {metric: trial.best, "epoch": epoch}
            if asha is not None:
                asha.on_complete(trial.number, epoch, trial.best)
            stopped = epoch < epochs  # RecipeSearch: PRUNED, Optuna reads the reports
            state = optuna.trial.TrialState.PRUNED if stopped else optuna.trial.TrialState.COMPLETE
            value = None if stopped else trial.best
        outcome = _Outcome(list(trial.reports), state, value, result)
        known[trial.key] = outcome
        event("complete", trial.number, result, failed)
        with contextlib.suppress(RuntimeError):
            study.tell(trial.ot, value, state=state)
        for n, ot in trial.waiting:
            tell(ot, n, outcome)

    while True:
        while free > 0 and spent < cap and run.proposals < max_proposals:
            if grid_size is not None and run.proposals >= grid_size:
                break
            if repeats >= MAX_REPEATS:
                break
            ot = study.ask()
            config = space(ot)
            event("suggest", number, config)
            run.proposals += 1
            recipe = TrialConfig.from_config(config).recipe if snap is None else snap(ot.params)
            key = recipe_key(recipe)
            if key in known:
                repeats += 1
                tell(ot, number, known[key])
            elif key in running:
                repeats += 1
                running[key].waiting.append((number, ot))
            else:
                repeats = 0
                r = table.index[key]
                s = int(pick[r])
                trial = _Trial(
                    number, ot, key, table.scores[r, s], table.seconds[r, s], table.fail_at[r, s]
                )
                running[key] = trial
                free -= 1
                run.trials += 1
                heapq.heappush(heap, (now + fixed_s + trial.seconds[0], number, 0, trial))
            number += 1
        if not heap or spent >= cap:
            break
        now, _, epoch, trial = heapq.heappop(heap)
        spent += epoch > 0
        worker_s += trial.seconds[epoch] + (fixed_s if epoch == 0 else 0.0)
        if epoch == trial.fail_at:  # the trial raised: Tune marks it ERROR, Optuna FAIL
            finish(trial, epoch, failed=True)
        else:
            trial.best = max(trial.best, float(trial.scores[epoch]))
            if trial.best > best:
                best, best_key = trial.best, trial.key
            result = {metric: trial.best, "epoch": epoch, "training_iteration": epoch + 1}
            stop = asha.on_result(trial.number, epoch, trial.best) if asha else epoch >= epochs
            if not (stop and asha):  # Tune reports a result unless the scheduler stops on it
                trial.reports.append((trial.best, epoch + 1))
                trial.ot.report(trial.best, epoch + 1)
                event("result", trial.number, result)
            if stop:
                finish(trial, epoch, failed=False)
            else:
                nxt = now + trial.seconds[epoch + 1]
                heapq.heappush(heap, (nxt, trial.number, epoch + 1, trial))
        run.trial_epochs.append(spent)
        run.worker_s.append(worker_s)
        run.best.append(best)
        run.best_key.append(best_key)
        run.ended.append(ended)
    return run


# --- many replays, summarised -----------------------------------------------------------------


def strategies(table: Table) -> list[Strategy]:
    """The strategies compared. ASHA as the shipped space sets it and as SchedulerSpec's defaults
    set it (when they differ); "startup~budget" is TPE told the budget (`make_search(...,
    budget=trials)`), "liar" TPE told the concurrency (`concurrent=4`)."""
    shipped = table.meta["spec"]["search"]["scheduler"]
    default = SchedulerSpec()
    ashas = dict.fromkeys(
        [
            (int(shipped["grace_epochs"]), float(shipped["reduction_factor"])),
            (default.grace_epochs, default.reduction_factor),
        ]
    )
    out = [
        Strategy("random"),
        Strategy("grid", "grid"),
        Strategy("tpe (shipped)", "tpe"),
        Strategy("tpe startup~budget", "tpe", tell_budget=True),
    ]
    for g, rf in ashas:
        out.append(Strategy(f"random+asha g{g} rf{rf:g}", scheduler="asha", grace=g, reduction=rf))
        out.append(Strategy(f"tpe+asha g{g} rf{rf:g}", "tpe", "asha", g, rf, tell_budget=True))
    return [
        *out,
        Strategy("random c4", concurrent=4),
        Strategy("tpe c4", "tpe", concurrent=4, tell_budget=True),
        Strategy("tpe+liar c4", "tpe", concurrent=4, tell_budget=True, tell_concurrent=True),
    ]


def sweep(table: Table) -> list[Strategy]:
    """Alternatives for the defaults: TPE's random start, ASHA's grace and reduction factor."""
    out = [Strategy("random"), Strategy("tpe (shipped)", "tpe")]
    out += [Strategy(f"tpe startup {k}", "tpe", startup=k) for k in (1, 2, 3, 5, 8)]
    out += [Strategy("tpe startup~budget", "tpe", tell_budget=True)]
    for g, rf in ((1, 2), (1, 3), (1, 4), (2, 2), (2, 4), (3, 2)):
        out.append(Strategy(f"random+asha g{g} rf{rf}", scheduler="asha", grace=g, reduction=rf))
        out.append(Strategy(f"tpe+asha g{g} rf{rf}", "tpe", "asha", g, rf, tell_budget=True))
    return out


@dataclass(frozen=True)
class Job:
    table: Path
    strategy: Strategy
    level: int  # budget multiple: the sampler is told level x trials
    seed: int
    cap: int
    fixed_s: float


_TABLES: dict[Path, Table] = {}


def run_job(job: Job) -> tuple[Job, Run]:
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if job.table not in _TABLES:
        _TABLES[job.table] = load_table(job.table)
    table = _TABLES[job.table]
    trials = table.trials * job.level
    return job, replay(table, job.strategy, job.seed, job.cap, trials, job.fixed_s)


def step_at(xs: Sequence[float], ys: Sequence[float], at: np.ndarray) -> np.ndarray:
    """The last y with x <= at (NaN before the first)."""
    idx = np.searchsorted(np.asarray(xs), at, side="right") - 1
    vals = np.asarray(ys, float)
    return np.where(idx >= 0, vals[np.clip(idx, 0, None)], np.nan)


def first_reach(xs: Sequence[float], ys: Sequence[float], target: float) -> float:
    hit = np.flatnonzero(np.asarray(ys) >= target - 1e-12)
    return float(xs[hit[0]]) if len(hit) else math.inf


@dataclass
class Summary:
    """Runs of one strategy at one budget level, over seeds."""

    strategy: Strategy
    level: int
    runs: list[Run]

    def best_at(self, at: np.ndarray, x: str = "trial_epochs") -> np.ndarray:
        """[seeds, len(at)]"""
        return np.stack([step_at(getattr(r, x), r.best, at) for r in self.runs])

    def reach(self, target: float, x: str = "trial_epochs") -> np.ndarray:
        return np.array([first_reach(getattr(r, x), r.best, target) for r in self.runs])

    def quality_at(self, at: float, quality: np.ndarray, table: Table) -> np.ndarray:
        out = []
        for r in self.runs:
            i = np.searchsorted(r.trial_epochs, at, side="right") - 1
            out.append(quality[table.index[r.best_key[i]]] if i >= 0 else np.nan)
        return np.array(out)


def run_all(
    path: Path, chosen: list[Strategy], seeds: int, levels: Sequence[int], jobs: int, fixed_s: float
) -> dict[tuple[str, int], Summary]:
    """Budget-aware strategies run once per level (to 2 x the level's budget at level 1, to the
    level's budget above); the others once, to the largest cap, and serve every level."""
    table = load_table(path)
    top = max(levels)
    caps = {lv: table.budget * (2 * lv if lv == 1 else lv) for lv in levels}
    plan: list[Job] = []
    for s in chosen:
        runs_at = levels if s.budget_aware else [top]
        for lv in runs_at:
            cap = caps[lv] if s.budget_aware else max(caps.values())
            plan += [Job(path, s, lv, seed, cap, fixed_s) for seed in range(seeds)]
    done: dict[tuple[str, int], list[tuple[int, Run]]] = {}
    if jobs > 1:
        with ProcessPoolExecutor(jobs, get_context("spawn")) as pool:
            results: Iterator[tuple[Job, Run]] = pool.map(run_job, plan, chunksize=4)
            collected = list(results)
    else:
        collected = [run_job(j) for j in plan]
    for job, run in collected:
        done.setdefault((job.strategy.name, job.level), []).append((job.seed, run))
    out = {}
    for s in chosen:
        for lv in levels:
            source = (s.name, lv if s.budget_aware else top)
            runs = [r for _, r in sorted(done[source], key=lambda x: x[0])]
            out[(s.name, lv)] = Summary(s, lv, runs)
    return out


def crossing(grid: np.ndarray, curves: np.ndarray, target: float) -> float:
    """The first x of `grid` where the median over seeds of `curves` [seeds, len(grid)] reaches
    `target` (inf if it never does)."""
    med = np.nanmedian(curves, axis=0)
    hit = np.flatnonzero(med >= target - 1e-12)
    return float(grid[hit[0]]) if len(hit) else math.inf


def report(
    table: Table, summaries: dict[tuple[str, int], Summary], levels: Sequence[int]
) -> list[str]:
    quality = table.recipe_quality()
    names = list(dict.fromkeys(k[0] for k in summaries))
    seeds = len(next(iter(summaries.values())).runs)
    lines = [
        f"table: {table.meta['data']} ({len(table.keys)} recipes x {table.scores.shape[1]} seeds, "
        f"{table.epochs} epochs), selected on {table.meta['metric']} (best epoch); "
        f"{seeds} replays per strategy",
        f"best recipe of the table (mean over seeds of its best epoch): {np.nanmax(quality):.4f}; "
        f"untrained (epoch 0): {np.nanmean(table.scores[:, :, 0]):.4f}",
        "columns: best@B = best validation score reached within B trial-epochs (median "
        "[quartiles] over replays); to target = trial-epochs at which the median curve reaches "
        "the target, and as a multiple of B (- : not within the replay's cap); hit@B/2, hit@B = "
        "share of replays at the target by then; worker-h = worker hours at which the median "
        "curve (by worker time: epochs + fixed per-trial cost) reaches the target; sel.mean = "
        "the selected recipe's mean best-epoch score over the table's seeds; trials = trials "
        "ended by B (median)",
    ]
    for lv in levels:
        budget = table.budget * lv
        at = np.array([budget])
        rand = summaries[("random", lv)]
        target = float(np.median(rand.best_at(at)[:, 0]))
        rand_s = float(np.median([step_at(r.trial_epochs, r.worker_s, at)[0] for r in rand.runs]))
        head = (
            f"{'strategy':<24} {'best@B median [q1, q3]':>26} {'to target':>9} {'x B':>5} "
            f"{'hit@B/2':>7} {'hit@B':>6} {'worker-h':>8} {'sel.mean':>8} {'trials':>6}"
        )
        lines += [
            "",
            f"budget {lv}B = {budget} trial-epochs ({table.trials * lv} trials x {table.epochs} "
            f"epochs); target = random's median best at {lv}B = {target:.4f} (random: "
            f"{rand_s / 3600:.3f} worker-h)",
            head,
            "-" * len(head),
        ]
        for name in names:
            s = summaries[(name, lv)]
            cap = min(r.trial_epochs[-1] for r in s.runs)
            grid = np.arange(0, cap + 1)
            q1, med, q3 = np.nanpercentile(s.best_at(at)[:, 0], [25, 50, 75])
            x = crossing(grid, s.best_at(grid), target)
            half, full = (
                float(np.mean(s.best_at(np.array([b]))[:, 0] >= target - 1e-12))
                for b in (budget / 2, budget)
            )
            hours = np.linspace(0, min(r.worker_s[-1] for r in s.runs), 2000)
            t = crossing(hours, s.best_at(hours, "worker_s"), target) / 3600
            sel = float(np.nanmedian(s.quality_at(budget, quality, table)))
            trials = float(np.median([step_at(r.trial_epochs, r.ended, at)[0] for r in s.runs]))
            lines.append(
                f"{name:<24} {med:>9.4f} [{q1:.4f}, {q3:.4f}] {_fmt(x):>9} {_ratio(x, budget):>5} "
                f"{half:>7.0%} {full:>6.0%} {_fmt(t, '.3f'):>8} {sel:>8.4f} {trials:>6.0f}"
            )
    return lines


def _fmt(x: float, spec: str = ".0f") -> str:
    return "-" if not math.isfinite(x) else format(x, spec)


def _ratio(x: float, budget: int) -> str:
    return "-" if not math.isfinite(x) else f"{x / budget:.2f}"


def plot(
    table: Table,
    summaries: dict[tuple[str, int], Summary],
    levels: Sequence[int],
    out: Path,
) -> None:
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(k[0] for k in summaries))
    fig = Figure(figsize=(13, 4.2 * len(levels)), layout="constrained")
    axes = fig.subplots(len(levels), 2, squeeze=False)
    colors = [f"C{i % 10}" for i in range(len(names))]
    for row, lv in enumerate(levels):
        budget = table.budget * lv
        cap = 2 * budget if lv == 1 else budget  # as run_all's caps
        xs = np.arange(0, cap + 1)
        rand = summaries[("random", lv)]
        seconds = max(r.worker_s[-1] for r in rand.runs)
        ts = np.linspace(0, seconds, 200)
        for name, color in zip(names, colors, strict=True):
            s = summaries[(name, lv)]
            style = "--" if s.strategy.concurrent > 1 else "-"
            for col, (x, grid) in enumerate((("trial_epochs", xs), ("worker_s", ts))):
                vals = s.best_at(grid, x)
                q1, med, q3 = np.nanpercentile(vals, [25, 50, 75], axis=0)
                scale = 1 if col == 0 else 1 / 3600
                ax = axes[row][col]
                ax.plot(grid * scale, med, style, color=color, label=name, lw=1.4)
                ax.fill_between(grid * scale, q1, q3, color=color, alpha=0.08)
        target = float(np.median(rand.best_at(np.array([budget]))[:, 0]))
        for col in range(2):
            ax = axes[row][col]
            ax.axhline(target, color="k", lw=0.6, ls=":")
            ax.set_ylabel(f"best {table.meta['metric']} (median, IQR)")
            lo = np.nanpercentile(rand.best_at(xs)[:, -1], 5) if len(xs) else 0
            ax.set_ylim(min(target, lo) - 0.05, float(np.nanmax(table.scores)) + 0.01)
        axes[row][0].axvline(budget, color="k", lw=0.6)
        axes[row][0].set_xlabel(f"trial-epochs (budget {lv}B = {budget})")
        axes[row][1].set_xlabel("worker hours (epochs + fixed per-trial cost)")
        axes[row][0].set_title(f"{table.meta['data']}: sampler told {lv}x the shipped trials")
    axes[0][0].legend(fontsize=7, loc="lower right")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", type=Path)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--fixed-s", type=float, default=FIXED_S)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--sweep", action="store_true", help="the defaults' alternatives")
    parser.add_argument("--quick", action="store_true", help="3 seeds, 1 process (CI)")
    parser.add_argument("--plot", type=Path, help="default bench/results/<table>[_sweep].png")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.jobs = 3, 1
    started = time.time()
    table = load_table(args.table)
    chosen = sweep(table) if args.sweep else strategies(table)
    summaries = run_all(args.table, chosen, args.seeds, args.levels, args.jobs, args.fixed_s)
    lines = report(table, summaries, args.levels)
    print("\n".join(lines))
    suffix = "_sweep" if args.sweep else ""
    out = args.plot or RESULTS / f"search_efficiency_{args.table.stem}{suffix}.png"
    if not args.quick or args.plot:  # the PNG, and the table above beside it
        plot(table, summaries, args.levels, out)
        command = " ".join(["python", "bench/search_efficiency.py", *(argv or sys.argv[1:])])
        out.with_suffix(".txt").write_text("\n".join([f"$ {command}", *lines, ""]))
        print(f"\nplot: {out}")
    print(f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
