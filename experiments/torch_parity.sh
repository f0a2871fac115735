#!/bin/sh
# The statistical-parity runs of experiments/torch_parity.md on the `full` preset (generator v2):
# one framework, one paper row, seeds 0..SEEDS-1, pinned to one core so the other framework can
# run beside it on the second.
#
#     experiments/torch_parity.sh FRAMEWORK ROW [SEEDS] [CORE] [--config.KEY=VALUE ...]
#
# FRAMEWORK: ascjax | torch; arguments after CORE go to tools/compare_torch.py (they override the
# recipe below; the 64-mel comparison passes --config.data.front_end.n_mels=64).
#
# Results go to experiments/results/torch_parity_v2/ROW/FRAMEWORK/seed{s} (results.json and
# results_step*.json are tracked, checkpoints are not), and compare.{json,md} of that folder are
# rewritten from every finished seed of both frameworks. A finished seed is skipped, so the
# comparison grows across sessions: run it again with a larger SEEDS.
set -eu
FW=$1
ROW=$2
SEEDS=${3:-3}
CORE=${4:-0}
shift $(( $# < 4 ? $# : 4 ))
EPOCHS=${EPOCHS:-60}
OUT=${OUT:-experiments/results/torch_parity_v2/$ROW}
exec taskset -c "$CORE" ${PYTHON:-python} tools/compare_torch.py \
    --config=experiments/configs/paper.py:"$ROW" --seeds="$SEEDS" --out="$OUT" \
    --frameworks="$FW" --eval_fraction=0.8 --torch_threads=1 \
    --config.data.preset=full --config.data.clip_seconds=3 --config.train.batch_size=32 \
    --config.train.num_epochs="$EPOCHS" --config.train.warmup_epochs=2 \
    --config.train.augment.freq_masks=0 --config.train.augment.time_masks=0 \
    --config.eval.batch_size=100 "$@"
