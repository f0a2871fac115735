"""The convergence check of the synthetic ablation (experiments/synthetic_ablation.md): the rows
whose accuracy still moved over the last 20% of the 60-epoch runs, trained for 120 epochs (seed 0,
otherwise the ablation's setting), so that their 60-epoch results can be set against twice the
budget.

    python -m ascjax.sweep --sweep=experiments/sweeps/synthetic_convergence.py \\
        --root=runs/convergence

Compare each point's results.json with the ablation's point of the same row and seed
(runs/ablation/<row>.s<seed>); the checkpoint at 80% of the steps is kept for the same last-20% test.
"""

from experiments.sweeps import synthetic_ablation

# row -> seeds. Global FreqNorm had not converged at 60 epochs (+4.9 at 120, seed 0): its row,
# and no normalisation beside it, at 120 epochs with 3 seeds each.
ROWS = {'mod1_freqin': (0,), 'mod1_globalfreqnorm': (0, 1, 2), 'mod1_freqmixstyle': (0,),
        'mod1': (0, 1, 2)}
EPOCHS = 120


def get_sweep():
    return [{'name': f'{name}.e{EPOCHS}.s{seed}', 'group': f'{name}.e{EPOCHS}',
             'config': f'experiments/configs/paper.py:{synthetic_ablation.ROWS[name]}',
             'overrides': {**synthetic_ablation.SETTING, 'seed': seed,
                           'train.num_epochs': EPOCHS,
                           'train.checkpoint_every_steps':
                               EPOCHS * synthetic_ablation.STEPS_PER_EPOCH * 4 // 5}}
            for name, seeds in ROWS.items() for seed in seeds]
