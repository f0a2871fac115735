"""The synthetic ablation's setting (experiments/synthetic_ablation.md) through the one training
loop: the five Mod-1 normalisation rows, 3 seeds each (vmapped), the `full` preset on 3-s crops,
12 epochs, batch 32, peak lr 0.05, the training split held in device memory.

    python -m ascjax.sweep --sweep=experiments/sweeps/synthetic_ablation.py --root=runs/ablation

Each point is an ordinary `python -m ascjax.train` run; `data.in_memory` changes where the batches
are gathered, not what they hold (tests/test_feed.py), so a point can be rerun or resumed alone.
On an accelerator image without TensorFlow add `--extra=--config.data.store=wav` (log-mels then
come from the wav files, computed once on the device).
"""

ROWS = ('mod1', 'mod1_globalfreqnorm', 'mod1_freqin', 'mod1_preresnorm', 'mod1_resnorm')
SETTING = {'data.preset': 'full', 'data.clip_seconds': 3.0, 'data.in_memory': True,
           'num_seeds': 3, 'train.num_epochs': 12, 'train.warmup_epochs': 1.0,
           'train.batch_size': 32, 'train.learning_rate': 0.05}


def get_sweep():
    return [{'name': row, 'config': f'experiments/configs/paper.py:{row}',
             'overrides': dict(SETTING)} for row in ROWS]
