"""The device translator (REFERENCE.md §4): a U-Net with SubSpectralNorm, trained on paired
recordings (device A -> device X of the same segment) of the training split.

    python -m ascjax.tasks.translator --config=experiments/configs/translator.py --workdir=/tmp/tr
    python -m ascjax.tasks.translator --workdir=/tmp/tr --evaluate_only
    python -m ascjax.train --config=experiments/configs/paper.py:mod8_resnorm_translator \
        --config.translator.workdir=/tmp/tr --workdir=/tmp/mod8_tr

Options after the colon: `small` (features 8, depth 3: ~4x cheaper, for CPUs), `runlocal` (a smoke
run). The report's architecture, loss and schedule are not known (REFERENCE §4); every value below
is ours [U].
"""

import ml_collections

from experiments.configs import paper


def get_config(arg: str = '') -> ml_collections.ConfigDict:
    options = [o for o in arg.split(',') if o]
    config = ml_collections.ConfigDict()
    config.task = 'translator'          # ascjax.run builds its U-Net; the classifier is the default
    config.model = ml_collections.ConfigDict({
        'features': 16,          # [U] channels of the first level, doubled per level
        'depth': 3,              # [U] 2x2 down-sampling levels
        'sub_bands': 4,          # [U] SubSpectralNorm sub-bands, as the classifier's
        'residual': True,        # predict a correction of the input (starts at the identity)
        'dtype': 'float32',
    })
    config.data = paper.data_config()
    config.data.preset = 'full'
    config.source_device = 'a'
    config.train = ml_collections.ConfigDict({
        'optimizer': 'adam',     # [U]
        'num_epochs': 40,        # [U] epochs over the (A, X) training pairs
        'num_steps': 0,
        'batch_size': 16,
        'learning_rate': 1e-3,   # [U]
        'warmup_epochs': 1.0,    # then cosine to 0
        'weight_decay': 0.0,
        'weight_decay_include': ('.*',),
        'weight_decay_exclude': (),
        'loss': 'l1',            # 'l1' | 'l2' on log-mels
        'log_every_steps': 20,
        'checkpoint_every_steps': 200,
        'keep_checkpoints': 3,
    })
    config.eval = ml_collections.ConfigDict({'batch_size': 16})
    config.seed = 0
    config.num_seeds = 1
    config.seeds_at_once = 0           # seeds vmapped together; 0: all on GPU/TPU, 1 on CPU
    if 'small' in options:
        config.model.features = 8
    if 'runlocal' in options:
        config.data.preset = 'demo'
        config.train.num_epochs = 2
        config.train.log_every_steps = 5
    return config
