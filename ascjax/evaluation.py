"""Results in the paper's layout: accuracy and log loss per device (A, B, C, S1..S6), overall, and
the standard deviation over seeds; per-class accuracy, confusion matrix, plots.

Overall is the mean over all test clips, as in the paper (TAU's test split has the same number of
clips per device, so it equals the mean over devices there). Log loss is the DCASE 2021 ranking
metric: mean negative log-probability of the true class, probabilities clipped to [1e-15, 1].

A run whose config has the paper's numbers (`config.paper`, every row of
experiments/configs/paper.py) gets the paper's row under its own in the accuracy tables, with the
difference ours - paper per device. The paper's numbers are on TAU Urban Acoustic Scenes 2020
Mobile; a run on other data (the synthetic set) is labelled not comparable, above the table and in
the rows.

    python -m ascjax.evaluation WORKDIR [WORKDIR ...]     # their tables, side by side
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import scipy.special

from ascjax.data import layout

TAU = 'tau2020mobile'   # the paper's data: only runs on it compare with its numbers


def device_name(device_id: int) -> str:
    return layout.EVAL_DEVICES[device_id].upper() if device_id >= 0 else 'unknown'


def seed_std(values: list[float]) -> float:
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
        'std': {metric: {g: seed_std(v) for g, v in per_seed[metric].items()} for metric in per_seed},
        'per_seed': per_seed,
    }


def pool(runs: Sequence[dict]) -> dict:
    """The results of several runs of one setting (e.g. a row's seeds trained as separate
    processes) as one results dict over all their seeds, as `results` gives for seeds trained
    together: per-seed values concatenated, means and stds over all seeds, confusions summed.
    The runs must be evaluated on the same examples; fields that differ between them (step,
    revision) become None."""
    if not runs:
        raise ValueError('pool: no runs')
    if any(r['num_examples'] != runs[0]['num_examples'] for r in runs):
        raise ValueError('pool: the runs were evaluated on different examples '
                         f'({[r["num_examples"] for r in runs]})')
    per_seed = {metric: {g: [v for r in runs for v in r['per_seed'][metric][g]]
                         for g in runs[0]['per_seed'][metric]}
                for metric in runs[0]['per_seed']}
    seeds = sum(r['seeds'] for r in runs)
    pooled = {k: v if all(r.get(k) == v for r in runs) else None
              for k, v in runs[0].items() if k not in FROM_SEEDS}
    return {**pooled,
            **{metric: {g: float(np.mean(v)) for g, v in values.items()}
               for metric, values in per_seed.items()},
            'class_accuracy': {c: sum(r['seeds'] * r['class_accuracy'][c] for r in runs) / seeds
                               for c in runs[0]['class_accuracy']},
            'confusion': np.sum([r['confusion'] for r in runs], axis=0).tolist(),
            'seeds': seeds,
            'std': {metric: {g: seed_std(v) for g, v in values.items()}
                    for metric, values in per_seed.items()},
            'per_seed': per_seed}


FROM_SEEDS = ('accuracy', 'log_loss', 'class_accuracy', 'confusion', 'seeds', 'std', 'per_seed')


def _row(cells) -> str:
    return '| ' + ' | '.join(cells) + ' |'


def _comparable(r: dict) -> bool:
    """Whether a run's numbers can be set against the paper's: only on the paper's data."""
    return r.get('dataset') == TAU


def _paper_rows(r: dict, columns: list[str]) -> list[str]:
    """The paper's row and ours - paper, per device, under a run that has paper numbers."""
    paper, ours = r['paper'], r['accuracy']
    given = lambda c: paper.get(c) is not None   # a config may leave cells out, as the paper '-'
    where = 'TAU20' if _comparable(r) else (f'TAU20; ours on {r.get("dataset") or "unknown"} '
                                             'data, not comparable')
    numbers = [f'{paper[c]:.1f}' if given(c) else '' for c in (*columns, 'overall', 'std')]
    diffs = [f'{ours[c] - paper[c]:+.1f}' if c in ours and given(c) else ''
             for c in (*columns, 'overall')]
    return [_row([f'paper: {paper["method"]} ({where})', paper.get('params') or '', *numbers]),
            _row(['ours - paper' + ('' if _comparable(r) else ' (not comparable)'), '', *diffs,
                  ''])]


def _paper_note(rows: dict[str, dict]) -> str:
    """The lines above a table with paper rows: what they are, and which runs are not comparable."""
    with_paper = [m for m, r in rows.items() if r.get('paper')]
    if not with_paper:
        return ''
    note = ("Paper rows: the QTI report's accuracy on TAU Urban Acoustic Scenes 2020 Mobile, "
            'development fold 1 (Kim et al., arXiv 2206.13909).\n')
    if other := [m for m in with_paper if not _comparable(rows[m])]:
        data = sorted({str(rows[m].get('dataset') or 'unknown') for m in other})
        note += (f'NOT COMPARABLE: {", ".join(other)} ran on {", ".join(data)} data, not TAU20: '
                 'the paper rows under them are for reference only.\n')
    return note + '\n'


def table(rows: dict[str, dict], params: dict[str, int] | None = None,
          metric: str = 'accuracy') -> str:
    """The paper's table: Method | #Param | A | B | C | S1..S6 | Overall | Std. Dev, one row per
    results dict; Std. Dev is the std over seeds of the overall figure (a run of several seeds
    shows mean ± std in every device cell too). In the accuracy table a
    run with paper numbers (results 'paper', 'dataset': see `write`) is followed by the paper's
    row and ours - paper per device, labelled not comparable unless the run was on TAU20 (the
    paper reports no log loss)."""
    columns = [c for c in [d.upper() for d in layout.EVAL_DEVICES] + ['unknown']
               if any(c in r[metric] for r in rows.values())]
    head = ['Method', '#Param', *columns, 'Overall', 'Std. Dev']
    lines = [_row(head), '|' + '---|' * len(head)]
    fmt = (lambda v: f'{v:.1f}') if metric == 'accuracy' else (lambda v: f'{v:.3f}')
    for method, r in rows.items():
        n = (params or {}).get(method)
        stds = r.get('std', {}).get(metric, {}) if r.get('seeds', 1) > 1 else {}
        cell = lambda c: fmt(r[metric][c]) + (f' ± {fmt(stds[c])}' if c in stds else '')
        lines.append(_row([method, f'{n / 1000:.1f}k' if n else '',
                           *(cell(c) if c in r[metric] else '' for c in columns),
                           fmt(r[metric]['overall']), fmt(r['std'][metric]['overall'])]))
        if metric == 'accuracy' and r.get('paper'):
            lines += _paper_rows(r, columns)
    note = _paper_note(rows) if metric == 'accuracy' else ''
    return note + '\n'.join(lines) + '\n'


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


def run_info(workdir: str) -> dict:
    """'paper' (the row's paper numbers or None) and 'dataset' of the workdir's config.json,
    which training writes when it starts; {} without one."""
    path = os.path.join(workdir, 'config.json')
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        config = json.load(f)
    return {'paper': config.get('paper'), 'dataset': config.get('data', {}).get('dataset')}


def results_name(split: str = 'test') -> str:
    """'results' for the test split (what sweeps and comparisons read), else 'results_<split>'."""
    return 'results' if split == 'test' else f'results_{split}'


def _revision(workdir: str) -> str | None:
    path = os.path.join(workdir, 'git_revision.txt')   # written by training when it starts
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


def write(r: dict, workdir: str, method: str, params: int | None = None, split: str = 'test',
          step: int | None = None) -> None:
    """results.json (with split, checkpoint step, the training code's revision, and the paper
    numbers and dataset of the run, so tables of it need no config), results.md (accuracy and
    log-loss tables) and plots/ in workdir; for another split than test results_<split>.json,
    .md and plots_<split>/, so the test results are never overwritten."""
    r = {**r, 'method': method, 'params': params, 'split': split, 'step': step,
         'revision': _revision(workdir), **run_info(workdir)}
    name = results_name(split)
    with open(os.path.join(workdir, f'{name}.json'), 'w') as f:
        json.dump(r, f, indent=2)
    with open(os.path.join(workdir, f'{name}.md'), 'w') as f:
        f.write(f'Split: {split}' + ('' if step is None else f', checkpoint step {step}')
                + '\n\nAccuracy (%)\n\n' + table({method: r}, {method: params})
                + '\nLog loss\n\n' + table({method: r}, {method: params}, 'log_loss'))
    plot(r, os.path.join(workdir, 'plots' if split == 'test' else f'plots_{split}'))


def load(workdir: str) -> tuple[str, dict, int | None]:
    """(method name, results, parameter count) of a finished training workdir; results written
    before they recorded the paper numbers get them from the workdir's config.json."""
    with open(os.path.join(workdir, 'results.json')) as f:
        r = json.load(f)
    if 'dataset' not in r:
        r.update(run_info(workdir))
    return r.get('method') or os.path.basename(os.path.normpath(workdir)), r, r.get('params')


SEEN, UNSEEN = ('A', 'B', 'C', 'S1', 'S2', 'S3'), ('S4', 'S5', 'S6')


def group_per_seed(r: dict, group: str, metric: str = 'accuracy') -> np.ndarray | None:
    """Per seed, the mean of `metric` over the group's devices ('seen': A, B, C, S1-S3;
    'unseen': S4-S6) or its 'overall' value; None when the run lacks one of the devices."""
    per_seed = r.get('per_seed', {}).get(metric) or {g: [v] for g, v in r[metric].items()}
    if group == 'overall':
        return np.asarray(per_seed['overall'], np.float64)
    devices = SEEN if group == 'seen' else UNSEEN
    if not all(d in per_seed for d in devices):
        return None
    return np.mean([per_seed[d] for d in devices], axis=0)


def seen_unseen(r: dict, metric: str = 'accuracy') -> dict[str, tuple[float, float]]:
    """Mean over seen (A, B, C, S1-S3) and unseen (S4-S6) devices, per seed, then mean and std
    over seeds: {'seen': (mean, std), 'unseen': (mean, std)} for the groups the run has."""
    out = {}
    for name in ('seen', 'unseen'):
        values = group_per_seed(r, name, metric)
        if values is not None:
            out[name] = (float(np.mean(values)), seed_std(list(values)))
    return out


def group_lines(rows: dict[str, dict]) -> str:
    lines = []
    for method, r in rows.items():
        groups = seen_unseen(r)
        if groups:
            lines.append(f'- {method} ({r.get("seeds", 1)} seed(s)): ' + ', '.join(
                f'{name} {m:.1f} ± {sd:.1f}' for name, (m, sd) in groups.items()))
    return ('Accuracy by device group (seen: A, B, C, S1-S3; unseen: S4-S6), mean ± std over '
            'seeds\n\n' + '\n'.join(lines) + '\n') if lines else ''


def compare(workdirs: list[str]) -> str:
    """Accuracy and log-loss tables of several workdirs, side by side in the paper's layout. Runs
    of the same row (e.g. the pruning and QAT phases) are told apart by their workdir's name."""
    rows, params = {}, {}
    for workdir in workdirs:
        name, r, n = load(workdir)
        if name in rows:
            name = f'{name} ({os.path.basename(os.path.normpath(workdir))})'
        rows[name], params[name] = r, n
    return ('Accuracy (%)\n\n' + table(rows, params) + '\nLog loss\n\n'
            + table(rows, params, 'log_loss') + '\n' + group_lines(rows))


if __name__ == '__main__':
    import sys
    if len(sys.argv) < 2:
        sys.exit('usage: python -m ascjax.evaluation WORKDIR [WORKDIR ...]  (prints their tables)')
    print(compare(sys.argv[1:]))
