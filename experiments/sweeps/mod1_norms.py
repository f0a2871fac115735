"""The five Mod-1 normalisation rows of the paper's table: no normalisation, Global FreqNorm,
FreqIN, Pre-ResNorm and ResNorm (experiments/configs/paper.py), 3 seeds each (vmapped in one run,
so each row reports a mean and a std over seeds) on the synthetic `full` preset.

Run it from the repository root:

    python -m ascjax.sweep --sweep=experiments/sweeps/mod1_norms.py --root=runs/mod1_norms

It writes runs/mod1_norms/{commands.txt,results.csv,results.md}; results.md (the paper's table
over the five rows) feeds experiments/synthetic_ablation.md.
"""

ROWS = ('mod1', 'mod1_globalfreqnorm', 'mod1_freqin', 'mod1_preresnorm', 'mod1_resnorm')


def get_sweep():
    return [{'name': row, 'config': f'experiments/configs/paper.py:{row}',
             'overrides': {'data.preset': 'full', 'num_seeds': 3}} for row in ROWS]
