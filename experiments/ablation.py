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

import ast
import functools
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
TRANSLATION = None     # --translator: probability -> translate function (set by main)
flags.DEFINE_string('out', None, 'Output folder (results) and, under data/, the synthetic set.')
flags.DEFINE_string('data', None, 'Synthetic set to use or build (default OUT/data).')
flags.DEFINE_string('preset', 'full', 'Synthetic preset.')
flags.DEFINE_list('rows', ['mod1', 'mod1_globalfreqnorm', 'mod1_freqin', 'mod1_preresnorm',
                           'mod1_resnorm'], 'Rows of experiments/configs/paper.py.')
flags.DEFINE_integer('num_seeds', 3, 'Models per row.')
flags.DEFINE_bool('vmap_seeds', True, 'Train a row\'s seeds at once (vmapped, one program); '
                  'else one after the other (seed s: config.seed = s), faster on XLA:CPU.')
flags.DEFINE_integer('epochs', 100, 'Epochs per row (upper bound with --train_budget_s).')
flags.DEFINE_integer('batch_size', 0, 'Global batch size (0: the row config\'s).')
flags.DEFINE_float('train_budget_s', 0, 'If > 0, lower the epochs so all rows train in this time.')
flags.DEFINE_float('clip_seconds', 10.0, 'Seconds of each clip used (data.clip_seconds): its start.')
flags.DEFINE_integer('feature_batch', 64, 'Clips per log-mel batch.')
flags.DEFINE_string('translator', None, 'Translator workdir: train with translated device-A '
                    'examples (config.translator.probability), looked up from translations '
                    'precomputed once (the frozen translator is deterministic: same result).')
flags.DEFINE_multi_string('set', [], 'Config override, e.g. --set=train.learning_rate=0.05.')
flags.mark_flag_as_required('out')


def load_split(root: str, split: str, front_end: features.FrontEnd):
    """(log-mels [N, F, T, 1] on the device, labels [N], device ids [N]) of a split."""
    clips = layout.read_split(root, split)
    full = int(round(layout.CLIP_SECONDS * front_end.sample_rate))
    num_samples = int(round(FLAGS.clip_seconds * front_end.sample_rate))
    logmel = jax.jit(lambda a: features.logmel_jax(a, front_end)[..., None])
    chunks = []
    for i in range(0, len(clips), FLAGS.feature_batch):
        waves = np.stack([audio.load(os.path.join(root, c.filename), front_end.sample_rate,
                                     full).samples[:num_samples]
                          for c in clips[i:i + FLAGS.feature_batch]])
        chunks.append(logmel(waves))
    return (jnp.concatenate(chunks), np.array([c.label for c in clips]),
            np.array([c.device_id for c in clips]))


def translation_table(workdir: str, x: jax.Array, device: np.ndarray):
    """The augmentation of `workdir`'s translator for the training set `x`, as a lookup: every
    device-A example translated once to every device the translator knows."""
    from ascjax.translator import augment, train as translator_train
    model, variables, info, _ = translator_train.load(workdir)
    targets = np.array([layout.device_id(d) for d in info['devices']])
    a_index = np.flatnonzero(device == layout.device_id(info['source_device']))
    apply = jax.jit(lambda v, xs, d: model.apply(v, xs, d, train=False))
    table = jnp.stack([jnp.concatenate([apply(variables, x[a_index[i:i + 32]], t)
                                        for i in range(0, len(a_index), 32)])
                       for t in targets], axis=1)                  # [N_A, targets, F, T, 1]
    slot_of_example = np.zeros(len(device), np.int32)
    slot_of_example[a_index] = np.arange(len(a_index))
    slot_of_device = np.zeros(len(layout.EVAL_DEVICES), np.int32)
    slot_of_device[targets] = np.arange(len(targets))

    def apply_lookup(x, target, batch):
        return table[jnp.asarray(slot_of_example)[batch['index']],
                     jnp.asarray(slot_of_device)[target]]
    logging.info('translated %d A clips to %s', len(a_index), info['devices'])
    return lambda probability: augment.make_translate(apply_lookup, targets, probability,
                                                      info['source_device'])


def train_row(row: str, data, epochs: int, time_steps: int = 0):
    """Trains a row's seeds (or, with time_steps, times a step of all of them) -> results."""
    if FLAGS.vmap_seeds:
        return train_seeds(row, data, epochs, 0, FLAGS.num_seeds, time_steps)
    parts = [train_seeds(row, data, epochs, s, 1, time_steps) for s in range(FLAGS.num_seeds)]
    if time_steps:
        return sum(p[0] for p in parts), parts[0][1]
    (_, y_test, d_test) = data[1]
    logits = np.concatenate([p['logits'] for p in parts])
    results = evaluation.results(logits, y_test, d_test)
    results.update({k: v for k, v in parts[0].items() if k not in results})
    results['logits'] = logits
    results['train_seconds'] = sum(p['train_seconds'] for p in parts)
    return results


def train_seeds(row: str, data, epochs: int, seed: int, num_seeds: int, time_steps: int = 0):
    """Trains `num_seeds` models of a row at once, from config.seed = `seed`."""
    config = paper.get_config(row)
    config.seed = seed
    config.num_seeds = num_seeds
    config.train.num_epochs = epochs
    config.data.clip_seconds = FLAGS.clip_seconds
    if FLAGS.batch_size:
        config.train.batch_size = FLAGS.batch_size
    for override in FLAGS.set:
        path, value = override.split('=', 1)
        *parents, leaf = path.split('.')
        section = functools.reduce(getattr, parents, config)
        setattr(section, leaf, type(getattr(section, leaf))(ast.literal_eval(value)))
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
    translate = TRANSLATION(config.translator.probability) if TRANSLATION else None
    train_step = step_lib.make_train_step(model, tx, config, optim.schedule(
        config.train, steps_per_epoch), shardings, mesh, translate)
    y_train_dev, d_train_dev = jnp.asarray(y_train), jnp.asarray(data[0][2])

    @jax.jit
    def epoch_order(epoch):
        key = jax.random.fold_in(jax.random.PRNGKey(config.seed), epoch)
        perm = jax.random.permutation(key, len(y_train))[:steps_per_epoch * batch_size]
        return perm.reshape(steps_per_epoch, batch_size)

    gather = jax.jit(lambda x, y, d, idx: {'spectrogram': x[idx], 'label': y[idx],
                                           'device': d[idx], 'index': idx})
    take = lambda idx: gather(x_train, y_train_dev, d_train_dev, idx)
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
    results.update(method=row, logits=logits, params=int(sum(np.prod(p.shape[1:])
                                              for p in jax.tree.leaves(state.params))),
                   epochs=epochs, batch_size=batch_size, config=config.to_dict(), train_seconds=time.perf_counter() - start)
    return results


SEEN, UNSEEN = ('A', 'B', 'C', 'S1', 'S2', 'S3'), ('S4', 'S5', 'S6')


def report(rows: dict[str, dict], metric: str = 'accuracy') -> str:
    """`metric` (accuracy % or log_loss) mean +- std over seeds per device, and over the seen and
    the unseen devices (each seed's mean over those devices)."""
    head = ['Method', *SEEN, *UNSEEN, 'Seen', 'Unseen', 'Overall']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    digits = 1 if metric == 'accuracy' else 2
    for method, r in rows.items():
        values = {d: np.asarray(v) for d, v in r['per_seed'][metric].items()}
        values['Seen'] = np.mean([values[d] for d in SEEN], axis=0)
        values['Unseen'] = np.mean([values[d] for d in UNSEEN], axis=0)
        values['Overall'] = values['overall']
        cells = [f'{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0:.{digits}f}'
                 for v in (values[c] for c in head[1:])]
        lines.append('| ' + ' | '.join([method, *cells]) + ' |')
    return '\n'.join(lines) + '\n'


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

    if FLAGS.translator:
        global TRANSLATION
        TRANSLATION = translation_table(FLAGS.translator, data[0][0], data[0][2])
    epochs = FLAGS.epochs
    if FLAGS.train_budget_s > 0:
        step_s, steps_per_epoch = train_row(FLAGS.rows[-1], data, 1, time_steps=20)
        fit = int(FLAGS.train_budget_s / (1.2 * step_s * steps_per_epoch * len(FLAGS.rows)))
        epochs = max(1, min(epochs, fit))
        logging.info('%.1f ms per step (%d seeds) -> %d epochs per row', 1e3 * step_s,
                     FLAGS.num_seeds, epochs)
    rows = {}
    for row in FLAGS.rows:
        name = row + ('+translator' if FLAGS.translator else '')
        rows[name] = r = train_row(row, data, epochs)
        np.save(os.path.join(FLAGS.out, f'{name}_logits.npy'), r.pop('logits'))
        with open(os.path.join(FLAGS.out, f'{name}.json'), 'w') as f:
            json.dump(r, f, indent=1)
        table = report(rows)
        with open(os.path.join(FLAGS.out, 'ablation.md'), 'w') as f:
            f.write(f'{FLAGS.preset} preset, {FLAGS.clip_seconds:g}-s clips, {epochs} epochs, '
                    f'batch {r["batch_size"]}, {FLAGS.num_seeds} seeds, '
                    f'{jax.devices()[0].device_kind}; accuracy (%) mean ± std over seeds\n\n'
                    f'{table}\n')
        print(table, flush=True)


if __name__ == '__main__':
    app.run(main)
