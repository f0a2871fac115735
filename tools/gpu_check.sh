#!/bin/sh
# The GPU check, on a device machine (JAX image without TensorFlow): the benchmark sections that
# need no TF (train step / inference per conv_impl, single layers, seed-parallel, translator cost),
# written to $OUT/gpu_results.json after every section, so a run cut off keeps what it measured.
#
#   tools/gpu_check.sh [SECONDS]      (run from the repo root; wheels in .whl/ are installed first)
set -u
OUT=${OUT:-bench}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
fi
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout "${1:-420}" python3 tools/benchmark.py --only=models,seeds,translator --slow \
  --repeats=20 --out="$OUT/gpu_results.json"
echo "exit $?"
