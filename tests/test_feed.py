"""The two training feeds give one run: tf.data and the split held in device memory (the former
experiments/ablation.py), bit for bit; and a run from wav files needs no TensorFlow."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from ascjax.data import order, pipeline, sources
from ascjax.train import feed, mesh as mesh_lib
from tests import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(tau_dir, data_dir, **data):
    config = tiny_config.get_config('mod1_resnorm')
    config.data.update(manual_dir=tau_dir, data_dir=data_dir, **data)
    return config


def test_device_batches_are_the_pipeline_batches(tau_builder):
    """Same seed and steps (into a second epoch, from a resumed step): equal arrays."""
    source = sources.TfdsSource.from_builder(tau_builder, 'train')
    config = tiny_config.get_config('mod1_resnorm')
    mesh = mesh_lib.data_mesh()
    data = feed.load_on_device(source, config, mesh)
    ours = list(feed.device_batches(data, len(source), 4, 7, 1, 4, mesh))
    theirs = list(pipeline.train_batches(source, global_batch_size=4, seed=7, start_step=1,
                                         num_steps=4).as_numpy_iterator())
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs):
        assert sorted(a) == sorted(b)
        for key in b:
            np.testing.assert_array_equal(np.asarray(a[key]), b[key], err_msg=key)
    assert order.train_indices(4, len(source), 4, 7, 0, 4).tolist() == \
        theirs[-1]['index'].tolist()


def test_in_memory_run_equals_tf_data_run_bit_for_bit(tau_dir, train_data_dir, tmp_path):
    """An ablation point (data in device memory) and a `python -m ascjax.train` run of the same
    config: the same losses at every step and the same final variables, bit for bit."""
    from ascjax import load
    from ascjax.tasks import classifier
    runs = {}
    for name, in_memory in (('tf_data', False), ('in_memory', True)):
        workdir = str(tmp_path / name)
        classifier.train_and_evaluate(_config(tau_dir, train_data_dir, in_memory=in_memory),
                                      workdir)
        with open(os.path.join(workdir, 'train_metrics.jsonl')) as f:
            losses = [r['loss'] for r in map(json.loads, f)]
        runs[name] = losses, load(workdir).state
    (loss_a, a), (loss_b, b) = runs['tf_data'], runs['in_memory']
    assert len(loss_a) == 6 and loss_a == loss_b
    assert int(a.step) == int(b.step) == 6
    for x, y in zip(jax.tree.leaves(a.variables()), jax.tree.leaves(b.variables())):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_wav_store_in_memory_trains_without_tensorflow(tau_dir, tmp_path):
    """`data.store=wav` + `data.in_memory`: the accelerator-image mode (no TF installed there)."""
    script = (
        'import sys\n'
        'sys.modules["tensorflow"] = sys.modules["tensorflow_datasets"] = None\n'
        'from tests import tiny_config\n'
        'from ascjax.tasks import classifier\n'
        'config = tiny_config.get_config("mod1_resnorm")\n'
        f'config.data.update(manual_dir={tau_dir!r}, store="wav", in_memory=True)\n'
        f'r = classifier.train_and_evaluate(config, {str(tmp_path / "run")!r})\n'
        'assert "tensorflow" not in [m.split(".")[0] for m in sys.modules if sys.modules[m]]\n'
        'print(r["accuracy"]["overall"])\n')
    proc = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True,
                          text=True, timeout=400, env=dict(os.environ, JAX_PLATFORMS='cpu'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.load(open(tmp_path / 'run' / 'results.json'))
    assert {'A', 'S6', 'overall'} <= set(results['accuracy'])
    assert sum(1 for _ in open(tmp_path / 'run' / 'train_metrics.jsonl')) == 6


def test_host_threads_auto_is_one_on_a_small_cpu_host():
    assert feed.host_threads(0, 'cpu', 2) == 1
    assert feed.host_threads(0, 'cpu', 64) == 0
    assert feed.host_threads(0, 'gpu', 2) == 0
    assert feed.host_threads(3, 'cpu', 2) == 3
    with pytest.raises(ValueError, match='host_threads'):
        feed.host_threads(-1)


def test_in_memory_auto_holds_a_split_that_fits_on_a_cpu_backend(tau_builder, tau_dir):
    """None (the default) chooses device memory on a CPU backend when the split, as
    `load_on_device` holds it, takes at most 1/AUTO_MEMORY_FRACTION of host memory; an explicit
    True or False is kept."""
    config = tiny_config.get_config('mod1_resnorm')
    assert config.data.in_memory is None
    mesh = mesh_lib.data_mesh()
    for source in (sources.TfdsSource.from_builder(tau_builder, 'train'),
                   sources.WavSource.open(tau_dir, 'train', config.data.front_end.sample_rate,
                                          config.data.clip_seconds)):
        held = feed.load_on_device(source, config, mesh)
        size = feed.split_bytes(source, config)
        assert size == sum(a.nbytes for a in held.values()), source.signal
        fits = size * jax.local_device_count() * feed.AUTO_MEMORY_FRACTION
        assert feed.in_memory(config, source, 'cpu', fits)
        assert feed.name(config, source) == 'device memory'   # this CPU test host: it fits
        assert not feed.in_memory(config, source, 'cpu', fits - 1)
        assert not feed.in_memory(config, source, 'gpu', fits)
        for requested in (True, False):
            config.data.in_memory = requested
            assert feed.in_memory(config, source, 'gpu', 1) is requested
        config.data.in_memory = None
