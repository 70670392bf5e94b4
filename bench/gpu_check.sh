#!/usr/bin/env bash
# The mixed-precision GPU check of issue 20, in one process (bench/gpu_check.py says what it prints).
#   on a lent GPU machine, from the repository root:  bash bench/gpu_check.sh [--json $OUT/gpu_check.json]
#   here, tiny and on the CPU (tests/test_bench_gpu_check.py):  bash bench/gpu_check.sh --dry-run
# Needs torch (and transformers; timm where there): PML and faiss are stood in for when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" bench/gpu_check.py "$@"
