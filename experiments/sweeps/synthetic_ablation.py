"""The synthetic ablation (experiments/synthetic_ablation.md) through the one training loop: the
five Mod-1 normalisation rows of the paper, Freq-MixStyle without and with ResNorm, Mod-8 without
and with ResNorm, and Mod-1 + ResNorm with the device translator, 3 seeds each, on the `full`
preset of generator v2, with the 60-epoch recipe of the PyTorch parity runs
(experiments/torch_parity.sh: 3-s crops, 64 mel bands, batch 32, no SpecAugment, a checkpoint
kept at 80% of the steps for the convergence check).

The translator rows need the translator trained first, on the same features:

    python -m ascjax.tasks.translator --config=experiments/configs/translator.py:small \
        --workdir=runs/translator_v2 --config.data.clip_seconds=3 \
        --config.data.front_end.n_mels=64
    python -m ascjax.sweep --sweep=experiments/sweeps/synthetic_ablation.py --root=runs/ablation

Seed s of a row is its own point (`config.seed = s`, one seed per process: on CPU that is faster
than vmapped seeds), the config of the parity comparison's ascjax seed s. Points of one row share
a `group`; the sweep pools each group into one row, mean ± std over its seeds (groups.md). On a
2-core machine run two processes, `taskset -c 0 ... --only=...` and `taskset -c 1 ... --only=...`
with disjoint points: XLA's CPU kernels split their work by the cores they may use, so a run is
bit-for-bit repeatable for a given core count, and another core count gives another float
rounding (and, after some steps of SGD, another run of the same statistics).
"""

ROWS = {
    'mod1': 'mod1',
    'mod1_globalfreqnorm': 'mod1_globalfreqnorm',
    'mod1_freqin': 'mod1_freqin',
    'mod1_preresnorm': 'mod1_preresnorm',
    'mod1_resnorm': 'mod1_resnorm',
    'mod1_freqmixstyle': 'mod1,freqmixstyle',
    'mod1_resnorm_freqmixstyle': 'mod1_resnorm,freqmixstyle',
    'mod8': 'mod8',
    'mod8_resnorm': 'mod8_resnorm',
    'mod1_resnorm_translator': 'mod1_resnorm,translator',
}
TRANSLATOR = 'runs/translator_v2'   # the translator's workdir (command above)
SEEDS = 3
STEPS_PER_EPOCH = 2750 // 32   # the `full` preset's 2,750 training clips in batches of 32
SETTING = {'data.preset': 'full', 'data.clip_seconds': 3.0, 'data.front_end.n_mels': 64,
           'train.batch_size': 32, 'train.num_epochs': 60, 'train.warmup_epochs': 2.0,
           'train.augment.freq_masks': 0, 'train.augment.time_masks': 0,
           'train.checkpoint_every_steps': 60 * STEPS_PER_EPOCH * 4 // 5,   # 4080: at 80%
           'eval.batch_size': 100, 'num_seeds': 1}


def get_sweep():
    return [{'name': f'{name}.s{seed}', 'group': name,
             'config': f'experiments/configs/paper.py:{row}',
             'overrides': {**SETTING, 'seed': seed,
                           **({'translator.workdir': TRANSLATOR} if 'translator' in row else {})}}
            for name, row in ROWS.items() for seed in range(SEEDS)]
