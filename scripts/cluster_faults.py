"""A search on a cluster of real Ray processes on this machine, with Ray nodes killed under it.

    python scripts/cluster_faults.py                 # the fault run: 6 trials, 2 at once, 1 loss
    python scripts/cluster_faults.py --preset soak   # 50 trials, 4 at once, 2 node losses
    python scripts/cluster_faults.py --trials 10 --node-losses 3 ...   # any preset, adjusted

1. `ray start --head` with 0 CPUs (the job's driver runs there), then `--nodes` worker nodes, each
   `ray start --address` with `--node-cpus` CPUs and its own `--temp-dir`: real raylets.
2. Writes a tiny space (digits, single-worker trials, `train.max_failures` retries) whose MLflow
   store is a SQLite file in the work dir, and `ray job submit`s `minesearch run` with the Ray
   storage path in the work dir too.
3. While the job runs, kills `--node-losses` worker nodes, evenly spread over the search: each
   time once enough trials have started and one is between epochs 1 and the last, it SIGKILLs
   the raylet of a worker node holding a trial process (`ray::ImplicitFunc`), found by the
   `--temp_dir` on its command line, and starts a replacement node.
4. Checks that the job SUCCEEDED, that Tune retried every trial the losses hit, and
   (`check_trial_runs.py`) that MLflow holds each trial once with each epoch logged once.
5. Always ends its own cluster: the processes whose command line names the work dir, and their
   descendants. Never `ray stop`, which stops every Ray on the machine.

Exit 0 when all holds; 1 with the violations otherwise. Token auth, RAY_TMPDIR and the socket
path limit: scripts/README.md. Run it under `nice` on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import math
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "cluster-faults"
TRIAL_PROCESS = "ray::ImplicitFunc"  # a Tune function trainable's actor (the trial process)
OBJECT_STORE_BYTES = 100 * 1024**2  # per node; trials move no data through it


@dataclass(frozen=True)
class Plan:
    """One fault run: the search and the faults injected into it."""

    trials: int = 6
    concurrent: int = 2
    epochs: int = 4
    node_losses: int = 1
    nodes: int = 2  # worker nodes at any time (a lost one is replaced)
    node_cpus: int = 1
    cpus_per_worker: float = 1.0  # one worker per trial: trials at once = nodes * node_cpus / this
    max_failures: int = 3  # train.max_failures: a trial's retries from its last checkpoint
    job_timeout_s: int = 900


PRESETS = {
    "fault": Plan(),
    # 4 trials at once on 2 nodes of 1 CPU, on 2 shared cores: tiny trials (2 epochs).
    "soak": Plan(
        trials=50, concurrent=4, epochs=2, node_losses=2, cpus_per_worker=0.5, job_timeout_s=2400
    ),
}


@dataclass
class Node:
    name: str
    temp_dir: Path
    killed_at: float | None = None


@dataclass
class Timeline:
    """What happened when, in seconds since the job was submitted."""

    start: float = field(default_factory=time.monotonic)
    events: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        line = f"[{time.monotonic() - self.start:7.1f} s] {text}"
        self.events.append(line)
        print(line, flush=True)


# --- the cluster's processes ---------------------------------------------------------------------


def process_table() -> dict[int, tuple[int, list[str]]]:
    """pid -> (parent pid, argv) of every process this user may read."""
    table = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        table[int(proc.name)] = (ppid, [a for a in argv if a])
    return table


def descendants(table: dict[int, tuple[int, list[str]]], roots: set[int]) -> set[int]:
    """`roots` and every process below them (Ray's workers and agents rename themselves)."""
    found = set(roots)
    while children := {pid for pid, (ppid, _) in table.items() if ppid in found} - found:
        found |= children
    return found


def naming(table: dict[int, tuple[int, list[str]]], path: Path) -> set[int]:
    """The processes with `path` (or a path under it) in their command line."""
    text = str(path)
    return {
        pid
        for pid, (_, argv) in table.items()
        if any(a.endswith(text) or f"{text}/" in a for a in argv)
    }


def own_processes(work: Path) -> set[int]:
    """The cluster's processes: those naming the work dir, and their descendants."""
    table = process_table()
    return descendants(table, naming(table, work)) - {os.getpid()}


def raylet_pid(node: Node) -> int | None:
    """The node's raylet: the one process started with `--temp_dir=<the node's temp dir>`."""
    flag = f"--temp_dir={node.temp_dir}"
    for pid, (_, argv) in process_table().items():
        if argv and argv[0].endswith("raylet") and flag in argv:
            return pid
    return None


def trial_processes(node: Node) -> list[str]:
    """Titles of the trial processes (Tune actors) the node's raylet runs."""
    pid = raylet_pid(node)
    if pid is None:
        return []
    table = process_table()
    below = descendants(table, {pid})
    titles = (" ".join(table[p][1]) for p in below if p in table and table[p][1])
    return [t for t in titles if t.startswith(TRIAL_PROCESS)]


def stop_own_cluster(work: Path) -> list[int]:
    """SIGTERM, then SIGKILL, the cluster's processes; the pids still alive after both."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        for pid in own_processes(work):
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while own_processes(work) and time.monotonic() < deadline:
            time.sleep(0.5)
    return sorted(own_processes(work))


# --- starting it ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cluster_env(work: Path) -> dict[str, str]:
    """The environment of every `ray` command: this tree first on the path, token auth with a
    token of the run's own, and the work dir as Ray's default temp dir (where Ray Train's
    placement-group cleaner finds the cluster's address); scripts/README.md says why."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    env.pop("RAY_API_SERVER_ADDRESS", None)
    token = work / "auth_token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
    path = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env | {
        "PYTHONPATH": path,
        "RAY_TMPDIR": str(work),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
    }


def ray_start(args: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        done = subprocess.run(["ray", "start", *args], env=env, stdout=out, stderr=out, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed; see {log}")


def start_head(work: Path, env: dict[str, str]) -> tuple[str, str]:
    """The head node, with no CPU for trials; (its GCS address, its dashboard's URL)."""
    gcs, dashboard = free_port(), free_port()
    ray_start(
        [
            "--head",
            "--num-cpus=0",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            "--include-dashboard=true",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--ray-client-server-port={free_port()}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--temp-dir={work / 'head'}",
            "--disable-usage-stats",
        ],
        env,
        work / "ray_start.log",
    )
    return f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}"


def start_node(work: Path, env: dict[str, str], gcs: str, index: int, cpus: int) -> Node:
    """A worker node joining the head: its own temp dir, and Ray's ports all free ones (several
    raylets share this machine; worker ports 0 = each worker's own free port)."""
    node = Node(f"node-{index}", work / f"node-{index}")
    ray_start(
        [
            f"--address={gcs}",
            f"--num-cpus={cpus}",
            "--node-ip-address=127.0.0.1",
            "--min-worker-port=0",
            "--max-worker-port=0",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--temp-dir={node.temp_dir}",
            "--disable-usage-stats",
        ],
        env,
        work / "ray_start.log",
    )
    return node


def write_space(work: Path, plan: Plan) -> Path:
    """A tiny search: digits, a small convnet, single-worker trials retried from their last
    checkpoint; no control, test split or re-runs, so the job trains just the trials asked."""
    space = {
        "name": EXPERIMENT,
        "data": {"source": "digits", "split": {"val": 0.3, "test": 0.0, "seed": 0}},
        "model": {"backbone": "convnet", "embedding_dim": 16, "hidden_dim": 32},
        "train": {
            "epochs": plan.epochs,
            "batch": {"classes": 4, "per_class": 6},
            "workers": 1,
            "cpus_per_worker": plan.cpus_per_worker,
            "max_failures": plan.max_failures,
        },
        "search": {
            "trials": plan.trials,
            "concurrent": plan.concurrent,
            "sampler": {"name": "random", "seed": 0},
            "scheduler": {"name": "fifo"},
            "control": False,
            "rerun": {"top": 0, "seeds": 1},
            "params": {
                "loss": ["ContrastiveLoss", "TripletMarginLoss", "MultiSimilarityLoss"],
                "lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
            },
        },
        "tracking": {"uri": f"sqlite:///{work / 'mlflow.db'}", "experiment": EXPERIMENT},
    }
    path = work / "space.yaml"
    path.write_text(json.dumps(space, indent=2))  # JSON is YAML
    return path


# --- the job and the faults ----------------------------------------------------------------------


def submit(work: Path, env: dict[str, str], dashboard: str, space: Path) -> subprocess.Popen[str]:
    """`ray job submit` (it waits for the job and tails its output into job.log)."""
    runtime_env = {"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}}
    command = [
        "ray", "job", "submit", "--address", dashboard, "--submission-id", job_id(work),
        "--working-dir", str(REPO), "--runtime-env-json", json.dumps(runtime_env), "--",
        "minesearch", "run", str(space), "--storage-path", str(work / "storage"),
    ]  # fmt: skip
    log = (work / "job.log").open("w")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def job_id(work: Path) -> str:
    return f"cluster-faults-{work.name.rsplit('-', 1)[-1]}"


def epochs_by_run(db: Path) -> dict[str, int]:
    """Per child run, the last epoch logged so far, read from the SQLite file read-only (no
    MLflow client: opening a store can race the search's own creation of it, issue 21)."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            rows = conn.execute(
                "SELECT run_uuid, MAX(step) FROM metrics WHERE key = 'epoch' GROUP BY run_uuid"
            ).fetchall()
    except sqlite3.Error:
        return {}
    return {str(run): int(step) for run, step in rows}


def loss_due(losses_done: int, plan: Plan, progress: dict[str, int]) -> bool:
    """The next loss comes when its share of the trials has started (loss k of n after k/(n+1)
    of them) and a trial is mid-way, between its first and its last epoch."""
    if losses_done >= plan.node_losses:
        return False
    started_needed = math.ceil((losses_done + 1) * plan.trials / (plan.node_losses + 1))
    mid_way = any(1 <= epoch < plan.epochs for epoch in progress.values())
    return len(progress) >= started_needed and mid_way


def pick_victim(nodes: list[Node]) -> tuple[Node, list[str]] | None:
    """A live worker node running a trial process, the busiest first."""
    busy = [(n, trial_processes(n)) for n in nodes if n.killed_at is None]
    busy = [(n, titles) for n, titles in busy if titles]
    return max(busy, key=lambda b: len(b[1])) if busy else None


def kill_node(node: Node, timeline: Timeline) -> None:
    pid = raylet_pid(node)
    if pid is None:
        raise RuntimeError(f"{node.name} has no raylet to kill")
    os.kill(pid, signal.SIGKILL)
    node.killed_at = time.monotonic()
    timeline.note(f"SIGKILL raylet {pid} of {node.name} ({node.temp_dir})")


@dataclass
class Faults:
    """The fault loop's state: the worker nodes, dead ones included."""

    work: Path
    env: dict[str, str]
    gcs: str
    plan: Plan
    nodes: list[Node]
    timeline: Timeline
    losses: int = 0

    def step(self) -> None:
        """One look at the search: a node loss and its replacement, when one is due."""
        progress = epochs_by_run(self.work / "mlflow.db")
        if not loss_due(self.losses, self.plan, progress):
            return
        victim = pick_victim(self.nodes)
        if victim is None:
            return
        node, titles = victim
        mid_way = sorted(e for e in progress.values() if e < self.plan.epochs)
        self.timeline.note(
            f"{len(progress)} trials started, the unfinished ones at epochs {mid_way}; "
            f"{node.name} runs {titles}"
        )
        kill_node(node, self.timeline)
        self.losses += 1
        index = len(self.nodes) + 1
        self.nodes.append(start_node(self.work, self.env, self.gcs, index, self.plan.node_cpus))
        self.timeline.note(f"replacement node-{index} started")


def run_job(faults: Faults, job: subprocess.Popen[str], timeout_s: int) -> int:
    deadline = time.monotonic() + timeout_s
    while job.poll() is None:
        if time.monotonic() > deadline:
            job.terminate()
            job.wait(30)
            raise TimeoutError(f"the job ran over {timeout_s} s")
        faults.step()
        time.sleep(0.5)
    return job.returncode


def job_status(env: dict[str, str], dashboard: str, work: Path) -> str:
    done = subprocess.run(
        ["ray", "job", "status", "--address", dashboard, "--log-color", "false", job_id(work)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout + done.stderr


def trial_failures(storage: Path) -> dict[str, tuple[str, int]]:
    """Tune's own record, from the latest experiment state: trial id -> (status, failures).
    Tune-internal format, read for the report and the check that the faults hit a trial."""
    states = sorted(glob.glob(str(storage / "*" / "experiment_state-*.json")))
    if not states:
        return {}
    found = {}
    for state_json, metadata_json in json.loads(Path(states[-1]).read_text())["trial_data"]:
        state, metadata = json.loads(state_json), json.loads(metadata_json)
        found[state["trial_id"]] = (str(state["status"]), int(metadata["num_failures"]))
    return found


# --- the whole run -------------------------------------------------------------------------------


def fault_run(work: Path, plan: Plan) -> list[str]:
    """Start the cluster, run the search under the faults, check it; the violations found."""
    env = cluster_env(work)
    timeline = Timeline()
    gcs, dashboard = start_head(work, env)
    nodes = [start_node(work, env, gcs, i + 1, plan.node_cpus) for i in range(plan.nodes)]
    timeline.note(f"cluster up: head (0 CPU) + {plan.nodes} nodes x {plan.node_cpus} CPU")
    space = write_space(work, plan)
    timeline = Timeline()  # times from the submission on
    job = submit(work, env, dashboard, space)
    timeline.note(f"job {job_id(work)} submitted: {json.dumps(asdict(plan))}")
    faults = Faults(work, env, gcs, plan, nodes, timeline)
    try:
        code = run_job(faults, job, plan.job_timeout_s)
    finally:
        if job.poll() is None:
            job.terminate()
    timeline.note(f"job ended (ray job submit exit {code})")
    table = process_table()  # a lost node's processes that outlived its raylet, by command line
    left = {n.name: sorted(naming(table, n.temp_dir)) for n in nodes if n.killed_at is not None}
    timeline.note(f"processes of the killed nodes still alive: {left}")
    violations = []
    status = job_status(env, dashboard, work)
    if code != 0 or f"Job '{job_id(work)}' succeeded" not in status:
        violations.append(f"the job did not succeed: {status.strip()[-2000:]}")
    if faults.losses < plan.node_losses:
        violations.append(f"{faults.losses} node losses of {plan.node_losses}: the search ended")
    violations += tune_violations(trial_failures(work / "storage"), faults.losses, timeline)
    timeline.note(f"epochs Tune received twice: {repeated_reports(work / 'storage') or 'none'}")
    violations += store_violations(work, plan)
    return violations


def repeated_reports(storage: Path) -> dict[str, list[int]]:
    """Per trial, the epochs Tune received twice (its result.json): a retried trial redoes the
    epochs after the last checkpoint Tune had registered when the node died."""
    found = {}
    for results in storage.glob("*/*/result.json"):
        epochs = [json.loads(line).get("epoch") for line in results.read_text().splitlines()]
        twice = sorted({e for e in epochs if epochs.count(e) > 1})
        if twice:
            found[results.parent.name.split("_")[2]] = twice  # run_trial_<id>_<n>_...
    return found


def tune_violations(
    trials: dict[str, tuple[str, int]], losses: int, timeline: Timeline
) -> list[str]:
    retried = {t: n for t, (_, n) in trials.items() if n}
    timeline.note(f"Tune: {len(trials)} trials, retried after a failure: {retried or 'none'}")
    found = [f"Tune trial {t} ended {s}" for t, (s, _) in trials.items() if s != "TERMINATED"]
    if losses and not retried:
        found.append("no trial failed: the node losses hit no running trial")
    return found


def store_violations(work: Path, plan: Plan) -> list[str]:
    sys.path.insert(0, str(Path(__file__).parent))
    from check_trial_runs import check_store
    from mlflow.tracking import MlflowClient

    check = check_store(
        MlflowClient(f"sqlite:///{work / 'mlflow.db'}"), EXPERIMENT, plan.trials, plan.epochs
    )
    print(f"MLflow store: {check.summary()}")
    return check.violations


def parse_plan(argv: list[str] | None) -> tuple[Plan, bool]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="fault")
    for name, value in asdict(Plan()).items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=type(value), help="(the preset's if not given)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, store)")
    args = parser.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k in asdict(Plan()) and v is not None}
    return replace(PRESETS[args.preset], **given), args.keep


def main(argv: list[str] | None = None) -> int:
    plan, keep = parse_plan(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the cluster is stopped
    if shutil.which("ray") is None or shutil.which("minesearch") is None:
        print("needs the `ray` and `minesearch` commands on PATH", file=sys.stderr)
        return 2
    # directly in /tmp: Ray's unix sockets live under it, and a socket path may not exceed 107 bytes
    work = Path(tempfile.mkdtemp(prefix="cluster-", dir="/tmp"))
    started = time.monotonic()
    violations: list[str] = []
    try:
        violations = fault_run(work, plan)
    except (RuntimeError, TimeoutError) as exc:
        violations = [str(exc)]
    finally:
        left = stop_own_cluster(work)
        if left:
            violations.append(f"processes of the cluster still alive: {left}")
        print(f"--- cluster stopped; {time.monotonic() - started:.0f} s in all")
    for violation in violations:
        print(f"VIOLATION: {violation}", file=sys.stderr)
    if violations or keep:
        print(f"work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print("FAILED" if violations else f"OK: {plan.trials} trials, each epoch logged once")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
