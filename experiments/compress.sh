#!/bin/sh
# Row mod8_resnorm_kd_compressed, phase by phase: teacher -> its logits -> KD student -> one-shot
# 89% pruning (fine-tuned with KD) -> 8-bit QAT (masks kept, KD) -> size report -> int8 export.
#
#     experiments/compress.sh OUT [--config.FIELD=VALUE ...]
#
# Every phase is an ordinary `python -m ascjax.train` run in its own workdir under OUT, so each one
# resumes after a kill and can be inspected with `python -m ascjax.evaluation`. Flags after OUT go
# to every training phase (data, batch size, ...); TRAIN_FLAGS only to the teacher and the student
# (the fine-tunes keep their own learning rates, see the `prune` and `qat` options in the config).
# Epochs: EPOCHS for the teacher and the student, FT_EPOCHS for the pruning and QAT fine-tunes
# (default: the config's). Example, the synthetic report of experiments/synthetic_ablation.md:
#
#     EPOCHS=6 FT_EPOCHS=2 TRAIN_FLAGS="--config.train.learning_rate=0.05 \
#         --config.train.warmup_epochs=1" experiments/compress.sh runs/compressed \
#         --config.data.preset=full --config.data.clip_seconds=3 --config.train.batch_size=32
set -eu
OUT=$1
shift
PY=${PYTHON:-python}
CFG=experiments/configs/paper.py
epochs=${EPOCHS:+--config.train.num_epochs=$EPOCHS}
ft_epochs=${FT_EPOCHS:+--config.train.num_epochs=$FT_EPOCHS}
logits=$OUT/teacher_logits.npz
kd="--config.train.distill.teacher_logits=$logits"

train=${TRAIN_FLAGS:-}

$PY -m ascjax.train --config=$CFG:mod8_resnorm --workdir="$OUT/teacher" "$@" $train $epochs
[ -f "$logits" ] || $PY -m ascjax.tasks.teacher_logits --workdir="$OUT/teacher" --out="$logits"
$PY -m ascjax.train --config=$CFG:mod8_resnorm_kd --workdir="$OUT/kd" $kd "$@" $train $epochs
$PY -m ascjax.train --config=$CFG:mod8_resnorm_kd_compressed,prune --workdir="$OUT/pruned" \
    --config.train.init_from="$OUT/kd" $kd "$@" $ft_epochs
$PY -m ascjax.train --config=$CFG:mod8_resnorm_kd_compressed,qat --workdir="$OUT/qat" \
    --config.train.init_from="$OUT/pruned" $kd "$@" $ft_epochs
$PY -m ascjax.tasks.complexity --workdir="$OUT/qat" --json > "$OUT/qat/complexity.json"
$PY -m ascjax.tasks.complexity --workdir="$OUT/qat"
$PY -m ascjax.tasks.export --workdir="$OUT/qat"
$PY -m ascjax.evaluation "$OUT/teacher" "$OUT/kd" "$OUT/pruned" "$OUT/qat"
