#!/usr/bin/env bash
# Try README "Scaling" / docs/cluster.md on a cluster of real Ray processes on this machine, and
# kill one of its nodes mid-search: a head with 0 CPUs plus two `ray start --address` worker nodes
# of 1 CPU each; `ray job submit --working-dir <repo> -- minesearch run SPACE` (6 single-worker
# trials of 4 epochs, 2 at once, MLflow in a SQLite file and Ray storage in the work dir); once
# half the trials have started and one is mid-way, SIGKILL the raylet of a worker node running a
# trial and start a replacement node. Exit 0 when the job SUCCEEDED, Tune retried the trials the
# loss hit, and MLflow holds each trial once with each epoch logged once
# (scripts/check_trial_runs.py). The cluster's own processes are always stopped; never `ray stop`.
#
# Usage: scripts/try_cluster.sh                 the fault run (about 100 s on an idle 2-core machine)
#        scripts/try_cluster.sh --preset soak   50 trials, 4 at once, 2 node losses
#        scripts/try_cluster.sh --node-losses 0 --keep    any other parameter: --help
#        KEEP=1 scripts/try_cluster.sh          keep the work dir (/tmp/cluster-*: logs, store)
#
# The work is scripts/cluster_faults.py's; scripts/README.md says what it settles about Ray 2.60
# (token auth, RAY_TMPDIR, why not `ray stop`).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python}
args=("$@")
if [[ -n ${KEEP:-} ]]; then
    args+=(--keep)
fi
# This tree first: the `ray start` nodes and the job's `minesearch` import the code being tried.
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" "$REPO/scripts/cluster_faults.py" "${args[@]}"
