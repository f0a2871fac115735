#!/bin/sh
# The GPU check, on a device machine (JAX image with PyTorch, without TensorFlow): the benchmark
# sections that need no TF -- train steps at B = 32 and 256 and B = 1 latency per conv_impl, the
# PyTorch reference interleaved (torch on CUDA: NCHW, channels_last, torch.compile), single layers, seed-parallel,
# compile time (fresh processes: cold, then warm persistent cache), translator cost, the training
# loop (Mod-8 + ResNorm through python -m ascjax.train's code path: the TAU20 epoch estimate with
# the pipeline) -- written to $OUT/gpu_results.json after every record, so a run cut off keeps
# what it measured.
#
#   tools/gpu_check.sh [SECONDS]      (run from the repo root; wheels in .whl/ are installed first)
#
# Without a GPU (no nvidia-smi, or GPU_CHECK_QUICK=1) it runs the same sections with CPU settings
# that fit minutes, not hours: train batch 8 only, 2 repeats, 5 latency runs, no torch.compile and
# no grouped-conv slow path (tests/test_benchmark.py runs it so; the GPU settings stay untouched).
set -u
OUT=${OUT:-bench}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
fi
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
# JAX and torch share the GPU: JAX preallocates this share (default .75), torch gets the rest.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-.45}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' \
  || echo 'torch missing: JAX records only'
if [ "${GPU_CHECK_QUICK:-0}" = 1 ] || ! nvidia-smi >/dev/null 2>&1; then
  echo 'no GPU: CPU settings (batch 8, 2 repeats, no torch.compile)'
  SETTINGS="--train_batch_sizes=8 --repeats=2 --latency_runs=5 --notorch_compile"
  LOOP_ROW=mod1_resnorm
else
  SETTINGS="--slow --train_batch_sizes=32,256 --repeats=20"
  LOOP_ROW=mod8_resnorm
fi
# loop last: the real training loop for the TAU20 epoch estimate with the feed (without
# TensorFlow, as on a device image: the wav files, held in device memory)
# shellcheck disable=SC2086
timeout "${1:-540}" python3 tools/benchmark.py --only=models,seeds,compile,translator,loop \
  $SETTINGS --loop_row=$LOOP_ROW --out="$OUT/gpu_results.json"
echo "exit $?"
