"""The device translator end to end: pairs, training, evaluation, augmentation of the classifier."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ascjax.data import layout, sources, synthesize
from experiments.configs import translator as translator_config
from tests import fixtures
from tests.conftest import SMALL_FRONT_END

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _check_pairs(meta, p, split_pairs):
    for a, x in p:
        assert meta['pair'][a] == meta['pair'][x] and meta['label'][a] == meta['label'][x]
        assert meta['device'][a] == layout.device_id('a') != meta['device'][x]
    keys = {int(meta['pair'][a]) for a, _ in p}
    assert len(p) == split_pairs and len(set(map(tuple, p.tolist()))) == len(p)
    return keys


def test_pairs_join_recordings_of_one_segment_within_a_split(tau_dir, tau_builder):
    """Fixture: train has 4 (A, X) pairs over 3 segments, test 5 over 2; no key in both."""
    keys = {}
    for split, expected in (('train', 4), ('test', 5)):
        wav = sources.WavSource.open(tau_dir, split)
        tfds_source = sources.TfdsSource.from_builder(tau_builder, split)
        meta_w, meta_t = wav.metadata(), tfds_source.metadata()
        p = sources.pairs(meta_t)
        keys[split] = _check_pairs(meta_t, p, expected)
        # the cached dataset and the wav files agree on who is paired with whom
        names = lambda meta, q: sorted((int(meta['pair'][a]), int(meta['device'][x])) for a, x in q)
        assert names(meta_t, p) == names(meta_w, sources.pairs(meta_w))
        batch = sources.PairSource.of(tfds_source).load(np.arange(len(p)))
        assert batch['spectrogram'].shape == batch['target'].shape
        assert not np.array_equal(batch['spectrogram'], batch['target'])
    assert not keys['train'] & keys['test']


def test_pairs_reject_two_recordings_of_one_device():
    meta = {'pair': np.array([7, 7, 7]), 'label': np.zeros(3, int), 'city': np.zeros(3, int),
            'device': np.array([0, 1, 1]), 'index': np.arange(3)}
    with pytest.raises(ValueError, match='both device b'):
        sources.pairs(meta)


def test_augmentation_replaces_only_device_a_with_the_configured_probability():
    from ascjax.augment import translate as augment
    p, n = 0.3, 4000
    translate = jax.jit(augment.make_translate(lambda x, d, b: x + 100.0 + d[:, None, None, None],
                                               targets=[1, 2, 3], probability=p))
    device = jnp.asarray(np.arange(n) % 3)          # a, b, c in turn
    x = jnp.zeros((n, 4, 3, 1))
    y = np.asarray(translate(jax.random.PRNGKey(0), x, {'device': device}))
    changed = np.any(y != 0, axis=(1, 2, 3))
    is_a = np.asarray(device) == 0
    assert not changed[~is_a].any()
    rate, m = changed[is_a].mean(), is_a.sum()
    assert abs(rate - p) < 4 * np.sqrt(p * (1 - p) / m), rate
    targets = y[changed][:, 0, 0, 0] - 100.0
    assert set(np.unique(targets)) == {1.0, 2.0, 3.0}
    # a fresh key draws a fresh choice
    y2 = np.asarray(translate(jax.random.PRNGKey(1), x, {'device': device}))
    assert not np.array_equal(changed, np.any(y2 != 0, axis=(1, 2, 3)))


@pytest.fixture(scope='module')
def tiny_synthetic(tmp_path_factory):
    """The `tiny` synthetic preset (paired devices with real device responses), 8 kHz features."""
    root = str(tmp_path_factory.mktemp('tiny_synthetic') / 'synthetic_tiny_seed0')
    synthesize.synthesize(root, 'tiny', 0, workers=2)
    return root


def _config(root, data_dir):
    config = translator_config.get_config('small')
    config.data.update(manual_dir=root, data_dir=data_dir, clip_seconds=fixtures.CLIP_SECONDS)
    config.data.front_end.update(sample_rate=SMALL_FRONT_END.sample_rate, n_fft=256,
                                 win_length=256, hop_length=128, n_mels=32)
    config.model.depth = 2
    config.train.update(batch_size=8, num_steps=300, learning_rate=3e-3,
                        log_every_steps=100, checkpoint_every_steps=150)
    config.eval.batch_size = 8
    return config


@pytest.fixture(scope='module')
def trained(tiny_synthetic, tmp_path_factory):
    from ascjax.tasks import translator as train
    workdir = str(tmp_path_factory.mktemp('translator'))
    data_dir = str(tmp_path_factory.mktemp('translator_data'))
    results = train.train(_config(tiny_synthetic, data_dir), workdir)
    return workdir, results, data_dir


def test_translator_learns_the_device_responses(trained):
    """300 steps on 50 training pairs: every seen device's test error falls well below identity."""
    workdir, results, _ = trained
    assert set(results['devices']) == {'B', 'C', 'S1', 'S2', 'S3'}
    for device, r in results['devices'].items():
        assert r['pairs'] == 10
        assert r['translated'] < 0.7 * r['identity'], (device, r)
    on_disk = json.load(open(os.path.join(workdir, 'translator_results.json')))
    assert on_disk['devices'] == results['devices']
    assert os.path.exists(os.path.join(workdir, 'plots', 'translator_examples.png'))
    info = json.load(open(os.path.join(workdir, 'translator.json')))
    assert info['devices'] == ['b', 'c', 's1', 's2', 's3'] and info['train_pairs'] == 50


@pytest.mark.slow   # ~170 s: a classifier training with translator augmentation (make test-slow)
def test_classifier_trains_with_translated_examples(trained, tiny_synthetic, tmp_path):
    workdir, _, data_dir = trained
    cmd = [sys.executable, '-m', 'ascjax.train', '--config=tests/tiny_config.py:mod1_resnorm',
           f'--workdir={tmp_path}', f'--config.data.manual_dir={tiny_synthetic}',
           f'--config.data.data_dir={data_dir}', f'--config.translator.workdir={workdir}',
           '--config.train.num_steps=2']
    env = dict(os.environ, JAX_PLATFORMS='cpu')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.exists(os.path.join(tmp_path, 'results.json'))
    bad = subprocess.run(cmd + ['--config.data.front_end.hop_length=64'], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=400)
    assert bad.returncode != 0 and 'other features' in bad.stderr
