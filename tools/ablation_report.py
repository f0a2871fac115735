"""The synthetic ablation's report: a sweep of seed points pooled per group, set against the paper.

    python tools/ablation_report.py --sweep=experiments/sweeps/synthetic_ablation.py \
        --root=runs/ablation [--eval_step=4080 | --eval_at_checkpoint] > report.md

Prints, in markdown: the paper's table over the groups (accuracy, mean ± std per device, the
paper's row and ours - paper under each; log loss), seen / unseen / overall means with std, the
convergence checks (each group at `--eval_step`, or at its kept checkpoint, against its final
step, the change against the seed std; each row against the same row at its next longer budget) and
each of the paper's claims, per budget, with its margin against two standard errors. Groups with
no finished point are left out and named; nothing is trained here (a checkpoint is evaluated
once and kept as results_step{N}.json).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys

import numpy as np
from absl import app, flags

from ascjax import evaluation, sweep

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_torch  # noqa: E402  (its Welch standard error; tools/ is not a package)


@dataclasses.dataclass(frozen=True)
class Claim:
    text: str
    better: str            # the group that should score higher
    worse: str
    group: str             # 'seen' | 'unseen' | 'overall'


# The paper's claims (Kim et al., §4; REFERENCE.md §0), each as "better beats worse on group".
CLAIMS = (
    Claim('ResNorm beats no normalisation on unseen devices', 'mod1_resnorm', 'mod1', 'unseen'),
    Claim('FreqIN gains on unseen devices over no normalisation', 'mod1_freqin', 'mod1', 'unseen'),
    Claim('FreqIN loses on seen devices against no normalisation', 'mod1', 'mod1_freqin', 'seen'),
    Claim('Pre-ResNorm keeps seen accuracy better than FreqIN', 'mod1_preresnorm', 'mod1_freqin',
          'seen'),
    Claim('ResNorm keeps seen accuracy better than FreqIN', 'mod1_resnorm', 'mod1_freqin', 'seen'),
    Claim('Freq-MixStyle (not in the paper) beats no normalisation on unseen devices',
          'mod1_freqmixstyle', 'mod1', 'unseen'),
    Claim('Freq-MixStyle on top of ResNorm gains on unseen devices', 'mod1_resnorm_freqmixstyle',
          'mod1_resnorm', 'unseen'),
    Claim('Mod-8 beats Mod-1', 'mod8', 'mod1', 'overall'),
    Claim('Mod-8 + ResNorm beats Mod-1 + ResNorm', 'mod8_resnorm', 'mod1_resnorm', 'overall'),
    Claim('ResNorm beats no normalisation on unseen devices, Mod-8', 'mod8_resnorm', 'mod8',
          'unseen'),
    Claim('The device translator gains on unseen devices (paper: Mod-8, +0.7)',
          'mod1_resnorm_translator', 'mod1_resnorm', 'unseen'),
)


def per_seed_group(r: dict, group: str) -> np.ndarray:
    """Per seed, the mean accuracy over the group's devices (seen / unseen), or 'overall'."""
    return evaluation.group_per_seed(r, group)


margin = compare_torch.welch_se   # mean(a) - mean(b) and its Welch standard error


def paper_group(paper: dict, group: str) -> float | None:
    if group == 'overall':
        return (paper or {}).get('overall')
    devices = evaluation.SEEN if group == 'seen' else evaluation.UNSEEN
    if not paper or any(paper.get(d) is None for d in devices):
        return None
    return float(np.mean([paper[d] for d in devices]))


def pooled_groups(points, root: str) -> tuple[dict, dict, list[str]]:
    """{group: pooled results}, {group: its points' workdirs}, groups without a finished point.
    The paper's numbers come from the point's config (a Freq-MixStyle row has none)."""
    by_name = {p.name: p for p in points}
    configs = dict(zip(by_name, sweep.check(points, root)))
    members = {**{p.name: [p.name] for p in points if p.group is None}, **sweep.groups(points)}
    runs, dirs, missing = {}, {}, []
    for group, names in members.items():
        done = [n for n in names if sweep.state(by_name[n], root)[0] == 'done']
        dirs[group] = [os.path.join(root, n) for n in done]
        runs[group] = [{**evaluation.load(d)[1], 'paper': configs[n].paper.to_dict() or None}
                       for n, d in zip(done, dirs[group])]
    pooled = {}
    for group, rs in runs.items():
        if rs:
            pooled[group] = evaluation.pool(rs)
        else:
            missing.append(group)
    return pooled, dirs, missing


def group_table(pooled: dict) -> str:
    lines = ['| row | seeds | seen | unseen | seen - unseen | overall | log loss | '
             'paper seen | paper unseen | paper overall |', '|' + '---|' * 10]
    for group, r in pooled.items():
        s, u, o = (per_seed_group(r, g) for g in ('seen', 'unseen', 'overall'))
        paper = r.get('paper') or {}
        ps, pu = paper_group(paper, 'seen'), paper_group(paper, 'unseen')
        cell = lambda x: f'{np.mean(x):.1f} ± {evaluation.seed_std(x):.1f}'
        lines.append(f'| {group} | {r["seeds"]} | {cell(s)} | {cell(u)} | {np.mean(s - u):.1f} | '
                     f'{cell(o)} | {r["log_loss"]["overall"]:.3f} ± '
                     f'{r["std"]["log_loss"]["overall"]:.3f} | '
                     + ' | '.join('' if v is None else f'{v:.1f}'
                                  for v in (ps, pu, paper.get('overall'))) + ' |')
    return '\n'.join(lines) + '\n'


def convergence_table(pooled: dict, dirs: dict, steps: dict) -> str:
    """Each group's overall accuracy at its checkpoint `steps[group]` (80% of its steps in the
    sweeps) against the end: the issue's test, the change under the seed std."""
    from ascjax.tasks import evaluate
    lines = ['| row | step | overall there | final | change | seed std (final) | change < std |',
             '|' + '---|' * 7]
    for group, r in pooled.items():
        early = np.asarray([evaluate.step_results(d, steps[group])['accuracy']['overall']
                            for d in dirs[group]])
        final = per_seed_group(r, 'overall')
        change, std = float(np.mean(final - early)), evaluation.seed_std(final)
        verdict = ('yes' if abs(change) < std else 'no') if len(final) > 1 else '1 seed: no std'
        lines.append(f'| {group} | {steps[group]} | {np.mean(early):.1f} | {np.mean(final):.1f} | '
                     f'{change:+.1f} | {std:.1f} | {verdict} |')
    return '\n'.join(lines) + '\n'


def budget_table(pooled: dict) -> str:
    """Each row at a budget against its next longer one ('mod1.e96' -> 'mod1.e120' -> 'mod1.e240'):
    the change of the seed means, overall and unseen, with its Welch standard error. Two readings:
    the issue's last-20% test across budgets (a run of 80% of the steps, annealed the same way,
    against the full run: the overall change under the longer budget's seed std) and the change
    within 2 SE (the test of a doubled budget)."""
    budgets = {}
    for group in pooled:
        m = re.fullmatch(r'(.+)\.e(\d+)', group)
        if m:
            budgets.setdefault(m[1], []).append(int(m[2]))
    lines = ['| row | budgets (epochs) | overall change ± SE | unseen change ± SE | '
             'overall change under the seed std (longer) | within 2 SE |', '|' + '---|' * 6]
    for row, epochs in budgets.items():
        epochs = sorted(epochs)
        for short, long in zip(epochs, epochs[1:]):
            a, b = pooled[f'{row}.e{long}'], pooled[f'{row}.e{short}']
            (overall, se_o, note), (unseen, se_u, _) = (
                seed_margin(per_seed_group(a, g), per_seed_group(b, g))
                for g in ('overall', 'unseen'))
            within = abs(overall) <= 2 * se_o and abs(unseen) <= 2 * se_u
            cells = [f'{overall:+.1f} ± {se_o:.1f}', f'{unseen:+.1f} ± {se_u:.1f}']
            final = per_seed_group(a, 'overall')
            std = evaluation.seed_std(final)
            under = (f'{"yes" if abs(overall) < std else "no"} (std {std:.1f})'
                     if len(final) > 1 else '1 seed: no std')
            lines.append(f'| {row} | {short} -> {long} | {cells[0]} | {cells[1]} | {under} | '
                         f'{"yes" if within else "no"}{note} |')
    return '\n'.join(lines) + '\n' if len(lines) > 2 else ''


def one_seed_se(a, b) -> float:
    """The standard error of mean(a) - mean(b) when one side has a single seed: both sides taken
    to spread as the side with several seeds does, s * sqrt(1/n_a + 1/n_b)."""
    s = evaluation.seed_std(a if len(a) > 1 else b)
    return float(s * np.sqrt(1 / len(a) + 1 / len(b)))


def seed_margin(a, b) -> tuple[float, float, str]:
    """mean(a) - mean(b), its Welch standard error and a note: with one seed on one side, that
    side taken to spread as the other (`one_seed_se`); with one seed a side, SE nan."""
    diff, se = margin(a, b)
    if np.isnan(se) and max(len(a), len(b)) > 1:
        return diff, one_seed_se(a, b), ' (1 seed on a side: SE from the other\'s spread)'
    return diff, se, ''


def by_budget(pooled: dict) -> dict:
    """`pooled` split by budget and keyed by row: {'': ...} for the ablation's groups, {'e120':
    {'mod1': ...}, 'e240': ...} for the convergence sweep's ('mod1_resnorm.e120'), so the claims
    are judged within one budget."""
    out = {}
    for group, r in pooled.items():
        m = re.fullmatch(r'(.+?)(?:\.(e\d+))?', group)
        out.setdefault(m[2] or '', {})[m[1]] = r
    return out


def claims_table(pooled: dict) -> str:
    lines = ['| claim | ours: difference ± SE | holds here (difference > 2 SE) | '
             'paper\'s difference |',
             '|---|---|---|---|']
    for c in CLAIMS:
        if c.better not in pooled or c.worse not in pooled:
            lines.append(f'| {c.text} ({c.group}) | not run | | |')
            continue
        diff, se, note = seed_margin(*(per_seed_group(pooled[g], c.group)
                                       for g in (c.better, c.worse)))
        verdict = ('yes' if diff > 2 * se else 'reversed' if diff < -2 * se else
                   'not resolved') + note
        if np.isnan(se):   # one seed a side: a difference, and no spread to judge it by
            verdict = 'not judged (1 seed a side: no SE)'
        pb, pw = (paper_group(pooled[g].get('paper') or {}, c.group) for g in (c.better, c.worse))
        paper = '' if pb is None or pw is None else f'{pb - pw:+.1f}'
        ours = f'{diff:+.1f}' + ('' if np.isnan(se) else f' ± {se:.1f}')
        lines.append(f'| {c.text} ({c.group}) | {ours} | {verdict} | {paper} |')
    return '\n'.join(lines) + '\n'


def report(points, root: str, eval_step: int | None, at_checkpoint: bool = False) -> str:
    """The report in markdown; the convergence check at `eval_step` for every group, or with
    `at_checkpoint` at each group's kept checkpoint (its `train.checkpoint_every_steps`)."""
    pooled, dirs, missing = pooled_groups(points, root)
    params = {g: r.get('params') for g, r in pooled.items()}
    parts = ['Accuracy (%), mean ± std over seeds\n', evaluation.table(pooled, params),
             '\nLog loss\n', evaluation.table(pooled, params, 'log_loss'),
             '\nDevice groups (seen: A, B, C, S1-S3; unseen: S4-S6), accuracy %, mean ± std '
             'over seeds\n', group_table(pooled)]
    for budget, rows in by_budget(pooled).items():
        parts += ['\nThe paper\'s claims' + (f' at {budget[1:]} epochs' if budget else '')
                  + ' (difference of means, Welch standard error over seeds)\n',
                  claims_table(rows)]
    if eval_step or at_checkpoint:
        kept = {p.group or p.name: p.overrides.get('train.checkpoint_every_steps')
                for p in points}
        steps = {g: kept[g] if at_checkpoint else eval_step for g in pooled}
        parts += ['\nConvergence: overall accuracy at a checkpoint and at the end\n',
                  convergence_table(pooled, dirs, steps)]
    budgets = budget_table(pooled)
    if budgets:
        parts += ['\nConvergence: each row against its next longer budget (Welch standard error '
                  'over seeds)\n', budgets]
    if missing:
        parts.append(f'\nNot run (no finished point): {", ".join(missing)}\n')
    return '\n'.join(parts)


def main(argv):
    from ascjax import logs
    logs.quiet()
    del argv
    points = sweep.load_sweep(FLAGS.sweep)
    print(report(points, FLAGS.root, FLAGS.eval_step or None, FLAGS.eval_at_checkpoint))


if __name__ == '__main__':
    FLAGS = flags.FLAGS
    flags.DEFINE_string('sweep', None, 'The sweep file.', required=True)
    flags.DEFINE_string('root', None, 'The sweep folder.', required=True)
    flags.DEFINE_integer('eval_step', 0, 'Also evaluate every point at this checkpoint step '
                         '(the convergence check; 0: off).')
    flags.DEFINE_bool('eval_at_checkpoint', False, 'Also evaluate every point at its kept '
                      'checkpoint (its train.checkpoint_every_steps; the sweeps keep 80% of the '
                      'steps), the convergence check of sweeps with several budgets.')
    app.run(main)
