"""A paper row shrunk to the 8 kHz, 1-s test fixtures, for end-to-end tests of the training loop.

    python -m ascjax.train --config=tests/tiny_config.py:mod1_resnorm --workdir=DIR \
        --config.data.manual_dir=FIXTURE --config.data.data_dir=CACHE
"""

from experiments.configs import paper


def get_config(arg: str = 'mod1_resnorm'):
    config = paper.get_config(arg)
    config.data.clip_seconds = 1.0
    config.data.front_end.update(sample_rate=8000, n_fft=256, win_length=256, hop_length=128,
                                 n_mels=32)
    config.train.batch_size = 4
    config.train.learning_rate = 0.01   # small: tests compare runs step by step
    config.eval.batch_size = 4
    config.train.num_steps = 6
    config.train.warmup_epochs = 1.0
    config.train.log_every_steps = 1
    config.train.checkpoint_every_steps = 2
    config.train.augment.update(freq_mask_width=4, time_mask_width=5, time_roll=5)
    return config
