"""ResNorm's shortcut weight lambda (ResNorm(x) = lambda * x + FreqIN(x)) for the Mod-1 ResNorm row:
lambda in {0.05, 0.1, 0.2, 0.5}; 0.1 is the paper's value (REFERENCE.md §3.1, unverified).

Same data and seeds as experiments/sweeps/mod1_norms.py (synthetic `full` preset, 3 seeds), so
the lambda = 0.1 point repeats that sweep's mod1_resnorm row. Run it from the repository root:

    python -m ascjax.sweep --sweep=experiments/sweeps/resnorm_lambda.py --root=runs/resnorm_lambda
"""

LAMBDAS = (0.05, 0.1, 0.2, 0.5)


def get_sweep():
    return [{'name': f'resnorm_lambda{lam}', 'config': 'experiments/configs/paper.py:mod1_resnorm',
             'overrides': {'model.norm_lambda': lam, 'data.preset': 'full', 'num_seeds': 3}}
            for lam in LAMBDAS]
