"""Searches on a simulated multi-node Ray cluster (`ray.cluster_utils.Cluster`, DESIGN §7).

A head with 0 CPUs and two worker nodes with 2 CPUs each, all on this machine. The driver joins it
through `SearchOptions(address=...)` as `minesearch run --address` would, and Ray's state API says
afterwards on which node every Ray Train worker ran (dead actors included).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster
from ray.util.state import list_actors

from minesearch.config import SearchSpec, SpaceSpec, parse_spec
from minesearch.search import SearchOptions, local_runtime_env, run_search

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NODE_CPUS = 2
OBJECT_STORE = 80 * 1024**2  # bytes per node; the trials move no data through it
SCRIPT_TIMEOUT_S = 420  # the fault run: ~100 s idle, up to 183 s measured under load
WORKER_CLASS = "RayTrainWorker"  # ray.train.v2._internal.execution.worker_group.worker


@dataclass(frozen=True)
class SimulatedCluster:
    address: str
    head_id: str
    worker_node_ids: frozenset[str]
    temp_dir: str


@pytest.fixture(scope="module")
def cluster() -> Iterator[SimulatedCluster]:
    """Head (0 CPU, dashboard for the state API) + 2 nodes x 2 CPUs; everything in a temp dir.

    The temp dir is short and directly in /tmp: Ray's unix sockets live in it and a socket path
    may not exceed 107 bytes (pytest's /tmp/pytest-of-root/pytest-NNN/... pushed the dashboard's
    sockets/dash_MetricsHead over). RAY_TMPDIR keeps `Cluster` from writing its address to
    /tmp/ray/ray_current_cluster, where any `ray.init()` on this machine (another test run) would
    find it and join this cluster; the cluster's processes inherit it, so Ray Train's
    PlacementGroupCleaner finds this cluster by that file too.
    """
    temp_dir = tempfile.mkdtemp(prefix="ms-cluster-", dir="/tmp")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_TMPDIR", temp_dir)
        env.delenv("RAY_ADDRESS", raising=False)
        (Path(temp_dir) / "ray").mkdir()  # where the address file goes
        sim = Cluster()
        try:
            gcs, dashboard, agent = free_ports(3)  # not Ray's defaults: other Rays may run here
            sim.add_node(
                num_cpus=0,
                object_store_memory=OBJECT_STORE,
                temp_dir=temp_dir,
                gcs_server_port=gcs,
                include_dashboard=True,
                dashboard_port=dashboard,
                dashboard_agent_listen_port=agent,
            )
            nodes = [
                sim.add_node(
                    num_cpus=NODE_CPUS, object_store_memory=OBJECT_STORE, temp_dir=temp_dir
                )
                for _ in range(2)
            ]
            sim.wait_for_nodes()
            assert sim.head_node is not None
            yield SimulatedCluster(
                address=sim.address,
                head_id=sim.head_node.node_id,
                worker_node_ids=frozenset(node.node_id for node in nodes),
                temp_dir=temp_dir,
            )
        finally:
            started = cluster_processes(temp_dir)  # before they go: renamed ones are children
            ray.shutdown()
            sim.shutdown()
    left = survivors(started, temp_dir, wait_s=20)
    assert not left, f"the cluster left processes behind: {left}"
    shutil.rmtree(temp_dir, ignore_errors=True)


def free_ports(n: int) -> list[int]:
    """n distinct free ports, all held until all are chosen. The head's GCS port is one of them:
    left to Ray, it once drew the very port just chosen (and released) for the dashboard, which
    then failed to bind (CI, 2026-12-06)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def cluster_processes(temp_dir: str) -> dict[int, tuple[str, str]]:
    """pid -> (start time, command line) of the processes whose command line names `temp_dir`
    (gcs_server, raylets, dashboard, ...) and of all their descendants: agents, dashboard modules
    and workers rename themselves (ray::DashboardAgent, ray::IDLE) and no longer name it."""
    procs: dict[int, tuple[int, str, str]] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        procs[int(proc.name)] = (int(fields[1]), fields[19], cmdline)  # ppid, starttime
    own = {pid for pid, (_, _, cmdline) in procs.items() if temp_dir in cmdline}
    while children := {pid for pid, (ppid, _, _) in procs.items() if ppid in own} - own:
        own |= children
    own.discard(os.getpid())
    return {pid: (procs[pid][1], procs[pid][2]) for pid in own}


def survivors(started: dict[int, tuple[str, str]], temp_dir: str, wait_s: float) -> list[str]:
    """Command lines of the cluster's processes still alive after a grace wait."""
    deadline = time.monotonic() + wait_s
    while True:
        now = cluster_processes(temp_dir)
        alive = [pid for pid, (start, _) in started.items() if is_alive(pid, start)]
        found = sorted({*now, *alive})
        if not found or time.monotonic() > deadline:
            return [f"{pid} {(now.get(pid) or started[pid])[1]}" for pid in found]
        time.sleep(0.5)


def is_alive(pid: int, start: str) -> bool:
    """Whether `pid` is alive and still the process that started at `start` (no pid reuse)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[19] == start and fields[0] != "Z"


def test_try_cluster_script_runs_a_job_on_a_ray_start_cluster() -> None:
    """scripts/try_cluster.sh: a 0-CPU head and two 1-CPU worker nodes (real raylets), `ray job
    submit -- minesearch run`, one worker node's raylet killed mid-search and replaced; MLflow
    holds every trial once with each epoch once (scripts/check_trial_runs.py), and the script
    ends its own cluster's processes (it checks that itself)."""
    script = subprocess.Popen(
        ["bash", str(REPO / "scripts" / "try_cluster.sh")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a timeout signals the whole group, so the script's trap runs
    )
    try:
        output, _ = script.communicate(timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(script.pid, signal.SIGTERM)
        output, _ = script.communicate(timeout=60)
        pytest.fail(f"try_cluster.sh took over {SCRIPT_TIMEOUT_S} s:\n{output[-5000:]}")
    assert script.returncode == 0, output[-5000:]
    assert "OK: 6 trials, each epoch logged once" in output


def tiny_spec(tmp_path: Path, name: str, workers: int, trials: int) -> SpaceSpec:
    """classes=6 splits evenly over 2 and 3 workers (uneven shards crash PML's all_gather)."""
    search: dict[str, Any] = {
        "trials": trials,
        "concurrent": 2,
        "sampler": {"name": "random", "seed": 0},
        "scheduler": {"name": "fifo"},
        "params": {"loss": "ContrastiveLoss", "lr": {"low": 1.0e-3, "high": 1.0e-2}},
    }
    if "control" in SearchSpec.model_fields:  # no default-recipe run: only the trials' workers
        search["control"] = False
    return parse_spec(
        {
            "name": name,
            "data": {"source": "digits", "split": {"val": 0.3, "test": 0.0, "seed": 0}},
            "model": {"backbone": "convnet", "embedding_dim": 16, "hidden_dim": 32},
            "train": {"epochs": 1, "batch": {"classes": 6, "per_class": 4}, "workers": workers},
            "search": search,
            "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "cluster"},
        }
    )


def search_on(cluster: SimulatedCluster, spec: SpaceSpec, tmp_path: Path) -> None:
    """`minesearch run --address` in-process. run_search applies the fast Train health-check poll
    only to a local Ray (a cluster's env belongs to its job), so the test passes it itself."""
    options = SearchOptions(
        address=cluster.address,
        storage_path=str(tmp_path / "ray"),
        ray_init={"runtime_env": local_runtime_env()},
    )
    result = run_search(spec, None, options).result
    assert len(result.searched) == spec.search.trials
    assert not result.count("failed")


def train_workers(cluster: SimulatedCluster) -> dict[str, tuple[str, str]]:
    """Every Ray Train worker actor the cluster has seen: actor id -> (placement group, node)."""
    actors = list_actors(
        address=cluster.address,
        filters=[("class_name", "=", WORKER_CLASS)],
        detail=True,
        limit=10_000,
        raise_on_missing_output=False,
    )
    return {a.actor_id: (str(a.placement_group_id), str(a.node_id)) for a in actors}


def nodes_by_group(workers: dict[str, tuple[str, str]]) -> dict[str, list[str]]:
    """Placement group (one per trial: max_failures is 0) -> the nodes of its workers."""
    groups: dict[str, list[str]] = {}
    for group, node in workers.values():
        groups.setdefault(group, []).append(node)
    return groups


class AliveWorkerSampler:
    """Polls the live Train workers while a search runs: which groups ran at the same time."""

    def __init__(self, cluster: SimulatedCluster, period_s: float = 0.5) -> None:
        self.snapshots: list[dict[str, list[str]]] = []
        self._address = cluster.address
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> AliveWorkerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                alive = list_actors(
                    address=self._address,
                    filters=[("class_name", "=", WORKER_CLASS), ("state", "=", "ALIVE")],
                    detail=True,
                    raise_on_missing_output=False,
                )
            except Exception:  # the state API may be briefly unavailable: poll again
                continue
            workers = {a.actor_id: (str(a.placement_group_id), str(a.node_id)) for a in alive}
            self.snapshots.append(nodes_by_group(workers))


def parent_tags(tmp_path: Path, name: str) -> dict[str, str]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("cluster")
    assert experiment is not None
    parent = client.search_runs(
        [experiment.experiment_id], filter_string=f"attributes.run_name = '{name}'"
    )[0]
    assert parent.info.status == "FINISHED"
    return dict(parent.data.tags)


def test_two_trials_run_at_once_each_on_its_own_node(
    cluster: SimulatedCluster, tmp_path: Path
) -> None:
    """2 workers x 1 CPU per trial, 4 CPUs in all: two trials at once, and Train's PACK placement
    keeps each trial's workers on one node, so the two trials take one node each."""
    spec = tiny_spec(tmp_path, "cluster-pack", workers=2, trials=2)
    before = set(train_workers(cluster))
    with AliveWorkerSampler(cluster) as sampler:
        search_on(cluster, spec, tmp_path)
    tags = parent_tags(tmp_path, "cluster-pack")
    assert (tags["cluster.cpus"], tags["concurrent"]) == ("4", "2")

    workers = {k: v for k, v in train_workers(cluster).items() if k not in before}
    groups = nodes_by_group(workers)
    print(f"\nworkers=2: placement group -> worker nodes {groups}")
    assert len(groups) == 2 and all(len(nodes) == 2 for nodes in groups.values())
    trial_nodes = [set(nodes) for nodes in groups.values()]
    assert all(len(nodes) == 1 for nodes in trial_nodes), "a trial's workers were split"
    assert set.union(*trial_nodes) == cluster.worker_node_ids  # one trial per node

    together = [s for s in sampler.snapshots if len(s) == 2]
    assert together, f"the two trials never ran at once ({len(sampler.snapshots)} snapshots)"
    assert any(
        {node for nodes in s.values() for node in nodes} == cluster.worker_node_ids
        for s in together
    )


def test_a_trial_larger_than_a_node_spreads_over_both(
    cluster: SimulatedCluster, tmp_path: Path
) -> None:
    """3 workers x 1 CPU fit no single 2-CPU node: the trial's placement group spreads 2 + 1, and
    concurrency() lets one trial run at a time (4 CPUs // 3)."""
    spec = tiny_spec(tmp_path, "cluster-spread", workers=3, trials=1)
    before = set(train_workers(cluster))
    search_on(cluster, spec, tmp_path)
    tags = parent_tags(tmp_path, "cluster-spread")
    assert (tags["cluster.cpus"], tags["concurrent"]) == ("4", "1")

    workers = {k: v for k, v in train_workers(cluster).items() if k not in before}
    groups = nodes_by_group(workers)
    print(f"\nworkers=3: placement group -> worker nodes {groups}")
    assert len(groups) == 1
    (nodes,) = groups.values()
    assert set(nodes) == cluster.worker_node_ids
    assert sorted(Counter(nodes).values()) == [1, 2]
    assert cluster.head_id not in nodes
