"""Results in the paper's layout: accuracy and log loss per device (A, B, C, S1..S6), overall, and
the standard deviation over seeds; per-class accuracy, confusion matrix, plots.

Overall is the mean over all test clips, as in the paper (TAU's test split has the same number of
clips per device, so it equals the mean over devices there). Log loss is the DCASE 2021 ranking
metric: mean negative log-probability of the true class, probabilities clipped to [1e-15, 1].
"""

from __future__ import annotations

import json
import os

import numpy as np
import scipy.special

from ascjax.data import layout


def device_name(device_id: int) -> str:
    return layout.EVAL_DEVICES[device_id].upper() if device_id >= 0 else 'unknown'


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def results(logits: np.ndarray, labels: np.ndarray, devices: np.ndarray) -> dict:
    """`logits` [K seeds, N, classes]; labels and device ids [N]. Means over seeds, std over seeds."""
    logits = np.asarray(logits, np.float64)
    if logits.ndim == 2:
        logits = logits[None]
    k, n, num_classes = logits.shape
    labels, devices = np.asarray(labels), np.asarray(devices)
    pred = logits.argmax(-1)                                              # [K, N]
    nll = -np.maximum(np.take_along_axis(scipy.special.log_softmax(logits, axis=-1), labels[None, :, None], -1)[..., 0],
                      np.log(1e-15))                                      # [K, N]
    correct = pred == labels[None]
    groups = {device_name(d): devices == d for d in sorted(set(devices.tolist()),
                                                           key=lambda d: (d < 0, d))}
    groups['overall'] = np.ones(n, bool)
    per_seed = {'accuracy': {}, 'log_loss': {}}
    for name, m in groups.items():
        per_seed['accuracy'][name] = [float(100 * correct[s, m].mean()) for s in range(k)]
        per_seed['log_loss'][name] = [float(nll[s, m].mean()) for s in range(k)]
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for s in range(k):
        np.add.at(confusion, (labels, pred[s]), 1)
    return {
        'accuracy': {g: float(np.mean(v)) for g, v in per_seed['accuracy'].items()},
        'log_loss': {g: float(np.mean(v)) for g, v in per_seed['log_loss'].items()},
        'num_examples': {g: int(m.sum()) for g, m in groups.items()},
        'class_accuracy': {layout.SCENES[c]: float(100 * correct[:, labels == c].mean())
                           for c in range(num_classes) if np.any(labels == c)},
        'confusion': confusion.tolist(),
        'seeds': k,
        'std': {metric: {g: _std(v) for g, v in per_seed[metric].items()} for metric in per_seed},
        'per_seed': per_seed,
    }


def table(rows: dict[str, dict], params: dict[str, int] | None = None,
          metric: str = 'accuracy') -> str:
    """The paper's table: Method | #Param | A | B | C | S1..S6 | Overall | Std. Dev, one row per
    results dict; Std. Dev is the std over seeds of the overall figure."""
    columns = [c for c in [d.upper() for d in layout.EVAL_DEVICES] + ['unknown']
               if any(c in r[metric] for r in rows.values())]
    head = ['Method', '#Param', *columns, 'Overall', 'Std. Dev']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    fmt = (lambda v: f'{v:.1f}') if metric == 'accuracy' else (lambda v: f'{v:.3f}')
    for method, r in rows.items():
        n = (params or {}).get(method)
        cells = [method, f'{n / 1000:.1f}k' if n else '', *(fmt(r[metric][c]) if c in r[metric]
                                                              else '' for c in columns),
                 fmt(r[metric]['overall']), fmt(r['std'][metric]['overall'])]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def plot(r: dict, out_dir: str) -> list[str]:
    """Per-device accuracy bars and the confusion matrix, as PNGs in out_dir."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    names = [g for g in r['accuracy'] if g != 'overall'] + ['overall']
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(names, [r['accuracy'][g] for g in names],
           yerr=[r['std']['accuracy'][g] for g in names], color='tab:blue')
    ax.set_ylabel('accuracy (%)')
    ax.set_ylim(0, 100)
    ax.set_title(f'per-device accuracy ({r["seeds"]} seed(s))')
    fig.tight_layout()
    paths = [os.path.join(out_dir, 'device_accuracy.png')]
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)
    confusion = np.asarray(r['confusion'])
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(confusion, cmap='Blues')
    labels = list(layout.SCENES[:confusion.shape[0]])
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    for (i, j), v in np.ndenumerate(confusion):
        ax.text(j, i, str(v), ha='center', va='center', fontsize=6)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, 'confusion.png'))
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    return paths


def write(r: dict, workdir: str, method: str, params: int | None = None) -> None:
    """results.json, results.md (accuracy and log-loss tables) and plots/ in workdir."""
    with open(os.path.join(workdir, 'results.json'), 'w') as f:
        json.dump({**r, 'method': method, 'params': params}, f, indent=2)
    with open(os.path.join(workdir, 'results.md'), 'w') as f:
        f.write('Accuracy (%)\n\n' + table({method: r}, {method: params}) + '\nLog loss\n\n'
                + table({method: r}, {method: params}, 'log_loss'))
    plot(r, os.path.join(workdir, 'plots'))


def load(workdir: str) -> tuple[str, dict, int | None]:
    """(method name, results, parameter count) of a finished training workdir."""
    with open(os.path.join(workdir, 'results.json')) as f:
        r = json.load(f)
    return r.get('method') or os.path.basename(os.path.normpath(workdir)), r, r.get('params')


def compare(workdirs: list[str]) -> str:
    """Accuracy and log-loss tables of several workdirs, side by side in the paper's layout."""
    rows, params = {}, {}
    for workdir in workdirs:
        name, r, n = load(workdir)
        rows[name], params[name] = r, n
    return ('Accuracy (%)\n\n' + table(rows, params) + '\nLog loss\n\n'
            + table(rows, params, 'log_loss'))


if __name__ == '__main__':
    import sys
    if len(sys.argv) < 2:
        sys.exit('usage: python -m ascjax.evaluation WORKDIR [WORKDIR ...]  (prints their tables)')
    print(compare(sys.argv[1:]))
