#!/usr/bin/env bash
# One prepared, time-boxed check of the paper's GPU speed claims and of an AMP kill-and-resume:
#   bash scripts/gpu-check.sh [--device cuda|cuda:N|cpu] [--quick] [--out DIR] [--budget-s S]
# Writes <out>/gpu-<device>.csv and .md (default out: results/manual/throughput; with --quick:
# results/ci/throughput). Full run: at most ~8 minutes on one H100 / H200 (budget 420 s of measurement
# plus start-up); --device cpu --quick runs the same code path at tiny sizes in about 2 minutes (CI).
# Needs torch, torchvision, timm, numpy, pandas and pyyaml; see docs/gpu.md. PYTHON picks the interpreter
# (default: .venv/bin/python if there, else python3); the suite is imported from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then
  python="$PYTHON"
elif [ -x .venv/bin/python ]; then
  python=.venv/bin/python
else
  python=python3
fi
# A copy without .git (a rented GPU machine) records the commit given here, if any.
if [ -z "${RMNET_SUITE_COMMIT:-}" ] && git rev-parse HEAD >/dev/null 2>&1; then
  RMNET_SUITE_COMMIT=$(git rev-parse HEAD)
  export RMNET_SUITE_COMMIT
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$python" -m replication.experiments.gpu_check "$@"
