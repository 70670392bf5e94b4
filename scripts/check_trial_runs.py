"""Check what a search left in its MLflow store: every trial once, every epoch once.

    python scripts/check_trial_runs.py sqlite:////tmp/x/mlflow.db EXPERIMENT --trials 6 --epochs 4

Exits 0 and prints a one-line summary when the store holds, for the experiment's one search:

- one FINISHED parent run;
- exactly `--trials` child runs of role "trial", one per Tune trial id, each FINISHED;
- in each of them the epoch metric logged once per epoch, 0 to `--epochs` without a gap (to the
  epoch it stopped at, for a trial the scheduler stopped early), and no metric logged twice at one
  step.

Anything else exits 1 with one line per violation. `scripts/cluster_faults.py` runs it after a
search whose Ray nodes were killed under it; it reads the store with `MlflowClient` only.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from minesearch.config.vocab import EPOCH
from minesearch.tracking import names

TRIAL_ROLE = "trial"


@dataclass
class StoreCheck:
    """What the store holds for one search, and what is wrong with it."""

    trial_runs: int = 0
    epochs_logged: Counter[int] = field(default_factory=Counter)  # epochs per run -> runs
    other_children: Counter[str] = field(default_factory=Counter)  # role -> runs
    deleted_children: int = 0  # e.g. orphans a resume dropped
    stopped_early: int = 0
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        epochs = ", ".join(f"{n} runs x {e} epochs" for e, n in sorted(self.epochs_logged.items()))
        others = ", ".join(f"{n} {role}" for role, n in sorted(self.other_children.items()))
        return (
            f"{self.trial_runs} trial runs ({epochs or 'none'}; {self.stopped_early} stopped "
            f"early); other children: {others or 'none'}; deleted children: "
            f"{self.deleted_children}"
        )


def check_store(client: MlflowClient, experiment: str, trials: int, epochs: int) -> StoreCheck:
    """Every rule of the module docstring, checked against the experiment's runs."""
    check = StoreCheck()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        check.violations.append(f"no MLflow experiment named {experiment!r}")
        return check
    runs = client.search_runs([found.experiment_id], run_view_type=ViewType.ALL)
    active = [r for r in runs if r.info.lifecycle_stage == "active"]
    parents = [r for r in active if MLFLOW_PARENT_RUN_ID not in r.data.tags]
    check.violations += parent_violations(parents)
    parent_ids = {p.info.run_id for p in parents}
    children = [r for r in active if r.data.tags.get(MLFLOW_PARENT_RUN_ID) in parent_ids]
    check.deleted_children = sum(
        1
        for r in runs
        if r.info.lifecycle_stage != "active" and MLFLOW_PARENT_RUN_ID in r.data.tags
    )
    trial_runs = [r for r in children if r.data.tags.get(names.ROLE_TAG) == TRIAL_ROLE]
    check.other_children = Counter(
        str(r.data.tags.get(names.ROLE_TAG))
        for r in children
        if r.data.tags.get(names.ROLE_TAG) != TRIAL_ROLE
    )
    check.trial_runs = len(trial_runs)
    check.violations += trial_id_violations(trial_runs, trials)
    for run in trial_runs:
        check.violations += run_violations(client, run, epochs, check)
    return check


def parent_violations(parents: list[Run]) -> list[str]:
    if len(parents) != 1:
        return [f"{len(parents)} parent runs, expected 1 (one search)"]
    status = parents[0].info.status
    return [] if status == "FINISHED" else [f"the parent run is {status}, expected FINISHED"]


def trial_id_violations(runs: list[Run], trials: int) -> list[str]:
    """The trials asked, each in one run: none lost, none duplicated."""
    found: list[str] = []
    if len(runs) != trials:
        found.append(f"{len(runs)} trial runs, expected {trials} (trials asked)")
    ids = Counter(r.data.tags.get(names.TRIAL_TAG) for r in runs)
    if None in ids:
        found.append(f"{ids.pop(None)} trial runs without a {names.TRIAL_TAG} tag")
    found += [f"trial {t} has {n} runs" for t, n in sorted(ids.items()) if n > 1]
    return found


def run_violations(client: MlflowClient, run: Run, epochs: int, check: StoreCheck) -> list[str]:
    """One trial run: FINISHED, its epochs 0..last each once, no metric twice at one step."""
    name = f"trial {run.data.tags.get(names.TRIAL_TAG)} ({run.info.run_id})"
    found: list[str] = []
    if run.info.status != "FINISHED":
        error = run.data.tags.get(names.ERROR_TAG, "").strip().splitlines()[-1:]
        found.append(f"{name} is {run.info.status}, expected FINISHED {' '.join(error)}".rstrip())
    stopped = bool(run.data.tags.get(names.STOPPED_TAG))
    check.stopped_early += stopped
    steps = [m.step for m in client.get_metric_history(run.info.run_id, EPOCH)]
    check.epochs_logged[len(steps)] += 1
    found += [f"{name}: {v}" for v in epoch_violations(steps, epochs, stopped)]
    for key in sorted(set(run.data.metrics) - {EPOCH}):
        twice = repeated(m.step for m in client.get_metric_history(run.info.run_id, key))
        if twice:
            found.append(f"{name}: metric {key!r} logged more than once at steps {twice}")
    return found


def epoch_violations(steps: list[int], epochs: int, stopped_early: bool) -> list[str]:
    """The epoch metric's steps of one run: 0..last each once, last = `epochs` unless the
    scheduler stopped the trial early."""
    found: list[str] = []
    if twice := repeated(steps):
        found.append(f"epochs {twice} logged more than once")
    if not steps:
        return [*found, f"no {EPOCH!r} metric logged"]
    last = max(steps)
    missing = sorted(set(range(last + 1)) - set(steps))
    if missing:
        found.append(f"epochs {missing} never logged")
    if last > epochs:
        found.append(f"epoch {last} logged, beyond the budget of {epochs}")
    elif last < epochs and not stopped_early:
        found.append(
            f"last epoch logged is {last} of {epochs}, and the trial was not stopped early"
        )
    return found


def repeated(values: Iterable[int]) -> list[int]:
    return sorted(v for v, n in Counter(values).items() if n > 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tracking_uri", help="the MLflow store, e.g. sqlite:////abs/path/mlflow.db")
    parser.add_argument("experiment", help="the MLflow experiment of the search")
    parser.add_argument("--trials", type=int, required=True, help="trials the search asked for")
    parser.add_argument("--epochs", type=int, required=True, help="train.epochs of the space")
    args = parser.parse_args(argv)
    check = check_store(MlflowClient(args.tracking_uri), args.experiment, args.trials, args.epochs)
    print(f"MLflow store: {check.summary()}")
    for violation in check.violations:
        print(f"VIOLATION: {violation}", file=sys.stderr)
    if check.violations:
        print(f"FAILED: {len(check.violations)} violations", file=sys.stderr)
        return 1
    print(f"OK: 1 parent + {check.trial_runs} trial runs, all FINISHED, every epoch logged once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
