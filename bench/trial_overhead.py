"""Where a trial's time goes besides training, from a real local search (issue: <= 5 s per trial).

Run: python bench/trial_overhead.py [--space search_spaces/quickstart.yaml] [--trials N]

Runs `minesearch run SPACE` (its own Ray, store and storage under a temp dir; output to a log file
there), then reads the trials back from MLflow. A child run starts when Tune starts the trial and
ends when Tune completes it; each epoch's metrics are logged when its result reaches the driver;
the worker reports `startup.to_loop_s` (trial process start -> the worker's training loop: Ray
Train's controller, the worker group, the worker's imports), `setup_s` (data, model, process group)
and `epoch_time_s` (the training of each epoch). Per trial, in seconds (medians over trials):

- to_loop, setup: as reported; first_report: the rest until epoch 0's result reached the driver
  (the epoch-0 evaluation, the checkpoint, the report's trip, Tune's start of the trial process);
- per_epoch: what each later epoch costs beyond `epoch_time_s` (evaluation, checkpoint, report);
- teardown: the last result to the trial's end; gap: the trial's end to the next trial's start;
- fixed = trial duration - training + gap, printed with its ratio to the median epoch time.
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
from pathlib import Path
from typing import Any

import yaml
from mlflow.tracking import MlflowClient

from minesearch.tracking import names

ROOT = Path(__file__).resolve().parents[1]
TARGET_FIXED_S = 5.0


def run_search(space: Path, trials: int | None, work: Path) -> float:
    spec: dict[str, Any] = yaml.safe_load(space.read_text())
    if trials is not None:
        spec["search"]["trials"] = trials
    spec.setdefault("tracking", {})["uri"] = f"sqlite:///{work / 'mlflow.db'}"
    spec_data = spec.get("data", {})
    if "path" in spec_data:  # resolved against the copied file's directory otherwise
        spec_data["path"] = str((space.parent / spec_data["path"]).resolve())
    copy = work / space.name
    copy.write_text(yaml.safe_dump(spec))
    log = work / "search.log"
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "minesearch", "run", str(copy), "--storage-path", str(work)],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | {"MINESEARCH_CACHE_DIR": str(work / "cache")},
        )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"the search failed (exit {done.returncode}); its output: {log}")
    return wall


def trials_of(uri: str) -> list[dict[str, float]]:
    """Per trial of the search (not the control), its timeline in seconds."""
    client = MlflowClient(uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=1000)
    children = [
        r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") and r.data.tags.get(names.ROLE_TAG) == "trial"
    ]
    children.sort(key=lambda r: r.info.start_time)
    rows = []
    for run in children:
        run_id = run.info.run_id
        reports = sorted(client.get_metric_history(run_id, "epoch"), key=lambda m: m.step)
        trained = client.get_metric_history(run_id, "epoch_time_s")
        step0 = {m.key: m.value for m in reports[:1]}
        if not reports or not step0:
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


def _first(client: MlflowClient, run_id: str, key: str) -> float:
    history = client.get_metric_history(run_id, key)
    return min(history, key=lambda m: m.step).value if history else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", type=Path, default=ROOT / "search_spaces/quickstart.yaml")
    parser.add_argument("--trials", type=int, default=None, help="override search.trials")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trial-overhead-") as tmp:
        work = Path(tmp)
        wall = run_search(args.space.resolve(), args.trials, work)
        rows = trials_of(f"sqlite:///{work / 'mlflow.db'}")
    if not rows:
        sys.exit("no trial was read back")
    keys = ["to_loop", "setup", "first_report", "per_epoch", "teardown", "gap", "fixed"]
    print(f"space {args.space.name}: {len(rows)} trials, wall {wall:.1f} s")
    print("per trial (median s): " + ", ".join(f"{k} {_median(rows, k):.2f}" for k in keys))
    epoch = statistics.median(r["epoch_time"] for r in rows)
    fixed = _median(rows, "fixed")
    training = sum(r["training"] for r in rows)
    print(f"median epoch {epoch:.2f} s; fixed cost per trial / epoch time = {fixed / epoch:.1f}")
    print(f"training share of the wall time: {training / wall:.1%}")
    verdict = "met" if fixed <= TARGET_FIXED_S else f"missed by {fixed - TARGET_FIXED_S:.1f} s"
    print(f"target: fixed cost per trial <= {TARGET_FIXED_S:.0f} s: {fixed:.1f} s, {verdict}")


def _median(rows: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else float("nan")


if __name__ == "__main__":
    main()
