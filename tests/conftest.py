"""Shared fixtures: a tiny TAU-layout dataset and its TFDS build, made once per test session."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
# One persistent XLA compilation cache per test session, shared by the xdist workers and the
# training subprocesses (they inherit the environment): the tests compile the same tiny train
# steps many times over (a run, its killed-and-resumed twin, its in-memory twin, ...). Set before
# JAX is imported; the process that creates it (the controller) removes it at exit.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
    os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='ascjax-tests-xla-')
    atexit.register(shutil.rmtree, os.environ['JAX_COMPILATION_CACHE_DIR'], True)
    os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.2')

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
