"""The convergence check of the synthetic ablation (experiments/synthetic_ablation.md): the five
Mod-1 normalisation rows of the paper and the two Freq-MixStyle rows at twice the ablation's
budget, 120 epochs; the five Mod-1 rows at 96 epochs (80% of 120, annealed to 0 like any run:
the last-20% test across budgets); the two rows that still moved in the last 20% of 120 epochs
(no normalisation, ResNorm) at 240 epochs; otherwise the ablation's setting. Every row can so be set
against its next longer budget, and the paper's claims judged at each budget.

    python -m ascjax.sweep --sweep=experiments/sweeps/synthetic_convergence.py \
        --root=runs/convergence [--only=mod1.e240.s0,...]
    python tools/ablation_report.py --sweep=experiments/sweeps/synthetic_convergence.py \
        --root=runs/convergence --eval_at_checkpoint

Each point keeps the checkpoint at 80% of its steps (8160 of 10200 at 120 epochs, 16320 of
20400 at 240) for the issue's last-20% test.
"""

from experiments.sweeps import synthetic_ablation

# budget (epochs) -> row -> seeds. At 120 epochs: Global FreqNorm moved +4.9 from 60 epochs
# (seed 0), no normalisation +4.4 (3 seeds). At 120 epochs the last 20% of the steps still moved
# no normalisation by +5.2 and ResNorm by +4.3, more than their seed std: those two rows at 96
# epochs and at 240 (seed 0 run at 240; seeds 1-2 as time allows), then the other three paper
# rows at 96 epochs, so that every Mod-1 row has the across-budget test. The Freq-MixStyle rows: the
# two seeds each that fitted (seed 0 of the plain row was listed earlier and never ran).
#
# Seeds 3-4 of the two rows of the headline claim (no normalisation, ResNorm) at 96 and 120 epochs:
# with 3 seeds ResNorm's 96 -> 120 change (-1.9 +- 0.8) failed against a seed std (0.6) that is
# itself estimated from 3 values. Added after that failure and decided before they ran: the test is
# read again on all 5 seeds of both rows, and reported whichever way it falls.
BUDGETS = {
    96: {'mod1': (0, 1, 2, 3, 4), 'mod1_globalfreqnorm': (0, 1, 2), 'mod1_freqin': (0, 1, 2),
         'mod1_preresnorm': (0, 1, 2), 'mod1_resnorm': (0, 1, 2, 3, 4)},
    120: {'mod1': (0, 1, 2, 3, 4), 'mod1_globalfreqnorm': (0, 1, 2), 'mod1_freqin': (0, 1, 2),
          'mod1_preresnorm': (0, 1, 2), 'mod1_resnorm': (0, 1, 2, 3, 4),
          'mod1_freqmixstyle': (1, 2), 'mod1_resnorm_freqmixstyle': (0, 1)},
    240: {'mod1': (0, 1, 2), 'mod1_resnorm': (0, 1, 2)},
}


def get_sweep():
    return [{'name': f'{name}.e{epochs}.s{seed}', 'group': f'{name}.e{epochs}',
             'config': f'experiments/configs/paper.py:{synthetic_ablation.ROWS[name]}',
             'overrides': {**synthetic_ablation.SETTING, 'seed': seed,
                           'train.num_epochs': epochs,
                           'train.checkpoint_every_steps':
                               epochs * synthetic_ablation.STEPS_PER_EPOCH * 4 // 5}}
            for epochs, rows in BUDGETS.items() for name, seeds in rows.items()
            for seed in seeds]
