"""tools/compare_torch.py's statistics: groups, intervals, the side-by-side summary."""

import json
import os
import sys

import numpy as np
import pytest
import scipy.stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'tools'))
import compare_torch  # noqa: E402

DEVICES = ('A', 'B', 'C', 'S1', 'S2', 'S3', 'S4', 'S5', 'S6')


def _results(level: float, unseen_drop: float) -> dict:
    acc = {d: level - (unseen_drop if d in ('S4', 'S5', 'S6') else 0.0) for d in DEVICES}
    acc['overall'] = float(np.mean(list(acc.values())))
    return {'accuracy': acc, 'log_loss': {k: 1.0 for k in acc}}


def test_groups_average_seen_and_unseen_devices():
    g = compare_torch.group_values(_results(60.0, 15.0), 'accuracy')
    assert g['seen'] == 60.0 and g['unseen'] == 45.0 and g['overall'] == 55.0


def test_interval_is_the_t_interval():
    lo, hi = compare_torch.interval([1.0, 2.0, 3.0])
    half = scipy.stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert (lo, hi) == pytest.approx((2 - half, 2 + half))


def test_summary_flags_a_framework_outside_the_other_interval(tmp_path):
    for fw, levels in (('ascjax', (50.0, 51.0, 52.0)), ('torch', (60.0, 61.0, 62.0))):
        for seed, level in enumerate(levels):
            run = tmp_path / fw / f'seed{seed}'
            run.mkdir(parents=True)
            (run / 'results.json').write_text(json.dumps(_results(level, 10.0)))
    summary = compare_torch.write_summary(str(tmp_path), 'mod1')
    overall = summary['final']['accuracy']['overall']
    assert overall['difference']['mean'] == pytest.approx(-10.0)
    lo, hi = overall['difference']['ci95']
    assert lo < -10.0 < hi < 0.0
    assert overall['ascjax_inside_torch_ci95'] is False
    text = (tmp_path / 'compare.md').read_text()
    assert '**no**' in text
    # Level 51 (seed1): seen = level, unseen = level - 10, overall = level - 10/3.
    assert '| seed1 | ascjax | 51.0 | 41.0 | 47.7 | 1.000 |' in text
    assert text.index('| seed0 | torch |') < text.index('| seed1 | ascjax |')


def test_equal_frameworks_lie_inside():
    runs = {fw: [_results(60.0 + s, 10.0) for s in range(3)] for fw in ('ascjax', 'torch')}
    overall = compare_torch.summarise(runs)['accuracy']['overall']
    assert overall['ascjax_inside_torch_ci95'] and overall['difference']['mean'] == 0.0


def test_one_torch_seed_leaves_inside_undecided():
    runs = {'ascjax': [_results(60.0, 10.0)], 'torch': [_results(70.0, 10.0)]}
    overall = compare_torch.summarise(runs)['accuracy']['overall']
    assert overall['ascjax_inside_torch_ci95'] is None
    assert '**no**' not in compare_torch.markdown(compare_torch.summarise(runs), runs, 't')


def test_training_loss_tail_reads_both_frameworks_logs_and_keeps_it(tmp_path):
    """The last 20% of 100 steps: ascjax's logged steps 81..100, every torch step 81..100."""
    ascjax, torch = tmp_path / 'ascjax' / 'seed0', tmp_path / 'torch' / 'seed0'
    for run in (ascjax, torch):
        run.mkdir(parents=True)
        (run / 'results.json').write_text(json.dumps(_results(60.0, 10.0)))
    (ascjax / 'train_metrics.jsonl').write_text(''.join(
        json.dumps({'step': s, 'loss': [2.0 if s <= 80 else 1.0]}) + '\n'
        for s in range(10, 101, 10)))
    (torch / 'train_losses.json').write_text(json.dumps([2.0] * 80 + [1.5] * 20))
    loss = compare_torch.write_summary(str(tmp_path), 'mod1')['train_loss_tail']
    assert loss['ascjax']['values'] == [1.0] and loss['torch']['values'] == [1.5]
    assert loss['difference']['mean'] == pytest.approx(-0.5)
    (ascjax / 'train_metrics.jsonl').unlink()   # the logs are not tracked: the kept tail is read
    assert compare_torch.train_loss_tail(str(ascjax), 'ascjax') == 1.0
    assert 'training loss, last 20%' in (tmp_path / 'compare.md').read_text()


def test_distribution_tests_need_two_seeds_a_side():
    tests = compare_torch.distribution_tests([1.0, 2.0, 3.0, 4.0], [10.0, 11.0, 12.0, 13.0])
    assert tests['mann_whitney_p'] == pytest.approx(0.0286, abs=1e-3)   # exact, 4 vs 4 apart
    assert tests['levene_p'] == pytest.approx(1.0)                       # equal spreads
    assert compare_torch.distribution_tests([1.0], [2.0, 3.0]) == {
        'mann_whitney_p': None, 'levene_p': None}
