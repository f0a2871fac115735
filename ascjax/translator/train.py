"""Trains the device translator on the (A, X) pairs of the training split, then evaluates it.

    python -m ascjax.translator.train --config=experiments/configs/translator.py --workdir=DIR

The classifier's machinery throughout: the same data builder, the same sharded, seed-vmapped jit
step (`step.make_step` with the translator's per-seed update), orbax checkpoints with exact resume,
progress logging. The workdir then holds checkpoints/, config.json, translator.json (the source and
target devices) and what `ascjax.translator.evaluate` writes.
"""

from __future__ import annotations

import functools
import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ascjax import features
from ascjax.data import layout, pipeline
from ascjax.train import checkpoint, loop, mesh as mesh_lib, optim, state as state_lib
from ascjax.train import step as step_lib
from ascjax.translator.model import UNet

INFO = 'translator.json'
DEVICE_INPUT = (((), jnp.int32),)     # the model's second input: the target device id


def model_from_config(config) -> UNet:
    fields = dict(config.model)
    fields['dtype'] = jnp.dtype(fields.get('dtype', 'float32'))
    return UNet(num_devices=len(layout.DEVICES), **fields)


def loss_fn(kind: str, prediction: jax.Array, target: jax.Array) -> jax.Array:
    """Per-example L1 or L2 on log-mels: [B]."""
    diff = (prediction - target).reshape(prediction.shape[0], -1)
    if kind == 'l1':
        return jnp.abs(diff).mean(-1)
    if kind == 'l2':
        return jnp.square(diff).mean(-1)
    raise ValueError(f'--config.train.loss={kind!r}: expected l1 or l2')


def translator_update(model: UNet, tx, cfg, params, mutable, opt_state, norm_stats,
                      train_key, step, batch):
    """One update of one seed's translator: translate A to batch['device'], regress X."""
    del norm_stats, train_key, step      # no augmentation: A and X must stay time-aligned

    def objective(p):
        y, updates = model.apply({'params': p, **mutable}, batch['spectrogram'],
                                 batch['device'], train=True, mutable=list(mutable))
        return loss_fn(cfg.loss, y, batch['target']).mean(), updates

    (loss, mutable), grads = jax.value_and_grad(objective, has_aux=True)(params)
    identity = loss_fn(cfg.loss, batch['spectrogram'], batch['target']).mean()
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, mutable, opt_state, {'loss': loss, 'identity_loss': identity,
                                            'grad_norm': optax.global_norm(grads)}


def pair_batches(pairs: pipeline.PairSource, batch_size: int):
    """(A, X, device) numpy batches of every pair once, padding dropped."""
    for b in pipeline.eval_batches(pairs, global_batch_size=batch_size).as_numpy_iterator():
        keep = b['mask'] > 0
        yield b['spectrogram'][keep], b['target'][keep], b['device'][keep]


def freq_mean_offsets(pairs: pipeline.PairSource, batch_size: int) -> dict[int, np.ndarray]:
    """Per target device: the mean over pairs and frames of X - A, per frequency bin ([F, 1])."""
    sums, counts = {}, {}
    for a, x, device in pair_batches(pairs, batch_size):
        diff = (x.astype(np.float64) - a).mean(axis=2)            # [b, F, 1]
        for d in np.unique(device):
            sums[d] = sums.get(d, 0) + diff[device == d].sum(0)
            counts[d] = counts.get(d, 0) + int(np.sum(device == d))
    return {int(d): (sums[d] / counts[d])[:, None, :] for d in sums}


def with_offsets(state, offsets: dict[int, np.ndarray], sharding):
    """`state` with every seed's `device_offset` rows set to the devices' mean offsets: the
    translator starts as the per-frequency-mean baseline and learns what that misses."""
    old = state.params['device_offset']['embedding']                    # [K, devices, F]
    table = np.zeros(old.shape[1:], np.float32)
    rows = np.zeros(old.shape[1:2] + (1,), bool)
    for d, offset in offsets.items():
        table[d], rows[d] = offset[:, 0, 0], True
    new = jax.jit(lambda o: jnp.where(rows, table, o), out_shardings=sharding)(old)
    return state.replace(params={**state.params, 'device_offset': {'embedding': new}})


def setup(config, steps_per_epoch: int, mesh):
    """(model, optimizer, abstract state) on `mesh`."""
    model = model_from_config(config)
    shape = features.input_shape(config.data)
    probe = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape)),
                                              jnp.zeros((1,), jnp.int32), train=False))
    tx = optim.optimizer(config.train, probe['params'], steps_per_epoch)
    return model, tx, state_lib.abstract(model, tx, shape, config.seed, config.num_seeds, mesh,
                                         DEVICE_INPUT)


def load(workdir: str, step: int | None = None, seed: int = 0):
    """(model, variables of seed `seed`, translator.json, config) of a translator workdir."""
    config = checkpoint.read_config(workdir)
    model, _, target = setup(config, 1, mesh_lib.data_mesh())
    state = checkpoint.restore(checkpoint.manager(workdir, config.train.keep_checkpoints),
                               target, step)
    if state is None:
        raise FileNotFoundError(f'{workdir}/checkpoints: no translator checkpoint')
    with open(os.path.join(workdir, INFO)) as f:
        info = json.load(f)
    return model, state_lib.seed_slice(state, seed), info, config


def train(config, workdir: str) -> dict:
    """Trains to the configured step (resuming if checkpoints exist) and evaluates on test pairs."""
    from ascjax.translator import evaluate as evaluate_lib
    mesh = mesh_lib.data_mesh()
    mesh_lib.check_batch_size(config.train.batch_size)
    if config.data.get('features_on', 'host') != 'host':
        raise ValueError('the translator trains on cached log-mels: --config.data.features_on=host')
    builder = loop.open_data(config)
    pairs = pipeline.PairSource.of(loop.source(builder, 'train'), config.source_device)
    targets = sorted(set(pairs.target_devices.tolist()))
    if not len(pairs):
        raise ValueError(f'the training split has no ({config.source_device}, X) pairs')
    if jax.process_index() == 0:
        checkpoint.write_run_info(workdir, config)
        with open(os.path.join(workdir, INFO), 'w') as f:
            json.dump({'source_device': config.source_device,
                       'devices': [layout.EVAL_DEVICES[d] for d in targets],
                       'train_pairs': len(pairs)}, f, indent=1)
    steps_per_epoch = max(len(pairs) // config.train.batch_size, 1)
    total_steps = optim.total_steps(config.train, steps_per_epoch)
    model, tx, target = setup(config, steps_per_epoch, mesh)
    shardings = jax.tree.map(lambda s: s.sharding, target)
    mngr = checkpoint.manager(workdir, config.train.keep_checkpoints)
    state = loop.init_or_restore(mngr, target, lambda: with_offsets(
        state_lib.create(model, tx, features.input_shape(config.data), config.seed,
                         config.num_seeds, mesh, DEVICE_INPUT),
        freq_mean_offsets(pairs, config.eval.batch_size),
        shardings.params['device_offset']['embedding']))
    start = int(jax.device_get(state.step))
    update = functools.partial(translator_update, model, tx, config.train)
    train_step = step_lib.make_step(update, shardings, mesh,
                                    optim.schedule(config.train, steps_per_epoch))
    batches = pipeline.train_batches(
        pairs, global_batch_size=config.train.batch_size, seed=config.seed, start_step=start,
        num_steps=max(total_steps - start, 0), process_index=jax.process_index(),
        process_count=jax.process_count())
    logging.info('training the translator %s -> %s on %d pairs, steps %d..%d',
                 config.source_device, [layout.EVAL_DEVICES[d] for d in targets], len(pairs),
                 start, total_steps)
    progress = loop.progress_logger(workdir, total_steps, start, config.train.log_every_steps)
    state = loop.fit(state, train_step, batches, mesh, mngr, progress, total_steps,
                     config.train.checkpoint_every_steps)
    return evaluate_lib.evaluate_workdir(workdir)


def main(argv):
    from absl import app
    from ascjax.translator import evaluate as evaluate_lib
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    results = train(_CONFIG.value, _WORKDIR.value)
    print(evaluate_lib.format_results(results))


if __name__ == '__main__':
    from absl import app, flags
    from ml_collections import config_flags
    _CONFIG = config_flags.DEFINE_config_file('config', None, 'Translator config file[:options].')
    _WORKDIR = flags.DEFINE_string('workdir', None, 'Checkpoints, logs and results go here.')
    flags.mark_flags_as_required(['config', 'workdir'])
    app.run(main)
