"""`make demo`: BC-ResNet-Mod-1 without and with ResNorm on the `demo` synthetic set, two seeds
each (the config's `demo` option: 3-s crops, 64 mel bands, 50 epochs), two points at a time.

    python -m ascjax.sweep --sweep=experiments/sweeps/demo.py --root=workdirs/demo --parallel=2

Each seed is its own point (on CPU, one process per core beats vmapped seeds); the two points of
a row share a group, so the sweep prints one table of both rows, mean ± std over the seeds.
"""

ROWS = ('mod1', 'mod1_resnorm')
SEEDS = 2


def get_sweep():
    return [{'name': f'{row}.s{seed}', 'group': row,
             'config': f'experiments/configs/paper.py:{row},demo',
             'overrides': {'seed': seed}}
            for row in ROWS for seed in range(SEEDS)]
