"""experiments/configs/paper.py: the paper's table as data, the KD rows' recipe and refusal,
options."""

import numpy as np
import pytest

from ascjax import run as run_lib
from ascjax.tasks import classifier
from experiments.configs import paper
from tests import tiny_config

# REFERENCE.md §0, copied by hand (CP-ResNet is not a row of ours):
# row: (Method, #Param, A, B, C, S1, S2, S3, S4, S5, S6, Overall, Std. Dev)
EXPECTED = {
    'mod1': ('BC-ResNet-Mod-1', '8.1k',
             73.1, 61.2, 65.3, 58.2, 57.3, 66.2, 51.5, 51.5, 46.3, 58.9, 0.8),
    'mod1_globalfreqnorm': ('BC-ResNet-Mod-1 + Global FreqNorm', '8.1k',
                            73.9, 60.9, 65.5, 60.2, 57.9, 67.9, 50.2, 54.3, 49.4, 60.0, 0.9),
    'mod1_freqin': ('BC-ResNet-Mod-1 + FreqIN', '8.1k',
                    69.9, 63.5, 60.0, 65.3, 66.7, 67.6, 65.9, 64.9, 62.0, 65.1, 0.6),
    'mod1_preresnorm': ('BC-ResNet-Mod-1 + Pre-ResNorm', '8.1k',
                        75.1, 68.9, 67.0, 66.0, 63.9, 69.3, 63.4, 66.9, 63.6, 67.1, 0.8),
    'mod1_resnorm': ('BC-ResNet-Mod-1 + ResNorm', '8.1k',
                     76.4, 65.1, 68.3, 66.0, 62.2, 69.7, 63.0, 63.0, 58.3, 65.8, 0.7),
    'bcresnet8_ssn4': ('BC-ResNet-8, num SSN group=4', '317k',
                       77.9, 70.4, 72.4, 69.5, 68.3, 69.8, 66.3, 64.1, 58.6, 68.6, 0.4),
    'mod8': ('BC-ResNet-Mod-8', '315k',
             80.7, 72.8, 74.4, 71.4, 68.7, 71.0, 62.2, 65.3, 59.4, 69.5, 0.3),
    'mod8_preresnorm': ('BC-ResNet-Mod-8 + Pre-ResNorm', '315k',
                        80.8, 73.7, 73.0, 74.0, 72.9, 77.8, 73.3, 72.1, 71.0, 74.3, 0.3),
    'mod8_resnorm': ('BC-ResNet-Mod-8 + ResNorm', '315k',
                     81.3, 74.4, 74.2, 75.6, 73.1, 78.6, 73.0, 74.0, 72.7, 75.2, 0.4),
    'mod8_resnorm_translator': ('BC-ResNet-Mod-8 + ResNorm, Device Translator', '315k',
                                80.5, 74.4, 73.9, 76.0, 73.2, 78.5, 74.1, 74.1, 73.6, 75.4, 0.3),
    'mod8_resnorm_kd': ('BC-ResNet-Mod-8 + ResNorm, 300 epoch, KD', '315k',
                        82.6, 75.6, 74.7, 77.0, 74.2, 78.7, 75.1, 74.8, 73.4, 76.3, 0.8),
    'mod8_resnorm_kd_compressed': ('+ model compress', None,
                                   82.0, 73.8, 74.3, 76.2, 73.2, 78.8, 73.8, 72.8, 73.3, 75.3,
                                   0.8),
}
KEYS = ('A', 'B', 'C', 'S1', 'S2', 'S3', 'S4', 'S5', 'S6', 'overall', 'std')


def test_every_row_carries_the_papers_numbers():
    assert set(paper.ROWS) == set(EXPECTED)
    for row, (method, params, *numbers) in EXPECTED.items():
        r = paper.ROWS[row]
        assert (r.method, r.params, r.paper) == (method, params, dict(zip(KEYS, numbers))), row
        assert paper.get_config(row).paper.to_dict() == {'method': method, 'params': params,
                                                         **dict(zip(KEYS, numbers))}, row


def test_the_papers_headline_numbers_sit_on_their_rows():
    overall = {row: r.paper['overall'] for row, r in paper.ROWS.items()}
    assert overall['mod8_resnorm_kd'] == 76.3            # "300 epoch, KD", not the translator
    assert overall['mod8_resnorm_translator'] == 75.4
    assert overall['mod8_resnorm_kd_compressed'] == 75.3
    assert overall['bcresnet8_ssn4'] == 68.6


@pytest.mark.parametrize('row', sorted(paper.ROWS))
def test_overall_is_the_mean_over_devices(row):
    """TAU's test split has as many clips per device as the others, so the paper's Overall is the
    mean of its nine device columns, to the rounding of the printed cells."""
    r = paper.ROWS[row].paper
    assert np.mean([r[d] for d in paper.DEVICES]) == pytest.approx(r['overall'], abs=0.15)


def test_kd_row_trains_300_epochs_and_the_others_their_recipe():
    epochs = {row: paper.get_config(row).train.num_epochs for row in paper.ROWS}
    assert epochs.pop('mod8_resnorm_kd') == 300
    assert set(epochs.values()) == {200}
    assert paper.get_config('mod8_resnorm_kd_compressed,prune').train.num_epochs == 20
    assert paper.get_config('mod8_resnorm_kd,runlocal').train.num_epochs == 1


def test_only_kd_rows_require_teacher_logits():
    required = {row for row in paper.ROWS if paper.get_config(row).train.losses.distill > 0}
    assert required == {'mod8_resnorm_kd', 'mod8_resnorm_kd_compressed'}


def test_unknown_option_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['dmeo'\]") as e:
        paper.get_config('mod1,dmeo')
    for option in ('runlocal', 'demo', 'prune', 'qat'):
        assert f'{option}:' in str(e.value)
    assert set(paper.OPTIONS) == {'runlocal', 'demo', 'prune', 'qat', 'freqmixstyle', 'translator'}
    with pytest.raises(ValueError, match='unknown row'):
        paper.get_config('mod9')
    assert paper.get_config('mod8_resnorm_kd_compressed,prune,runlocal').train.batch_size == 16


class _DataBuilt(Exception):
    pass


@pytest.fixture
def no_data(monkeypatch):
    """Stops train_and_evaluate where it would build the data, so refusals show as raised first."""
    def refuse(config):
        raise _DataBuilt
    monkeypatch.setattr(run_lib, 'open_data', refuse)


@pytest.mark.parametrize('arg', ['mod8_resnorm_kd', 'mod8_resnorm_kd_compressed,prune'])
def test_kd_rows_refuse_to_train_without_teacher_logits(arg, tmp_path, no_data):
    config = tiny_config.get_config(arg)
    with pytest.raises(ValueError, match='distils a teacher') as e:
        classifier.train_and_evaluate(config, str(tmp_path / 'run'))
    assert '--config.train.distill.teacher_logits=FILE.npz' in str(e.value)
    assert ('python -m ascjax.tasks.teacher_logits --workdir=TEACHER_WORKDIR '
            '[--workdir=...] --out=FILE.npz' in str(e.value))
    config.train.distill.teacher_logits = str(tmp_path / 'teacher.npz')
    with pytest.raises(_DataBuilt):
        classifier.train_and_evaluate(config, str(tmp_path / 'run'))


def test_teacher_logits_without_a_distill_term_are_refused(tmp_path, no_data):
    config = tiny_config.get_config('mod1')
    config.train.distill.teacher_logits = str(tmp_path / 'teacher.npz')
    with pytest.raises(ValueError, match='losses.distill is 0'):
        classifier.train_and_evaluate(config, str(tmp_path / 'run'))
    config.train.losses.update(cross_entropy=0.5, distill=0.5)
    with pytest.raises(_DataBuilt):
        classifier.train_and_evaluate(config, str(tmp_path / 'run'))


def test_other_rows_train_without_teacher_logits(tmp_path, no_data):
    with pytest.raises(_DataBuilt):
        classifier.train_and_evaluate(tiny_config.get_config('mod8_resnorm'), str(tmp_path / 'run'))


def test_configs_load_from_outside_the_repository(tmp_path):
    """`experiments` is installed with ascjax, so translator.py's `from experiments.configs
    import paper` works from any working directory (as config_flags loads it, by path)."""
    import os
    import subprocess
    import sys
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        'experiments', 'configs', 'translator.py')
    script = ('import importlib.util\n'
              f'spec = importlib.util.spec_from_file_location("cfg", {path!r})\n'
              'module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n'
              'print(module.get_config("small").task)\n')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    proc = subprocess.run([sys.executable, '-c', script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == 'translator'


def test_rows_the_paper_did_not_run_carry_no_paper_numbers():
    """The paper has no Freq-MixStyle row and no Mod-1 + translator row: tables must not set the
    base row's numbers under them."""
    config = paper.get_config('mod1_resnorm,freqmixstyle')
    assert config.train.augment.freq_mixstyle == 0.4 and not config.paper
    config = paper.get_config('mod1_resnorm,translator')
    assert config.translator.required and not config.paper
    assert paper.get_config('mod1_resnorm').paper.overall == 65.8
