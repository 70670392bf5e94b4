#!/usr/bin/env bash
# Try README "Running on a Ray cluster" against a one-node `ray start --head` cluster on this
# machine: start the head, `ray job submit --working-dir <repo> -- minesearch run SPACE`, wait for
# the job, check it SUCCEEDED and that MLflow holds the parent run and one child per trial, and
# always stop the cluster again.
#
# Usage: scripts/try_cluster.sh        (KEEP=1 keeps the work dir: logs, MLflow store, storage)
#
# Everything lives in a fresh temp dir (Ray's --temp-dir, the space file, MLflow's SQLite store,
# trial storage), and every port is a free one, so it can run beside other Ray instances.
#
# Token auth (Ray 2.60): `ray start` turns it on when RAY_AUTH_MODE is unset but a token exists
# (~/.ray/auth_token is written by any earlier local `ray.init()`), while `ray job` only sends the
# token when RAY_AUTH_MODE=token, else the job server answers 401 "Missing authentication token".
# So the mode is made explicit here: RAY_AUTH_MODE=token with a token of this run's own
# (RAY_AUTH_TOKEN_PATH), exported to `ray start` and `ray job` alike.
#
# Stopping: `ray stop` would stop EVERY Ray on this machine (it kills raylet/gcs_server/... by
# process name), including other users' and test runs'. Instead this script ends the processes of
# its own cluster: those whose command line names its temp dir, and all their descendants (agents,
# dashboard modules and workers rename themselves, e.g. ray::DashboardAgent).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Directly in /tmp, whatever TMPDIR says: Ray's unix sockets live under it, and a socket path may
# not exceed 107 bytes.
WORK=$(mktemp -d /tmp/try_cluster.XXXXXX)
JOB_TIMEOUT_S=${JOB_TIMEOUT_S:-240}
PYTHON=${PYTHON:-python}

stop_own_cluster() {
    OWN_DIR="$WORK" "$PYTHON" - <<'EOF'
import os, signal, time

work = os.environ["OWN_DIR"]


def own_processes() -> set[int]:
    """Processes naming the work dir, plus their descendants (the ones that renamed themselves)."""
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        procs[int(entry)] = (ppid, cmdline)
    own = {pid for pid, (_, cmdline) in procs.items() if work in cmdline}
    while True:
        children = {pid for pid, (ppid, _) in procs.items() if ppid in own} - own
        if not children:
            return own - {os.getpid()}
        own |= children


for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
    for pid in own_processes():
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + wait_s
    while own_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
left = own_processes()
if left:
    raise SystemExit(f"processes of the cluster still alive: {sorted(left)}")
EOF
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    echo "--- stopping the cluster (processes of $WORK)"
    stop_own_cluster || status=1
    echo "--- done after $SECONDS s (exit $status)"
    if [[ $status -eq 0 && -z ${KEEP:-} ]]; then
        rm -rf "$WORK"
    else
        echo "work dir kept: $WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

unset RAY_ADDRESS RAY_API_SERVER_ADDRESS RAY_AUTH_TOKEN
# The cluster's processes inherit this: Ray's default temp dir, where `ray start` writes the
# cluster's address (ray_current_cluster), is then the work dir. Ray Train's PlacementGroupCleaner
# finds its cluster through that file (or, without it, through a scan for gcs_server processes,
# which fails with "Found multiple active Ray instances" when another Ray runs on this machine).
export RAY_TMPDIR="$WORK"
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH="$WORK/auth_token"
(umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_hex(32), end="")' >"$RAY_AUTH_TOKEN_PATH")

GCS_PORT=$(free_port)
DASHBOARD_PORT=$(free_port)
AGENT_PORT=$(free_port)
CLIENT_PORT=$(free_port)
DASHBOARD="http://127.0.0.1:$DASHBOARD_PORT"

echo "--- ray start --head (temp dir $WORK/ray, dashboard $DASHBOARD)"
ray start --head --num-cpus=2 --port="$GCS_PORT" \
    --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" --include-dashboard=true \
    --dashboard-agent-listen-port="$AGENT_PORT" --ray-client-server-port="$CLIENT_PORT" \
    --temp-dir="$WORK/ray" --disable-usage-stats >"$WORK/ray_start.log" 2>&1 ||
    { cat "$WORK/ray_start.log"; exit 1; }

# The control run (the default recipe trained after the search) is left out where the spec has
# it, so that the job trains just the two trials.
CONTROL=$(cd "$REPO" && "$PYTHON" -c 'from minesearch.config import SearchSpec
print("  control: false" if "control" in SearchSpec.model_fields else "")')
cat >"$WORK/space.yaml" <<EOF
name: try-cluster
data: {source: digits, split: {val: 0.3, test: 0.0, seed: 0}}
model: {backbone: convnet, embedding_dim: 16, hidden_dim: 32}
train: {epochs: 1, batch: {classes: 4, per_class: 6}, workers: 2, cpus_per_worker: 0.5}
search:
  trials: 2
  concurrent: 2
  sampler: {name: random, seed: 0}
  scheduler: {name: fifo}
$CONTROL
  params:
    loss: [ContrastiveLoss, TripletMarginLoss]
    lr: {low: 1.0e-3, high: 1.0e-2, log: true}
tracking: {uri: "sqlite:///$WORK/mlflow.db", experiment: try-cluster}
EOF

# Ray Train polls its workers every 2 s and a worker's second report waits for the poll: most of a
# tiny epoch. A job sets it for itself (run_search only sets it for a local Ray).
RUNTIME_ENV='{"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}}'
JOB_ID="try-cluster-$(basename "$WORK" | cut -d. -f2)"
echo "--- ray job submit $JOB_ID"
started=$SECONDS
submit_status=0
timeout "$JOB_TIMEOUT_S" ray job submit --address "$DASHBOARD" --submission-id "$JOB_ID" \
    --working-dir "$REPO" --runtime-env-json "$RUNTIME_ENV" -- \
    minesearch run "$WORK/space.yaml" --storage-path "$WORK/storage" || submit_status=$?
echo "--- job ended after $((SECONDS - started)) s (ray job submit exit $submit_status)"

# `ray job submit` exits 1 when the job it tails fails; `ray job status` says it in words.
job_status=$(ray job status --address "$DASHBOARD" --log-color false "$JOB_ID" 2>&1 || true)
if [[ $submit_status -ne 0 || $job_status != *"Job '$JOB_ID' succeeded"* ]]; then
    echo "$job_status" >&2
    echo "FAILED: the job did not succeed" >&2
    exit 1
fi

echo "--- MLflow runs"
"$PYTHON" - "sqlite:///$WORK/mlflow.db" <<'EOF'
import sys

from mlflow.tracking import MlflowClient

client = MlflowClient(sys.argv[1])
experiment = client.get_experiment_by_name("try-cluster")
assert experiment is not None, "no MLflow experiment try-cluster"
runs = client.search_runs([experiment.experiment_id])
parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
trials = [r for r in children if r.data.tags.get("minesearch.role") != "control"]
for run in runs:
    print(f"{run.info.run_name:40} {run.info.status:9} {run.data.tags.get('mlflow.parentRunId', '(parent)')}")
assert len(parents) == 1 and parents[0].info.status == "FINISHED", parents
assert len(trials) == 2, [r.info.run_name for r in children]
assert all(c.info.status == "FINISHED" for c in children), [r.info.status for r in children]
assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
print("OK: 1 parent + 2 trial runs, all FINISHED")
EOF
