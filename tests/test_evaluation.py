"""Result tables: the paper's row under ours with ours - paper, plainly not comparable off
TAU."""

import json
import os

import numpy as np
import pytest

from ascjax import evaluation
from ascjax.train import checkpoint
from experiments.configs import paper

HEAD = '| Method | #Param | A | B | C | S1 | S2 | S3 | S4 | S5 | S6 | Overall | Std. Dev |'


def _labels_devices(clips=10):
    return np.zeros(9 * clips, np.int64), np.repeat(np.arange(9), clips)


def _device_logits(correct_per_device, clips=10):
    """Logits of 10 clips per device A..S6 (true class 0), `correct_per_device[d]` of them right."""
    logits = np.zeros((9 * clips, 10))
    for d, right in enumerate(correct_per_device):
        logits[d * clips:d * clips + right, 0] = 5.0          # class 0, the true one
        logits[d * clips + right:(d + 1) * clips, 1] = 5.0
    return logits


def _results(correct_per_device=(8, 7, 7, 7, 7, 8, 7, 7, 7), clips=10):
    """Results of 10 clips per device A..S6, `correct_per_device[d]` of them right."""
    return evaluation.results(_device_logits(correct_per_device, clips), *_labels_devices(clips))


def _with_paper(r, dataset, row='mod8_resnorm'):
    return {**r, 'paper': paper.paper_config(row).to_dict(), 'dataset': dataset}


def test_paper_row_and_difference_under_a_tau_run():
    md = evaluation.table({'mod8_resnorm': _with_paper(_results(), 'tau2020mobile')},
                          {'mod8_resnorm': 314_970})
    lines = md.splitlines()
    assert 'NOT COMPARABLE' not in md and 'not comparable' not in md
    assert lines[lines.index(HEAD) + 2] == (
        '| mod8_resnorm | 315.0k | 80.0 | 70.0 | 70.0 | 70.0 | 70.0 | 80.0 | 70.0 | 70.0 | 70.0 '
        '| 72.2 | 0.0 |')
    assert lines[lines.index(HEAD) + 3] == (
        '| paper: BC-ResNet-Mod-8 + ResNorm (TAU20) | 315k | 81.3 | 74.4 | 74.2 | 75.6 | 73.1 '
        '| 78.6 | 73.0 | 74.0 | 72.7 | 75.2 | 0.4 |')
    assert lines[lines.index(HEAD) + 4] == (
        '| ours - paper |  | -1.3 | -4.4 | -4.2 | -5.6 | -3.1 | +1.4 | -3.0 | -4.0 | -2.7 | -3.0 '
        '|  |')
    assert md.index("Paper rows: the QTI report's accuracy on TAU") < md.index(HEAD)


def test_a_synthetic_run_is_labelled_not_comparable_above_and_in_the_rows():
    rows = {'mod1': _with_paper(_results(), 'synthetic', 'mod1'), 'plain': _results()}
    md = evaluation.table(rows)
    above = md[:md.index(HEAD)]
    assert 'NOT COMPARABLE: mod1 ran on synthetic data, not TAU20:' in above
    assert ('| paper: BC-ResNet-Mod-1 (TAU20; ours on synthetic data, not comparable) | 8.1k '
            '| 73.1 |' in md)
    assert '| ours - paper (not comparable) |  | +6.9 |' in md
    assert '| plain |' in md and md.count('| paper:') == 1     # a run without paper numbers


def test_no_paper_rows_without_paper_numbers_nor_in_the_log_loss_table():
    assert evaluation.table({'x': _results()}).startswith(HEAD)
    loss = evaluation.table({'x': _with_paper(_results(), 'synthetic')}, metric='log_loss')
    assert loss.startswith(HEAD) and 'paper' not in loss


def test_only_devices_of_ours_are_columns():
    """A run that saw fewer devices (the tiny fixture) keeps its own columns; the paper row fills
    just those."""
    r = _results()
    r['accuracy'] = {d: r['accuracy'][d] for d in ('A', 'B', 'overall')}
    md = evaluation.table({'mod1': _with_paper(r, 'synthetic', 'mod1')})
    assert '| Method | #Param | A | B | Overall | Std. Dev |' in md
    assert '| ours - paper (not comparable) |  | +6.9 | +8.8 | +13.3 |  |' in md


@pytest.fixture
def workdir(tmp_path):
    """A training workdir as train leaves it before evaluation: config.json of a paper row."""
    path = str(tmp_path / 'run')
    checkpoint.write_run_info(path, paper.get_config('mod1_resnorm,runlocal'))
    return path


def test_write_records_paper_and_dataset_and_tables_them(workdir):
    evaluation.write(_results(), workdir, 'mod1_resnorm', 8_055)
    saved = json.load(open(os.path.join(workdir, 'results.json')))
    assert saved['dataset'] == 'synthetic'
    assert saved['paper'] == paper.paper_config('mod1_resnorm').to_dict()
    md = open(os.path.join(workdir, 'results.md')).read()
    assert 'NOT COMPARABLE: mod1_resnorm ran on synthetic data' in md
    assert ('| paper: BC-ResNet-Mod-1 + ResNorm (TAU20; ours on synthetic data, not comparable) |'
            in md)


def test_load_fills_older_results_from_config_and_compare_keeps_same_rows_apart(workdir, tmp_path):
    with open(os.path.join(workdir, 'results.json'), 'w') as f:   # written before paper numbers
        json.dump({**_results(), 'method': 'mod1_resnorm', 'params': 8_055}, f)
    name, r, n = evaluation.load(workdir)
    assert (name, n, r['dataset'], r['paper']['overall']) == ('mod1_resnorm', 8_055, 'synthetic',
                                                               65.8)
    other = str(tmp_path / 'qat')
    checkpoint.write_run_info(other, paper.get_config('mod1_resnorm'))
    evaluation.write(_results(), other, 'mod1_resnorm', 8_055)
    text = evaluation.compare([workdir, other])
    assert '| mod1_resnorm | 8.1k |' in text and '| mod1_resnorm (qat) | 8.1k |' in text
    assert text.count('| paper: BC-ResNet-Mod-1 + ResNorm') == 2


def test_several_seeds_show_mean_and_std_per_device_and_seen_unseen_groups():
    logits = np.stack([_device_logits((8, 7, 7, 7, 7, 8, 7, 7, 7)),
                       _device_logits((6, 7, 7, 7, 7, 8, 5, 5, 5))])
    r = evaluation.results(logits, *_labels_devices())
    md = evaluation.table({'x': r})
    assert f'| x |  | 70.0 ± {np.std([80, 60], ddof=1):.1f} | 70.0 ± 0.0 |' in md
    groups = evaluation.seen_unseen(r)
    np.testing.assert_allclose(groups['seen'][0], (44 / 6 * 10 + 42 / 6 * 10) / 2)
    np.testing.assert_allclose(groups['unseen'], (60.0, np.std([70.0, 50.0], ddof=1)))


def test_pool_of_separately_trained_seeds_equals_the_seeds_trained_together():
    """Runs of one row's seeds as separate processes pool into the results of one run of all
    those seeds: same means, stds and per-seed values; confusions summed."""
    a = _device_logits((8, 7, 7, 7, 7, 8, 7, 7, 7))
    b = _device_logits((6, 7, 7, 7, 7, 8, 5, 5, 5))
    c = _device_logits((9, 9, 8, 7, 6, 5, 4, 3, 2))
    labels, devices = _labels_devices()
    together = evaluation.results(np.stack([a, b, c]), labels, devices)
    pooled = evaluation.pool([evaluation.results(a, labels, devices),
                              evaluation.results(np.stack([b, c]), labels, devices)])
    for key, value in [*((f'{k}/{g}', v) for k in ('accuracy', 'log_loss', 'class_accuracy')
                         for g, v in together[k].items()),
                       *((f'std/{m}/{g}', v) for m in together['std']
                         for g, v in together['std'][m].items())]:
        got = pooled
        for part in key.split('/'):
            got = got[part]
        np.testing.assert_allclose(got, value, err_msg=key)
    assert pooled['per_seed'] == together['per_seed'] and pooled['seeds'] == 3
    assert pooled['confusion'] == together['confusion']
    assert pooled['num_examples'] == together['num_examples']


def test_pool_refuses_runs_on_different_examples_and_drops_fields_that_differ():
    labels, devices = _labels_devices()
    one = {**_results(), 'step': 10, 'revision': 'abc', 'method': 'mod1'}
    two = {**_results((5,) * 9), 'step': 12, 'revision': 'abc', 'method': 'mod1'}
    pooled = evaluation.pool([one, two])
    assert (pooled['step'], pooled['revision'], pooled['method']) == (None, 'abc', 'mod1')
    with pytest.raises(ValueError, match='different examples'):
        evaluation.pool([one, _results(clips=5)])
    with pytest.raises(ValueError, match='no runs'):
        evaluation.pool([])
