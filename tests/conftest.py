"""Shared fixtures: a tiny TAU-layout dataset and its TFDS build, made once per test session."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')

import pytest  # noqa: E402

from ascjax import features  # noqa: E402
from tests import fixtures  # noqa: E402

# A small front end matched to the fixtures' 8 kHz, 1 s clips.
SMALL_FRONT_END = features.FrontEnd(sample_rate=fixtures.SAMPLE_RATE, n_fft=256, win_length=256,
                                    hop_length=128, n_mels=32)


@pytest.fixture(scope='session')
def tau_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tau') / 'TAU-urban-acoustic-scenes-2020-mobile-development')
    fixtures.write_tau(root)
    return root


@pytest.fixture(scope='session')
def tau_builder(tau_dir, tmp_path_factory):
    import tensorflow_datasets as tfds
    from ascjax.data import tau
    tfds.disable_progress_bar()
    return tau.prepare(tau_dir, str(tmp_path_factory.mktemp('tfds')),
                       front_end=SMALL_FRONT_END, clip_seconds=fixtures.CLIP_SECONDS)


@pytest.fixture(scope='session')
def train_data_dir(tau_dir, tmp_path_factory):
    """The fixture dataset built once where `tests/tiny_config.py` training runs find it
    (pass it as --config.data.data_dir)."""
    from ascjax.data import datasets
    path = str(tmp_path_factory.mktemp('train_data'))
    datasets.prepare('synthetic', data_dir=path, manual_dir=tau_dir, front_end=SMALL_FRONT_END,
                     clip_seconds=fixtures.CLIP_SECONDS)
    return path
