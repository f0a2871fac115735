"""Trains and evaluates one experiment config.

    python -m ascjax.train --config=experiments/configs/paper.py:mod1_resnorm --workdir=/tmp/run \
        [--config.num_seeds=3] [--config.train.batch_size=64] ...

Intentionally short: flags are parsed here, the work is in ascjax.tasks.classifier (the recipe)
and ascjax.train.loop (the loop). Multi-host: start one
process per host with --coordinator=HOST:PORT --num_processes=N --process_id=I (or let
jax.distributed.initialize() discover them on TPU/SLURM); every process runs the same command.
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file[:row,options].')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Checkpoints, logs and results go here.')
_COORDINATOR = flags.DEFINE_string('coordinator', None, 'host:port of process 0 (multi-host).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes (multi-host).')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process (multi-host).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
    from ascjax import logs
    logs.quiet()   # orbax/TFDS/JAX INFO lines only with --verbosity=1
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    import jax
    if _COORDINATOR.value or _NUM_PROCESSES.value:
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    logging.info('JAX %s: %d process(es), %d device(s): %s', jax.__version__, jax.process_count(),
                 jax.device_count(), jax.devices())
    if jax.default_backend() == 'cpu' and 'glibc.malloc.hugetlb' not in os.environ.get(
            'GLIBC_TUNABLES', ''):
        logging.warning('on CPU, GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (the Makefile sets it) '
                        'backs XLA\'s buffers with huge pages: the Mod-8 train step took 3.7 s '
                        'with it, 7.7 s without')
    from ascjax.tasks import classifier
    classifier.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
    app.run(main)
