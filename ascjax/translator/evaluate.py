"""Evaluates a trained translator on the held-out (A, X) pairs of the test split.

    python -m ascjax.translator.evaluate --workdir=DIR [--step=N]

Per target device the translator was trained on, the mean per-pair error (the training loss, L1 or
L2 on log-mels) of
  translated: translate(A, X's device) vs X,
  identity:   A vs X (no translation),
  freq_mean:  A + the per-frequency mean of (X - A) over that device's training pairs, vs X
and `reduction` = 1 - translated / identity. Writes DIR/translator_results.json and
DIR/plots/translator_examples.png (A, translated, real X for one test segment per device).
"""

from __future__ import annotations

import json
import os

from absl import app, flags
import jax
import numpy as np

from ascjax.data import layout, pipeline
from ascjax.train import loop
from ascjax.translator import train as train_lib


def errors(translate, pairs: pipeline.PairSource, offsets: dict[int, np.ndarray], kind: str,
           batch_size: int) -> dict[str, np.ndarray]:
    """Per test pair: device and the translated / identity / freq_mean errors."""
    out = {'device': [], 'translated': [], 'identity': [], 'freq_mean': []}
    err = lambda p, t: np.asarray(train_lib.loss_fn(kind, np.asarray(p, np.float32), t))
    for a, x, device in train_lib.pair_batches(pairs, batch_size):
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


def plot(translate, pairs: pipeline.PairSource, out: str, devices) -> str:
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
    model, variables, info, config = train_lib.load(workdir, step)
    builder = loop.open_data(config)
    batch = config.eval.batch_size
    train_pairs = pipeline.PairSource.of(loop.source(builder, 'train'), info['source_device'])
    test_pairs = pipeline.PairSource.of(loop.source(builder, 'test'), info['source_device'])
    trained = {layout.device_id(d) for d in info['devices']}
    offsets = {d: v for d, v in train_lib.freq_mean_offsets(train_pairs, batch).items() if d in trained}
    apply = jax.jit(lambda x, d: model.apply(variables, x, d, train=False))
    translate = lambda a, d: np.asarray(apply(a, d))      # [b, F, T, 1] -> [b, F, T, 1]
    results = summarize(errors(translate, test_pairs, offsets, config.train.loss, batch),
                        config.train.loss)
    results['step'] = int(step if step is not None else checkpoint_step(workdir))
    if jax.process_index() == 0:
        with open(os.path.join(workdir, 'translator_results.json'), 'w') as f:
            json.dump(results, f, indent=1)
        plot(translate, test_pairs, os.path.join(workdir, 'plots', 'translator_examples.png'),
             trained)
    return results


def checkpoint_step(workdir: str) -> int:
    from ascjax.train import checkpoint
    return checkpoint.manager(workdir, 1).latest_step()


def format_results(r: dict) -> str:
    lines = ["| Device | pairs | translated | identity | freq. mean | reduction |",
             '|---|---|---|---|---|---|']
    for d, v in r['devices'].items():
        lines.append(f"| {d} | {v['pairs']} | {v['translated']:.3f} | {v['identity']:.3f} | "
                     f"{v['freq_mean']:.3f} | {100 * v['reduction']:.0f}% |")
    return '\n'.join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    print(format_results(evaluate_workdir(flags.FLAGS.workdir, flags.FLAGS.step)))


if __name__ == '__main__':
    flags.DEFINE_string('workdir', None, 'A translator workdir.')
    flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
    flags.mark_flag_as_required('workdir')
    app.run(main)
