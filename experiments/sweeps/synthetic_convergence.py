"""The convergence check of the synthetic ablation (experiments/synthetic_ablation.md): the rows
whose accuracy still moved over the last 20% of the 60-epoch runs, trained for 120 epochs (seed 0,
otherwise the ablation's setting), so that their 60-epoch results can be set against twice the
budget.

    python -m ascjax.sweep --sweep=experiments/sweeps/synthetic_convergence.py \\
        --root=runs/convergence

Compare each point's results.json with the ablation's point of the same row and seed
(runs/ablation/<row>.s0); the checkpoint at 80% of the steps is kept for the same last-20% test.
"""

from experiments.sweeps import synthetic_ablation

ROWS = ('mod1_freqin', 'mod1_globalfreqnorm', 'mod1_freqmixstyle')
EPOCHS = 120


def get_sweep():
    return [{'name': f'{name}.e{EPOCHS}.s0', 'group': f'{name}.e{EPOCHS}',
             'config': f'experiments/configs/paper.py:{synthetic_ablation.ROWS[name]}',
             'overrides': {**synthetic_ablation.SETTING, 'seed': 0,
                           'train.num_epochs': EPOCHS,
                           'train.checkpoint_every_steps': EPOCHS * 85 * 4 // 5}}
            for name in ROWS]
