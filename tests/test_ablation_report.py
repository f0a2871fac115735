"""The ablation report: pooled seed points per group, claims judged against two standard errors."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'tools'))
import ablation_report  # noqa: E402
from tests.test_evaluation import _results  # noqa: E402


def _pooled(per_seed_correct):
    from ascjax import evaluation
    return evaluation.pool([_results(c) for c in per_seed_correct])


def test_group_means_and_claims_that_hold_or_are_not_resolved():
    none = _pooled([(8, 8, 8, 8, 8, 8, 4, 4, 4), (8, 8, 8, 8, 8, 8, 5, 5, 5)])
    resnorm = _pooled([(8, 8, 8, 8, 8, 8, 7, 7, 7), (8, 8, 8, 8, 8, 8, 8, 8, 8)])
    freqin = _pooled([(9, 9, 9, 9, 9, 9, 6, 6, 6), (7, 7, 7, 7, 7, 7, 5, 5, 5)])
    np.testing.assert_allclose(ablation_report.per_seed_group(none, 'unseen'), [40, 50])
    np.testing.assert_allclose(ablation_report.per_seed_group(freqin, 'seen'), [90, 70])
    diff, se = ablation_report.margin(np.array([70., 80.]), np.array([40., 50.]))
    assert diff == 30 and np.isclose(se, np.sqrt(50 / 2 + 50 / 2))
    md = ablation_report.claims_table({'mod1': none, 'mod1_resnorm': resnorm,
                                       'mod1_freqin': freqin})
    lines = {line.split(' | ')[0].lstrip('| '): line for line in md.splitlines()}
    assert '| +30.0 ± 7.1 | yes |' in lines['ResNorm beats no normalisation on unseen devices '
                                           '(unseen)']
    # seen: FreqIN 80 +- 14 against 80 +- 0: no difference to speak of
    assert 'not resolved' in lines['FreqIN loses on seen devices against no normalisation (seen)']
    assert 'not run' in lines['Freq-MixStyle (not in the paper) beats no normalisation on unseen '
                              'devices (unseen)']


def test_paper_group_means_need_every_device():
    assert ablation_report.paper_group({'S4': 50, 'S5': 52, 'S6': 48}, 'unseen') == 50
    assert ablation_report.paper_group({'S4': 50}, 'unseen') is None
    assert ablation_report.paper_group({}, 'seen') is None
    assert ablation_report.paper_group({'overall': 69.5}, 'overall') == 69.5


def test_a_single_seed_side_is_judged_with_the_other_sides_spread():
    """Mod-8 with one seed against Mod-1 with two: the SE takes Mod-1's spread for both sides."""
    mod1 = _pooled([(8, 8, 8, 8, 8, 8, 4, 4, 4), (8, 8, 8, 8, 8, 8, 5, 5, 5)])   # overall 66.7, 70
    mod8 = _pooled([(9, 9, 9, 9, 9, 9, 9, 9, 9)])                               # overall 90
    a, b = (ablation_report.per_seed_group(r, 'overall') for r in (mod8, mod1))
    assert np.isclose(ablation_report.one_seed_se(a, b),
                      np.std(b, ddof=1) * np.sqrt(1 + 1 / 2))
    md = ablation_report.claims_table({'mod1': mod1, 'mod8': mod8})
    line = next(x for x in md.splitlines() if x.startswith('| Mod-8 beats Mod-1 (overall)'))
    assert '| yes (1 seed on a side' in line and 'nan' not in line
    md = ablation_report.claims_table({'mod1': mod8, 'mod8': mod8})   # one seed a side
    line = next(x for x in md.splitlines() if x.startswith('| Mod-8 beats Mod-1 (overall)'))
    assert line.endswith('| +0.0 | not judged (1 seed a side: no SE) |  |') and 'nan' not in line


def test_claims_are_judged_within_one_budget():
    """The convergence sweep's groups carry a budget suffix ('mod1.e120'): the claims are judged
    per budget, never a row at one budget against another row at another."""
    none = _pooled([(8, 8, 8, 8, 8, 8, 4, 4, 4), (8, 8, 8, 8, 8, 8, 5, 5, 5)])
    resnorm = _pooled([(8, 8, 8, 8, 8, 8, 7, 7, 7), (8, 8, 8, 8, 8, 8, 8, 8, 8)])
    split = ablation_report.by_budget({'mod1.e120': none, 'mod1_resnorm.e120': resnorm,
                                       'mod1.e240': resnorm, 'mod8': none})
    assert split == {'e120': {'mod1': none, 'mod1_resnorm': resnorm}, 'e240': {'mod1': resnorm},
                     '': {'mod8': none}}
    md = ablation_report.claims_table(split['e120'])
    line = next(x for x in md.splitlines() if x.startswith('| ResNorm beats no normalisation on '
                                                           'unseen devices (unseen)'))
    assert '| +30.0 ± 7.1 | yes |' in line


def test_budget_table_sets_each_row_against_its_next_longer_budget():
    none = _pooled([(8, 8, 8, 8, 8, 8, 4, 4, 4), (8, 8, 8, 8, 8, 8, 5, 5, 5)])   # unseen 40, 50
    longer = _pooled([(8, 8, 8, 8, 8, 8, 7, 7, 7), (8, 8, 8, 8, 8, 8, 8, 8, 8)])  # unseen 70, 80
    md = ablation_report.budget_table({'mod1.e120': none, 'mod1.e240': longer,
                                       'mod1.e96': none, 'mod1_resnorm.e120': none})
    rows = [x for x in md.splitlines() if x.startswith('| mod1')]
    # 96 -> 120: no change, under the seed std; 120 -> 240: +10 overall, over std 3.3 and 2 SE
    assert rows == ['| mod1 | 96 -> 120 | +0.0 ± 2.4 | +0.0 ± 7.1 | yes (std 2.4) | yes |',
                    '| mod1 | 120 -> 240 | +10.0 ± 2.4 | +30.0 ± 7.1 | no (std 2.4) | no |']
    assert ablation_report.budget_table({'mod1': none}) == ''
    one = _pooled([(8, 8, 8, 8, 8, 8, 5, 5, 5)])   # one seed at 240: the 120 seeds' spread
    md = ablation_report.budget_table({'mod1.e120': none, 'mod1.e240': one})
    assert ('| mod1 | 120 -> 240 | +1.7 ± 2.9 | +5.0 ± 8.7 | 1 seed: no std | '
            'yes (1 seed on a side') in md
