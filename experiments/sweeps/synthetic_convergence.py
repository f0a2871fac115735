"""The convergence check of the synthetic ablation (experiments/synthetic_ablation.md): the five
Mod-1 normalisation rows of the paper at twice the ablation's budget, 120 epochs (otherwise the
ablation's setting), so that every 60-epoch row can be set against 120 epochs and the paper's
claims judged at the longer budget too.

    python -m ascjax.sweep --sweep=experiments/sweeps/synthetic_convergence.py \
        --root=runs/convergence
    python tools/ablation_report.py --sweep=experiments/sweeps/synthetic_convergence.py \
        --root=runs/convergence --eval_step=8160

The checkpoint at 80% of the steps (8160) is kept for the issue's last-20% test.
"""

from experiments.sweeps import synthetic_ablation

# row -> seeds. Global FreqNorm moved +4.9 from 60 to 120 epochs (seed 0), and no normalisation
# +4.4 (3 seeds): the paper's rows at 120 epochs, 3 seeds each where time allowed (FreqIN seed 0:
# +1.2 from its 3-seed mean, inside the spread; Pre-ResNorm 2 seeds), and Freq-MixStyle (seed 0,
# not run yet).
ROWS = {'mod1': (0, 1, 2), 'mod1_globalfreqnorm': (0, 1, 2), 'mod1_freqin': (0,),
        'mod1_preresnorm': (0, 1), 'mod1_resnorm': (0, 1, 2), 'mod1_freqmixstyle': (0,)}
EPOCHS = 120


def get_sweep():
    return [{'name': f'{name}.e{EPOCHS}.s{seed}', 'group': f'{name}.e{EPOCHS}',
             'config': f'experiments/configs/paper.py:{synthetic_ablation.ROWS[name]}',
             'overrides': {**synthetic_ablation.SETTING, 'seed': seed,
                           'train.num_epochs': EPOCHS,
                           'train.checkpoint_every_steps':
                               EPOCHS * synthetic_ablation.STEPS_PER_EPOCH * 4 // 5}}
            for name, seeds in ROWS.items() for seed in seeds]
