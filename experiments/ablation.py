"""The synthetic ablation (experiments/synthetic_ablation.md): rows x seeds, data held on the device.

    python -m experiments.ablation --out=/tmp/ablation --preset=full \
        --rows=mod1,mod1_globalfreqnorm,mod1_freqin,mod1_preresnorm,mod1_resnorm --num_seeds=3

Each row of `experiments/configs/paper.py` is trained with the library's own jitted train step
(`--num_seeds` models vmapped in one program) and evaluated with `ascjax.evaluation`. Unlike
`python -m ascjax.train`, this driver needs no TensorFlow: it synthesises the preset, computes every
clip's log-mel once with `features.logmel_jax` and keeps the whole training set on the accelerator,
drawing each epoch's order with `jax.random.permutation`. That is what lets it run on an
accelerator image without TF (the GPU machine), and it is much faster for a sweep of small models.
No checkpoints: a row that is cut off is rerun.

The schedule is the row's, with `--epochs` epochs; with `--train_budget_s` the epoch count is
lowered, for every row alike, so that all rows fit the budget (timed on the first row's steps).
Results: OUT/<row>.json (the `results.json` format) and OUT/ablation.md (the per-device table).
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import numpy as np

from ascjax import evaluation, features, models
from ascjax.data import audio, layout, synthesize
from ascjax.train import mesh as mesh_lib, optim, state as state_lib, step as step_lib
from experiments.configs import paper

FLAGS = flags.FLAGS
flags.DEFINE_string('out', None, 'Output folder (results) and, under data/, the synthetic set.')
flags.DEFINE_string('data', None, 'Synthetic set to use or build (default OUT/data).')
flags.DEFINE_string('preset', 'full', 'Synthetic preset.')
flags.DEFINE_list('rows', ['mod1', 'mod1_globalfreqnorm', 'mod1_freqin', 'mod1_preresnorm',
                           'mod1_resnorm'], 'Rows of experiments/configs/paper.py.')
flags.DEFINE_integer('num_seeds', 3, 'Models per row, trained at once (vmapped).')
flags.DEFINE_integer('epochs', 100, 'Epochs per row (upper bound with --train_budget_s).')
flags.DEFINE_integer('batch_size', 0, 'Global batch size (0: the row config\'s).')
flags.DEFINE_float('train_budget_s', 0, 'If > 0, lower the epochs so all rows train in this time.')
flags.DEFINE_integer('feature_batch', 64, 'Clips per log-mel batch.')
flags.mark_flag_as_required('out')


def load_split(root: str, split: str, front_end: features.FrontEnd):
    """(log-mels [N, F, T, 1] on the device, labels [N], device ids [N]) of a split."""
    clips = layout.read_split(root, split)
    num_samples = int(round(layout.CLIP_SECONDS * front_end.sample_rate))
    logmel = jax.jit(lambda a: features.logmel_jax(a, front_end)[..., None])
    chunks = []
    for i in range(0, len(clips), FLAGS.feature_batch):
        waves = np.stack([audio.load(os.path.join(root, c.filename), front_end.sample_rate,
                                     num_samples).samples
                          for c in clips[i:i + FLAGS.feature_batch]])
        chunks.append(logmel(waves))
    return (jnp.concatenate(chunks), np.array([c.label for c in clips]),
            np.array([c.device_id for c in clips]))


def train_row(row: str, data, epochs: int, time_steps: int = 0):
    """Trains a row (or, with time_steps, times that many steps after compilation) -> results."""
    config = paper.get_config(row)
    config.num_seeds = FLAGS.num_seeds
    config.train.num_epochs = epochs
    if FLAGS.batch_size:
        config.train.batch_size = FLAGS.batch_size
    batch_size = config.train.batch_size
    (x_train, y_train, _), (x_test, y_test, d_test) = data
    steps_per_epoch = len(y_train) // batch_size
    mesh = mesh_lib.data_mesh()
    model = models.from_config(config.model)
    shape = x_train.shape[1:]
    probe = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape))))
    tx = optim.optimizer(config.train, probe['params'], steps_per_epoch)
    state = state_lib.create(model, tx, shape, config.seed, config.num_seeds, mesh)
    shardings = jax.tree.map(lambda a: a.sharding, state)
    if config.model.norm == 'global_freqnorm':
        mean, std = models.global_freq_stats(np.asarray(x_train[i:i + 256])
                                             for i in range(0, len(y_train), 256))
        stats = {'norm_input': {'mean': mean, 'std': std}}
        stats = jax.tree.map(lambda a: jnp.broadcast_to(a, (config.num_seeds, *a.shape)), stats)
        state = state.replace(norm_stats=jax.device_put(stats, shardings.norm_stats))
    train_step = step_lib.make_train_step(model, tx, config, optim.schedule(
        config.train, steps_per_epoch), shardings, mesh)
    y_train_dev = jnp.asarray(y_train)

    @jax.jit
    def epoch_order(epoch):
        key = jax.random.fold_in(jax.random.PRNGKey(config.seed), epoch)
        perm = jax.random.permutation(key, len(y_train))[:steps_per_epoch * batch_size]
        return perm.reshape(steps_per_epoch, batch_size)

    take = jax.jit(lambda idx: {'spectrogram': x_train[idx], 'label': y_train_dev[idx]})
    if time_steps:
        order = epoch_order(0)
        state, m = train_step(state, take(order[0]))
        jax.block_until_ready(m)
        start = time.perf_counter()
        for i in range(time_steps):
            state, m = train_step(state, take(order[(i + 1) % steps_per_epoch]))
        jax.block_until_ready(m)
        return (time.perf_counter() - start) / time_steps, steps_per_epoch

    start = time.perf_counter()
    for epoch in range(epochs):
        order = epoch_order(epoch)
        for i in range(steps_per_epoch):
            state, metrics = train_step(state, take(order[i]))
        if epoch % 10 == 0 or epoch == epochs - 1:
            m = jax.device_get(metrics)
            logging.info('%s epoch %d/%d loss %s acc %s (%.0f s)', row, epoch + 1, epochs,
                         np.round(m['loss'], 3), np.round(m['accuracy'], 3),
                         time.perf_counter() - start)
    eval_step = step_lib.make_eval_step(model, config, shardings, mesh)
    logits = np.concatenate([np.asarray(eval_step(state, {'spectrogram': x_test[i:i + 100]}))
                             for i in range(0, len(y_test), 100)], axis=1)
    results = evaluation.results(logits, y_test, d_test)
    results.update(method=row, params=int(sum(np.prod(p.shape[1:])
                                              for p in jax.tree.leaves(state.params))),
                   epochs=epochs, batch_size=batch_size, train_seconds=time.perf_counter() - start)
    return results


def main(argv):
    del argv
    os.makedirs(FLAGS.out, exist_ok=True)
    root = FLAGS.data or os.path.join(FLAGS.out, 'data')
    t0 = time.perf_counter()
    if not os.path.exists(os.path.join(root, 'summary.json')):
        summary = synthesize.synthesize(root, preset=FLAGS.preset, seed=0)
        logging.info('synthesised %s in %.0f s:\n%s', FLAGS.preset, time.perf_counter() - t0,
                     synthesize.format_summary(summary))
    front_end = features.from_config(paper.data_config())
    t1 = time.perf_counter()
    data = (load_split(root, 'train', front_end), load_split(root, 'test', front_end))
    logging.info('log-mels of %d + %d clips in %.0f s on %s', len(data[0][1]), len(data[1][1]),
                 time.perf_counter() - t1, jax.devices()[0].device_kind)

    epochs = FLAGS.epochs
    if FLAGS.train_budget_s > 0:
        step_s, steps_per_epoch = train_row(FLAGS.rows[-1], data, 1, time_steps=20)
        fit = int(FLAGS.train_budget_s / (1.2 * step_s * steps_per_epoch * len(FLAGS.rows)))
        epochs = max(1, min(epochs, fit))
        logging.info('%.1f ms per step (%d seeds) -> %d epochs per row', 1e3 * step_s,
                     FLAGS.num_seeds, epochs)
    rows = {}
    for row in FLAGS.rows:
        rows[row] = train_row(row, data, epochs)
        with open(os.path.join(FLAGS.out, f'{row}.json'), 'w') as f:
            json.dump(rows[row], f, indent=1)
        table = evaluation.table(rows, {r: v['params'] for r, v in rows.items()})
        with open(os.path.join(FLAGS.out, 'ablation.md'), 'w') as f:
            f.write(f'{FLAGS.preset} preset, {epochs} epochs, {FLAGS.num_seeds} seeds, '
                    f'{jax.devices()[0].device_kind}\n\n{table}\n')
        print(table, flush=True)


if __name__ == '__main__':
    app.run(main)
