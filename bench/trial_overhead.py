"""Where a trial's time goes besides training, old way against new, from real local searches.

Run: python bench/trial_overhead.py [--space search_spaces/quickstart.yaml] [--trials N]
                                    [--arms 1-old,1-new,2-old,2-new]

Each arm runs `minesearch run SPACE` (its own Ray, store and storage under a temp dir; output to a
log file there) with the space's train.workers set to 1 or 2 (1 CPU per worker unless the space
has that worker count already), the old way (`MINESEARCH_TRIALS_VIA_RAY_TRAIN=1`:
every trial a Ray Train job with Ray's bridge and cleaner, a new process per trial) or the new
way (a single-worker trial in its Tune trial actor, a 2-worker one through Ray Train with a
report file and a shared cleaner; trial processes reused). All arms run in this one command, on
this machine, one after another, so the ratios compare like with like.

Then it reads the trials back from MLflow. A child run starts when Tune starts the trial and ends
when Tune completes it; each epoch's metrics are logged when its result reaches the driver; the
worker reports `startup.to_loop_s` (trial process start -> the loop: for Ray Train, its
controller, the worker group, the worker's imports), `setup_s` (data, model, process group) and
`epoch_time_s` (the training of each epoch). Per trial, in seconds (medians over trials):

- to_loop, setup: as reported; first_report: the rest until epoch 0's result reached the driver
  (the epoch-0 evaluation, the checkpoint, the report's trip, Tune's start of the trial process);
- per_epoch: what each later epoch costs beyond `epoch_time_s` (evaluation, checkpoint, report);
- teardown: the last result to the trial's end; gap: the trial's end to the next trial's start;
- fixed = trial duration - training + gap (median, and mean: the mean carries the first trial's
  process start, which reuse spreads over the others).

The quickstart line compares the space as shipped, the new way, against the 2-worker arm the old
way (the quickstart before single-worker trials), wall clock of the whole `minesearch run` (Ray's
start, the trials, the control, the report).

Two differences beyond the trial path favour the `1-new` arm (since 2026-12-06): a search with
no Ray Train trial starts its local Ray without the dashboard (`search.local_ray_options`), and a
reused trial process reports an identical untrained network's epoch 0 without evaluating it
(`minesearch.train._untrained`; the `1-old` arm's new process per trial cannot). `first_report`
and `fixed` of the arms then differ by those too, not by the trial path alone.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mlflow.tracking import MlflowClient

from minesearch.tracking import names

ROOT = Path(__file__).resolve().parents[1]
OLD_WAY = {"MINESEARCH_TRIALS_VIA_RAY_TRAIN": "1"}  # read by the search's driver
# fixed cost per trial (s): target and bar, by workers per trial
TARGETS = {1: (2.0, 3.0), 2: (6.0, 8.0)}
QUICKSTART_TARGET_S = (60.0, 90.0)
KEYS = ["to_loop", "setup", "first_report", "per_epoch", "teardown", "gap"]


@dataclass(frozen=True)
class Arm:
    workers: int
    old: bool

    @property
    def name(self) -> str:
        return f"{self.workers}-{'old' if self.old else 'new'}"

    @property
    def label(self) -> str:
        way = "old way" if self.old else "new way"
        return f"{self.workers} worker{'s' if self.workers > 1 else ''}, {way}"


ARMS = [Arm(1, True), Arm(1, False), Arm(2, True), Arm(2, False)]


@dataclass(frozen=True)
class Outcome:
    arm: Arm
    wall: float
    rows: list[dict[str, float]]
    recipes: list[str]
    scores: list[float]  # each trial's selected score
    shipped: bool  # the space as shipped (its own train.workers and cpus_per_worker)


def arm_spec(space: dict[str, Any], arm: Arm) -> dict[str, Any]:
    """The space with the arm's workers; a space of another worker count gets 1 CPU per worker
    (the quickstart's 1 worker, or its 2 workers of before)."""
    spec = yaml.safe_load(yaml.safe_dump(space))
    train = spec.setdefault("train", {})
    if arm.workers != train.get("workers", 1):
        train["cpus_per_worker"] = 1
    train["workers"] = arm.workers
    return spec


def run_search(spec: dict[str, Any], space: Path, work: Path, old: bool) -> float:
    spec = yaml.safe_load(yaml.safe_dump(spec))
    spec.setdefault("tracking", {})["uri"] = f"sqlite:///{work / 'mlflow.db'}"
    spec_data = spec.get("data", {})
    if "path" in spec_data:  # resolved against the copied file's directory otherwise
        spec_data["path"] = str((space.parent / spec_data["path"]).resolve())
    copy = work / space.name
    copy.write_text(yaml.safe_dump(spec))
    log = work / "search.log"
    env = os.environ | {"MINESEARCH_CACHE_DIR": str(work / "cache")}
    env = env | OLD_WAY if old else {k: v for k, v in env.items() if k not in OLD_WAY}
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "minesearch", "run", str(copy), "--storage-path", str(work)],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"the search failed (exit {done.returncode}); its output: {log}")
    return wall


def trial_runs(client: MlflowClient) -> list[Any]:
    """The search's trials (not the control), in the order they started."""
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=1000)
    children = [
        r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") and r.data.tags.get(names.ROLE_TAG) == "trial"
    ]
    return sorted(children, key=lambda r: r.info.start_time)


def trials_of(uri: str) -> list[dict[str, float]]:
    """Per trial of the search (not the control), its timeline in seconds."""
    client = MlflowClient(uri)
    rows = []
    for run in trial_runs(client):
        run_id = run.info.run_id
        reports = sorted(client.get_metric_history(run_id, "epoch"), key=lambda m: m.step)
        trained = client.get_metric_history(run_id, "epoch_time_s")
        if not reports:
            continue
        start, end = run.info.start_time / 1000, (run.info.end_time or 0) / 1000
        first, last = reports[0].timestamp / 1000, reports[-1].timestamp / 1000
        training = sum(m.value for m in trained)
        to_loop = _first(client, run_id, "startup.to_loop_s")
        setup = _first(client, run_id, "setup_s")
        epochs = len(reports) - 1
        rows.append(
            {
                "start": start,
                "end": end,
                "to_loop": to_loop,
                "setup": setup,
                "first_report": (first - start) - to_loop - setup,
                "to_first_report": first - start,
                "per_epoch": ((last - first) - training) / max(epochs, 1),
                "teardown": end - last,
                "training": training,
                "epoch_time": statistics.median([m.value for m in trained]) if trained else 0.0,
                "duration": end - start,
                "epochs": float(epochs),
            }
        )
    for row, following in itertools.pairwise(rows):
        row["gap"] = following["start"] - row["end"]
    for row in rows:
        row["fixed"] = row["duration"] - row["training"] + row.get("gap", 0.0)
    return rows


def proposed(uri: str, metric: str) -> tuple[list[str], list[float]]:
    """The recipes the search proposed, in order, and each one's selected score."""
    client = MlflowClient(uri)
    runs = trial_runs(client)
    recipes = [
        ", ".join(f"{k}={v}" for k, v in sorted(r.data.params.items()) if k != "workers")
        for r in runs
    ]
    return recipes, [r.data.metrics.get(f"selected.{metric}", float("nan")) for r in runs]


def agreement(reference: Outcome, other: Outcome) -> str:
    """Where `other` proposes what `reference` did, and how far its scores are on those."""
    pairs = list(zip(reference.recipes, other.recipes, strict=False))
    same = next((i for i, (a, b) in enumerate(pairs) if a != b), len(pairs))
    diffs = [abs(a - b) for a, b in zip(reference.scores[:same], other.scores[:same], strict=False)]
    text = "the same recipes" if same == len(pairs) else f"the same recipes up to trial {same}"
    if diffs:
        text += f", scores apart by {statistics.fmean(diffs):.4f} on average (max {max(diffs):.4f})"
    return text


def _first(client: MlflowClient, run_id: str, key: str) -> float:
    history = client.get_metric_history(run_id, key)
    return min(history, key=lambda m: m.step).value if history else 0.0


def _median(rows: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else float("nan")


def _mean(rows: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return statistics.fmean(values) if values else float("nan")


def run_arm(space: Path, spec: dict[str, Any], arm: Arm) -> Outcome:
    shipped = arm_spec(spec, arm) == spec
    with tempfile.TemporaryDirectory(prefix=f"trial-overhead-{arm.name}-") as tmp:
        work = Path(tmp)
        wall = run_search(arm_spec(spec, arm), space, work, arm.old)
        uri = f"sqlite:///{work / 'mlflow.db'}"
        rows = trials_of(uri)
        metric = spec.get("search", {}).get("metric", "mean_average_precision_at_r")
        recipes, scores = proposed(uri, metric)
    if not rows:
        sys.exit(f"{arm.label}: no trial was read back")
    return Outcome(arm, wall, rows, recipes, scores, shipped)


def verdict(value: float, target: float, bar: float) -> str:
    if value <= target:
        return "met"
    return f"missed by {value - target:.1f} s ({'within' if value <= bar else 'over'} the bar)"


def report(outcomes: list[Outcome]) -> None:
    print(f"\n{'arm':<22} trials  wall s  fixed med  fixed mean  " + "  ".join(KEYS) + "  epoch")
    for o in outcomes:
        cells = "  ".join(f"{_median(o.rows, k):>{len(k)}.2f}" for k in KEYS)
        print(
            f"{o.arm.label:<22} {len(o.rows):>6} {o.wall:>7.1f} {_median(o.rows, 'fixed'):>10.2f}"
            f" {_mean(o.rows, 'fixed'):>11.2f}  {cells}  {_median(o.rows, 'epoch_time'):>5.2f}"
        )
    by = {o.arm: o for o in outcomes}
    print("\nfixed cost per trial (median), new way / old way, measured in this run:")
    for workers, (target, bar) in TARGETS.items():
        new, old = by.get(Arm(workers, False)), by.get(Arm(workers, True))
        if new is None:
            continue
        fixed = _median(new.rows, "fixed")
        ratio = (
            f"x{fixed / _median(old.rows, 'fixed'):.2f} of {_median(old.rows, 'fixed'):.1f} s"
            if old
            else "no old arm"
        )
        print(
            f"  {workers} worker(s): {fixed:.1f} s ({ratio}); target <= {target:.0f} s, "
            f"bar {bar:.0f} s: {verdict(fixed, target, bar)}"
        )
    shipped = next((o for o in outcomes if o.shipped and not o.arm.old), None)
    before = by.get(Arm(2, True))
    if shipped is not None:
        target, bar = QUICKSTART_TARGET_S
        against = ""
        if before:
            ratio = shipped.wall / before.wall
            against = f" vs {before.wall:.0f} s the old way with 2 workers (x{ratio:.2f})"
        print(
            f"\nthe space as shipped ({shipped.arm.label}): {shipped.wall:.0f} s wall{against}; "
            f"target <= {target:.0f} s, bar {bar:.0f} s: {verdict(shipped.wall, target, bar)}"
        )
    print("\nrecipes proposed (in order) against the first arm's, and the best selected score:")
    for o in outcomes:
        best = max((v for v in o.scores if v == v), default=float("nan"))
        print(f"  {o.arm.label:<22} {agreement(outcomes[0], o)}; best {best:.4f}")
    print("\n(timings from this machine as it was during the run: compare the ratios)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", type=Path, default=ROOT / "search_spaces/quickstart.yaml")
    parser.add_argument("--trials", type=int, default=None, help="override search.trials")
    parser.add_argument(
        "--arms",
        default=",".join(a.name for a in ARMS),
        help="which of " + ", ".join(a.name for a in ARMS) + " to run, in this order",
    )
    args = parser.parse_args()
    space = args.space.resolve()
    spec: dict[str, Any] = yaml.safe_load(space.read_text())
    if args.trials is not None:
        spec["search"]["trials"] = args.trials
    known = {a.name: a for a in ARMS}
    arms = [known[name] for name in args.arms.split(",")]
    outcomes = []
    for arm in arms:
        outcome = run_arm(space, spec, arm)
        print(f"{arm.label}: {len(outcome.rows)} trials, wall {outcome.wall:.1f} s", flush=True)
        outcomes.append(outcome)
    report(outcomes)


if __name__ == "__main__":
    main()
