"""Trains one config in ascjax and in the PyTorch reference, N seeds each, and compares them.

    python tools/compare_torch.py --config=experiments/configs/paper.py:mod1 --seeds=3 \
        --out=DIR [--config.KEY=VALUE ...] [--frameworks=ascjax,torch] [--eval_fraction=0.8]

Seed s of either framework is the config with `seed = s`: its own initialisation, augmentation
and dropout draws, and the pipeline's data order for s (the same order in both frameworks).
Runs go to DIR/{ascjax,torch}/seed{s}; a finished run (its results.json) is not trained again,
so a killed comparison resumes, and two processes (`--frameworks=ascjax`, `--frameworks=torch`)
can share the cores and one DIR. Every invocation rewrites DIR/compare.json and DIR/compare.md
from the runs finished so far: per device, seen (A, B, C, S1-S3), unseen (S4-S6) and overall
accuracy and log loss, mean +- std over seeds per framework, the difference ascjax - torch with
its 95% (Welch) interval, whether ascjax's mean lies inside PyTorch's own 95% interval, and two
p-values that do not assume normal scores (Mann-Whitney: same location; Levene: same spread).
`--torch_start=ascjax` trains the torch side from ascjax's initial weights and augmentation
draws of each seed (put those runs in their own DIR). `--eval_fraction` also evaluates both at
that fraction of the steps (convergence check: the change over the last steps against the seed
std).

torch is a test/bench extra: pip install -e '.[test]'  (or pip install torch==2.13.0).
"""

from __future__ import annotations

import json
import logging
import os
import sys

import numpy as np
import scipy.stats
from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ascjax.evaluation import SEEN, UNSEEN  # noqa: E402  (the device groups of the tables)

FRAMEWORKS = ('ascjax', 'torch')
GROUPS = (*SEEN, *UNSEEN, 'seen', 'unseen', 'overall')
TAIL = 0.2      # the training-loss comparison: the last 20% of the steps


def seed_config(config, seed: int):
    config = config.copy_and_resolve_references()
    config.seed = seed
    config.num_seeds = 1
    return config


def eval_step_of(config, fraction: float) -> int | None:
    """The step at `fraction` of the run (None when fraction is 0 or 1)."""
    from ascjax import run as run_lib
    from ascjax.train import optim
    if not 0 < fraction < 1:
        return None
    train = len(run_lib.source(run_lib.open_data(config), 'train'))
    return int(round(fraction * optim.total_steps(config.train,
                                                  train // config.train.batch_size)))


def run_ascjax(config, workdir: str, eval_step: int | None) -> None:
    from ascjax.tasks import classifier, evaluate
    if eval_step:   # a checkpoint at eval_step, kept, to evaluate afterwards
        config.train.checkpoint_every_steps = eval_step
        config.train.keep_checkpoints = max(config.train.keep_checkpoints, 3)
    classifier.train_and_evaluate(config, workdir)
    if eval_step:
        evaluate.step_results(workdir, eval_step)


def run_torch(config, workdir: str, eval_step: int | None, threads: int,
              start: str = 'torch') -> None:
    try:
        import torch
    except ImportError:
        sys.exit("tools/compare_torch.py needs PyTorch, a test/bench extra: "
                 "pip install -e '.[test]'  (or: pip install torch==2.13.0, the CPU build)")
    from ascjax.torch_reference import train as torch_train
    torch.set_num_threads(threads)
    torch_train.train_and_evaluate(config, workdir, eval_steps=(eval_step,) if eval_step else (),
                                   start=start)


# --- statistics --------------------------------------------------------------------------------

def group_values(r: dict, metric: str) -> dict[str, float]:
    """Per device, seen / unseen means over devices, and overall, of one run's results."""
    v = dict(r[metric])
    out = {g: v[g] for g in GROUPS[:9] if g in v}
    for name, devices in (('seen', SEEN), ('unseen', UNSEEN)):
        if all(d in v for d in devices):
            out[name] = float(np.mean([v[d] for d in devices]))
    out['overall'] = v['overall']
    return out


def interval(values: list[float]) -> tuple[float, float]:
    """The 95% t-interval of the mean of `values` (degenerate with one value)."""
    n, mean = len(values), float(np.mean(values))
    if n < 2:
        return mean, mean
    half = scipy.stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / np.sqrt(n)
    return mean - half, mean + half


def welch_se(a, b) -> tuple[float, float]:
    """mean(a) - mean(b) and its Welch standard error, sqrt(var_a / n_a + var_b / n_b) (nan with
    fewer than 2 values on a side)."""
    diff = float(np.mean(a) - np.mean(b))
    if len(a) < 2 or len(b) < 2:
        return diff, float('nan')
    return diff, float(np.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b)))


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """mean(a) - mean(b) and its 95% Welch interval."""
    diff, se = welch_se(a, b)
    if np.isnan(se):
        return diff, float('nan'), float('nan')
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    if se == 0:
        return diff, diff, diff
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = scipy.stats.t.ppf(0.975, dof) * se
    return diff, diff - half, diff + half


def distribution_tests(a: list[float], b: list[float]) -> dict[str, float | None]:
    """p-values that do not assume normal scores: Mann-Whitney U (same location) and Levene's
    test around the median (same spread); None with fewer than 2 seeds on a side or no spread."""
    if min(len(a), len(b)) < 2 or np.ptp(np.concatenate([a, b])) == 0:
        return {'mann_whitney_p': None, 'levene_p': None}
    return {'mann_whitney_p': float(scipy.stats.mannwhitneyu(a, b).pvalue),
            'levene_p': float(scipy.stats.levene(a, b).pvalue)}


def summarise(runs: dict[str, list[dict]]) -> dict:
    """{metric: {group: {framework: {mean, std, values, ci95}, difference: ..., inside: bool}}}."""
    out = {}
    for metric in ('accuracy', 'log_loss'):
        table = {}
        for group in GROUPS:
            row = {}
            for fw, results in runs.items():
                values = [group_values(r, metric)[group] for r in results]
                row[fw] = {'mean': float(np.mean(values)),
                           'std': float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                           'values': values, 'ci95': interval(values)}
            if all(fw in row for fw in FRAMEWORKS):
                diff, lo, hi = welch(row['ascjax']['values'], row['torch']['values'])
                low, high = row['torch']['ci95']
                row['difference'] = {'mean': diff, 'ci95': (lo, hi)}
                row['tests'] = distribution_tests(row['ascjax']['values'], row['torch']['values'])
                # Undefined with one torch seed (no interval): None, shown as an empty cell.
                row['ascjax_inside_torch_ci95'] = (
                    bool(low <= row['ascjax']['mean'] <= high)
                    if len(row['torch']['values']) > 1 else None)
            table[group] = row
        out[metric] = table
    return out


def markdown(summary: dict, runs: dict[str, list[dict]], title: str) -> str:
    lines = [f'# {title}', '',
             ', '.join(f'{fw}: {len(r)} seed(s)' for fw, r in runs.items()), '']
    for metric, fmt in (('accuracy', '{:.1f}'), ('log_loss', '{:.3f}')):
        lines += [f'## {metric.replace("_", " ")}', '',
                  '| group | ascjax | torch | ascjax - torch [95% CI] | ascjax in torch 95% CI '
                  '| Mann-Whitney p | Levene p |',
                  '|---|---|---|---|---|---|---|']
        for group, row in summary[metric].items():
            cell = lambda fw: (f'{fmt.format(row[fw]["mean"])} ± {fmt.format(row[fw]["std"])}'
                               if fw in row else '')
            diff = row.get('difference')
            dtext = (f'{fmt.format(diff["mean"])} [{fmt.format(diff["ci95"][0])}, '
                     f'{fmt.format(diff["ci95"][1])}]' if diff else '')
            inside = {True: 'yes', False: '**no**'}.get(row.get('ascjax_inside_torch_ci95'), '')
            tests = row.get('tests', {})
            pvalues = ' | '.join('' if tests.get(k) is None else f'{tests[k]:.2f}'
                                 for k in ('mann_whitney_p', 'levene_p'))
            lines.append(f'| {group} | {cell("ascjax")} | {cell("torch")} | {dtext} | {inside} '
                         f'| {pvalues} |')
        lines.append('')
    return '\n'.join(lines)


def finished(out: str, framework: str, prefix: str = 'results.json') -> list[dict]:
    """The results of every finished seed of `framework`: its results.json, or (`prefix`
    'results_step') its intermediate evaluations."""
    root = os.path.join(out, framework)
    results = []
    for seed_dir in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        for name in sorted(os.listdir(os.path.join(root, seed_dir))):
            if name.startswith(prefix) and name.endswith('.json'):
                with open(os.path.join(root, seed_dir, name)) as f:
                    results.append(json.load(f))
    return results


def finished_dirs(out: str, framework: str) -> list[str]:
    """The workdirs of `framework`'s finished seeds (those with a results.json)."""
    root = os.path.join(out, framework)
    seeds = sorted(os.listdir(root)) if os.path.isdir(root) else []
    return [os.path.join(root, d) for d in seeds
            if os.path.exists(os.path.join(root, d, 'results.json'))]


def train_loss_tail(workdir: str, framework: str, fraction: float = TAIL) -> float | None:
    """Mean training loss over the last `fraction` of a finished run's steps: ascjax's logged
    steps (train_metrics.jsonl, one batch every log_every_steps), every step of torch's
    (train_losses.json). Kept in train_loss_tail.json, which is tracked (the logs are not)."""
    cache = os.path.join(workdir, 'train_loss_tail.json')
    if os.path.exists(cache):
        with open(cache) as f:
            return json.load(f)['mean']
    if framework == 'ascjax':
        path = os.path.join(workdir, 'train_metrics.jsonl')
        if not os.path.exists(path):
            return None
        with open(path) as f:
            logged = {d['step']: float(np.mean(d['loss'])) for d in map(json.loads, f)}
    else:
        path = os.path.join(workdir, 'train_losses.json')
        if not os.path.exists(path):
            return None
        with open(path) as f:
            logged = dict(enumerate(json.load(f), start=1))
    total = max(logged)
    tail = [v for step, v in logged.items() if step > (1 - fraction) * total]
    mean = float(np.mean(tail))
    with open(cache, 'w') as f:
        json.dump({'mean': mean, 'fraction': fraction, 'steps': total, 'points': len(tail)}, f)
    return mean


def train_loss_summary(out: str) -> dict:
    """Per framework: the tail training loss of each finished seed, mean +- std; the difference."""
    row = {}
    for fw in FRAMEWORKS:
        done = finished_dirs(out, fw)
        values = [v for v in (train_loss_tail(w, fw) for w in done) if v is not None]
        if values:
            row[fw] = {'mean': float(np.mean(values)), 'values': values,
                       'std': float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
    if all(fw in row for fw in FRAMEWORKS):
        diff, lo, hi = welch(row['ascjax']['values'], row['torch']['values'])
        row['difference'] = {'mean': diff, 'ci95': (lo, hi)}
    return row


def loss_markdown(loss: dict) -> str:
    cells = [f'{loss[fw]["mean"]:.3f} ± {loss[fw]["std"]:.3f}' if fw in loss else ''
             for fw in FRAMEWORKS]
    if 'difference' in loss:
        d = loss['difference']
        cells.append(f'{d["mean"]:.3f} [{d["ci95"][0]:.3f}, {d["ci95"][1]:.3f}]')
    else:
        cells.append('')
    return (f'\n## training loss, last {TAIL:.0%} of the steps (mean over seeds)\n\n'
            '| ascjax | torch | ascjax - torch [95% CI] |\n|---|---|---|\n'
            f'| {" | ".join(cells)} |\n')


def per_seed_markdown(out: str) -> str:
    """One line per finished seed and framework: seen, unseen and overall accuracy, log loss."""
    rows = []
    for fw in FRAMEWORKS:
        for workdir in finished_dirs(out, fw):
            with open(os.path.join(workdir, 'results.json')) as f:
                results = json.load(f)
            acc, loss = group_values(results, 'accuracy'), group_values(results, 'log_loss')
            seed = os.path.basename(workdir)
            rows.append((int(seed.removeprefix('seed')), fw,
                         f'| {seed} | {fw} | {acc["seen"]:.1f} | {acc["unseen"]:.1f} | '
                         f'{acc["overall"]:.1f} | {loss["overall"]:.3f} |'))
    return '\n'.join(['\n## per seed (final)\n',
                      '| seed | framework | seen | unseen | overall | log loss |',
                      '|---|---|---|---|---|---|'] + [line for *_, line in sorted(rows)]) + '\n'


def write_summary(out: str, row: str) -> dict:
    runs = {fw: finished(out, fw) for fw in FRAMEWORKS}
    runs = {fw: r for fw, r in runs.items() if r}
    if not runs:
        return {}
    summary = {'row': row, 'seeds': {fw: len(r) for fw, r in runs.items()},
               'final': summarise(runs)}
    partial = {fw: finished(out, fw, 'results_step') for fw in runs}
    partial = {fw: r for fw, r in partial.items() if r}
    if partial:
        summary['at_eval_fraction'] = summarise(partial)
    loss = summary['train_loss_tail'] = train_loss_summary(out)
    with open(os.path.join(out, 'compare.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    text = markdown(summary['final'], runs, f'{row}: ascjax vs PyTorch (final)')
    if partial:
        text += '\n' + markdown(summary['at_eval_fraction'], partial,
                                f'{row}: at the intermediate step (convergence check)')
    if loss:
        text += loss_markdown(loss)
    text += per_seed_markdown(out)
    with open(os.path.join(out, 'compare.md'), 'w') as f:
        f.write(text)
    return summary


def main(argv):
    from ascjax import logs
    logs.quiet()   # orbax/TFDS/JAX INFO lines only with --verbosity=1
    del argv
    config = _CONFIG.value
    out = _OUT.value
    frameworks = [f for f in _FRAMEWORKS.value if f]
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        raise app.UsageError(f'--frameworks: unknown {sorted(unknown)}; choose from {FRAMEWORKS}')
    os.makedirs(out, exist_ok=True)
    eval_step = eval_step_of(config, _EVAL_FRACTION.value)
    for seed in range(_FIRST_SEED.value, _SEEDS.value):
        for fw in frameworks:
            workdir = os.path.join(out, fw, f'seed{seed}')
            if os.path.exists(os.path.join(workdir, 'results.json')):
                logging.info('%s seed %d: finished, skipped', fw, seed)
                continue
            logging.info('%s seed %d: training into %s', fw, seed, workdir)
            cfg = seed_config(config, seed)
            if fw == 'ascjax':
                run_ascjax(cfg, workdir, eval_step)
            else:
                run_torch(cfg, workdir, eval_step, _THREADS.value, _TORCH_START.value)
            write_summary(out, config.get('row', config.model.name))
    summary = write_summary(out, config.get('row', config.model.name))
    if summary:
        print(open(os.path.join(out, 'compare.md')).read())


if __name__ == '__main__':
    _CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file[:row].',
                                              lock_config=True)
    _SEEDS = flags.DEFINE_integer('seeds', 3, 'Seeds per framework (config.seed = 0..N-1).')
    _FIRST_SEED = flags.DEFINE_integer(
        'first_seed', 0, 'Train seeds first_seed..seeds-1 only (a second process on other cores '
        'takes the last seeds; the summary uses every finished seed).')
    _OUT = flags.DEFINE_string('out', None, 'Output folder.', required=True)
    _FRAMEWORKS = flags.DEFINE_list('frameworks', list(FRAMEWORKS),
                                    'Which frameworks to train (the summary uses all finished).')
    _EVAL_FRACTION = flags.DEFINE_float('eval_fraction', 0.8,
                                        'Also evaluate at this fraction of the steps (0: off).')
    _THREADS = flags.DEFINE_integer('torch_threads', 2, 'torch.set_num_threads.')
    _TORCH_START = flags.DEFINE_enum(
        'torch_start', 'torch', ['torch', 'ascjax'],
        "torch: PyTorch's own initialisation and draws; ascjax: the torch trainer starts from "
        "ascjax's initial weights for each seed and applies ascjax's augmentation draws (only "
        'the dropout masks stay torch\'s), which takes the generators out of the comparison.')
    flags.mark_flag_as_required('config')
    app.run(main)
