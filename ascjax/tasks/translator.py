"""The device-translator task: a U-Net trained on the (A, X) pairs of the training split.

    python -m ascjax.tasks.translator --config=experiments/configs/translator.py --workdir=DIR
    python -m ascjax.tasks.translator --config=... --workdir=DIR --evaluate_only [--step=N]

Trained by the engine's one loop (`ascjax.train.loop.train`) with this task's update (translate A
to X's device, regress X; no augmentation, A and X must stay time-aligned) and one init transform
(the device-offset table starts at the per-frequency mean of X - A). Then evaluated on the test
pairs: per target device the mean per-pair error (the training loss, L1 or L2 on log-mels) of
  translated: translate(A, X's device) vs X,
  identity:   A vs X (no translation),
  freq_mean:  A + the per-frequency mean of (X - A) over that device's training pairs, vs X
and `reduction` = 1 - translated / identity. The workdir then holds checkpoints/, config.json,
translator.json (source and target devices), translator_results.json and
plots/translator_examples.png (A, translated, real X for one test segment per device).
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

from ascjax import run as run_lib
from ascjax.data import layout, sources
from ascjax.train import loop

INFO = 'translator.json'


def loss_fn(kind: str, prediction: jax.Array, target: jax.Array) -> jax.Array:
    """Per-example L1 or L2 on log-mels: [B]."""
    diff = (prediction - target).reshape(prediction.shape[0], -1)
    if kind == 'l1':
        return jnp.abs(diff).mean(-1)
    if kind == 'l2':
        return jnp.square(diff).mean(-1)
    raise ValueError(f'--config.train.loss={kind!r}: expected l1 or l2')


def translator_update(model, cfg, tx):
    """One seed's update: translate A to batch['device'], regress X."""
    def per_seed(params, collections, opt_state, train_key, step, batch):
        del train_key, step      # no augmentation: A and X must stay time-aligned

        def objective(p):
            y, updates = model.apply({'params': p, **collections}, batch['spectrogram'],
                                     batch['device'], train=True, mutable=list(collections))
            return loss_fn(cfg.loss, y, batch['target']).mean(), updates

        (loss, collections), grads = jax.value_and_grad(objective, has_aux=True)(params)
        identity = loss_fn(cfg.loss, batch['spectrogram'], batch['target']).mean()
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, collections, opt_state, {'loss': loss, 'identity_loss': identity,
                                                'grad_norm': optax.global_norm(grads)}
    return per_seed


def pair_batches(pairs: sources.PairSource, batch_size: int):
    """(A, X, device) numpy batches of every pair once, padding dropped."""
    for b in sources.ordered_batches(pairs, batch_size):
        keep = b['mask'] > 0
        yield b['spectrogram'][keep], b['target'][keep], b['device'][keep]


def freq_mean_offsets(pairs: sources.PairSource, batch_size: int) -> dict[int, np.ndarray]:
    """Per target device: the mean over pairs and frames of X - A, per frequency bin ([F, 1])."""
    sums, counts = {}, {}
    for a, x, device in pair_batches(pairs, batch_size):
        diff = (x.astype(np.float64) - a).mean(axis=2)            # [b, F, 1]
        for d in np.unique(device):
            sums[d] = sums.get(d, 0) + diff[device == d].sum(0)
            counts[d] = counts.get(d, 0) + int(np.sum(device == d))
    return {int(d): (sums[d] / counts[d])[:, None, :] for d in sums}


def with_offsets(pairs: sources.PairSource, batch_size: int, state, shardings):
    """`state` with every seed's `device_offset` rows set to the devices' mean offsets over
    `pairs`: the translator starts as the per-frequency-mean baseline, learns what that misses."""
    offsets = freq_mean_offsets(pairs, batch_size)
    old = state.params['device_offset']['embedding']                    # [K, devices, F]
    table = np.zeros(old.shape[1:], np.float32)
    rows = np.zeros(old.shape[1:2] + (1,), bool)
    for d, offset in offsets.items():
        table[d], rows[d] = offset[:, 0, 0], True
    new = jax.jit(lambda o: jnp.where(rows, table, o),
                  out_shardings=shardings.params['device_offset']['embedding'])(old)
    return state.replace(params={**state.params, 'device_offset': {'embedding': new}})


def training_pairs(config, builder) -> sources.PairSource:
    if config.data.get('features_on', 'host') != 'host':
        raise ValueError('the translator trains on cached log-mels: --config.data.features_on=host')
    pairs = sources.PairSource.of(run_lib.source(builder, 'train'), config.source_device)
    if not len(pairs):
        raise ValueError(f'the training split has no ({config.source_device}, X) pairs')
    return pairs


def task(config, pairs: sources.PairSource) -> loop.Task:
    model, inputs = run_lib.build_model(config)
    return loop.Task('translator', model, pairs,
                     functools.partial(translator_update, model, config.train),
                     (functools.partial(with_offsets, pairs, config.eval.batch_size),), inputs)


def train(config, workdir: str) -> dict:
    """Trains to the configured step (resuming if checkpoints exist) and evaluates on test pairs."""
    if run_lib.task_of(config) != 'translator':
        raise ValueError("a translator config has task = 'translator'")
    builder = run_lib.open_data(config)
    pairs = training_pairs(config, builder)
    targets = sorted(set(pairs.target_devices.tolist()))
    if jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, INFO), 'w') as f:
            json.dump({'source_device': config.source_device,
                       'devices': [layout.EVAL_DEVICES[d] for d in targets],
                       'train_pairs': len(pairs)}, f, indent=1)
    logging.info('the translator %s -> %s on %d pairs', config.source_device,
                 [layout.EVAL_DEVICES[d] for d in targets], len(pairs))
    loop.train(task(config, pairs), config, workdir)
    return evaluate_workdir(workdir)


def errors(translate, pairs: sources.PairSource, offsets: dict[int, np.ndarray], kind: str,
           batch_size: int) -> dict[str, np.ndarray]:
    """Per test pair: device and the translated / identity / freq_mean errors."""
    out = {'device': [], 'translated': [], 'identity': [], 'freq_mean': []}
    err = lambda p, t: np.asarray(loss_fn(kind, np.asarray(p, np.float32), t))
    for a, x, device in pair_batches(pairs, batch_size):
        known = np.isin(device, list(offsets))
        a, x, device = a[known], x[known], device[known]
        if not len(a):
            continue
        out['device'].append(device)
        out['translated'].append(err(translate(a, device), x))
        out['identity'].append(err(a, x))
        out['freq_mean'].append(err(a + np.stack([offsets[int(d)] for d in device]), x))
    return {k: np.concatenate(v) for k, v in out.items()}


def summarize(e: dict[str, np.ndarray], kind: str) -> dict:
    devices = {}
    for d in sorted(set(e['device'].tolist())):
        m = e['device'] == d
        row = {k: float(e[k][m].mean()) for k in ('translated', 'identity', 'freq_mean')}
        row['reduction'] = 1.0 - row['translated'] / row['identity']
        devices[layout.EVAL_DEVICES[d].upper()] = {'pairs': int(m.sum()), **row}
    return {'loss': kind, 'devices': devices,
            'min_reduction': min(r['reduction'] for r in devices.values())}


def plot(translate, pairs: sources.PairSource, out: str, devices) -> str:
    """A, its translation and the real recording, for the first test pair of each of `devices`."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    firsts = {}
    for i, d in enumerate(pairs.target_devices.tolist()):
        if d in devices:
            firsts.setdefault(d, i)
    rows = sorted(firsts)
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 2.4 * len(rows)), squeeze=False)
    for r, d in enumerate(rows):
        b = pairs.load(np.asarray([firsts[d]]))
        a, x = b['spectrogram'][..., None], b['target'][..., None]
        images = (a[0, ..., 0], translate(a, b['device'])[0, ..., 0], x[0, ..., 0])
        lo, hi = np.percentile(np.stack(images), [1, 99.5])
        name = layout.EVAL_DEVICES[d].upper()
        for c, (img, title) in enumerate(zip(images, ('A', f'A -> {name}', f'real {name}'))):
            axes[r, c].imshow(img, origin='lower', aspect='auto', vmin=lo, vmax=hi)
            axes[r, c].set_title(title, fontsize=9)
            axes[r, c].axis('off')
    fig.tight_layout()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def evaluate_workdir(workdir: str, step: int | None = None) -> dict:
    run = run_lib.open(workdir, step)
    model, variables, config = run.model, run.variables(0), run.config
    with open(os.path.join(workdir, INFO)) as f:
        info = json.load(f)
    batch = config.eval.batch_size
    train_pairs = sources.PairSource.of(run.source('train'), info['source_device'])
    test_pairs = sources.PairSource.of(run.source('test'), info['source_device'])
    trained = {layout.device_id(d) for d in info['devices']}
    offsets = {d: v for d, v in freq_mean_offsets(train_pairs, batch).items() if d in trained}
    apply = jax.jit(lambda x, d: model.apply(variables, x, d, train=False))
    translate = lambda a, d: np.asarray(apply(a, d))      # [b, F, T, 1] -> [b, F, T, 1]
    results = summarize(errors(translate, test_pairs, offsets, config.train.loss, batch),
                        config.train.loss)
    results['step'] = run.step
    if jax.process_index() == 0:
        with open(os.path.join(workdir, 'translator_results.json'), 'w') as f:
            json.dump(results, f, indent=1)
        plot(translate, test_pairs, os.path.join(workdir, 'plots', 'translator_examples.png'),
             trained)
    return results


def format_results(r: dict) -> str:
    lines = ["| Device | pairs | translated | identity | freq. mean | reduction |",
             '|---|---|---|---|---|---|']
    for d, v in r['devices'].items():
        lines.append(f"| {d} | {v['pairs']} | {v['translated']:.3f} | {v['identity']:.3f} | "
                     f"{v['freq_mean']:.3f} | {100 * v['reduction']:.0f}% |")
    return '\n'.join(lines)


def main(argv):
    from ascjax import logs
    logs.quiet()   # orbax/TFDS/JAX INFO lines only with --verbosity=1
    from absl import app, flags
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    f = flags.FLAGS
    if f.evaluate_only:
        results = evaluate_workdir(f.workdir, f.step)
    else:
        results = train(f.config, f.workdir)
    print(format_results(results))


if __name__ == '__main__':
    from absl import app, flags
    from ml_collections import config_flags
    config_flags.DEFINE_config_file('config', None, 'Translator config file[:options].')
    flags.DEFINE_string('workdir', None, 'Checkpoints, logs and results go here.')
    flags.DEFINE_bool('evaluate_only', False, 'Only evaluate the workdir\'s checkpoint.')
    flags.DEFINE_integer('step', None, 'With --evaluate_only: the checkpoint step (default latest).')
    flags.mark_flag_as_required('workdir')
    app.run(main)
