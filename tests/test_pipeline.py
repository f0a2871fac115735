"""The tf.data pipeline: deterministic, resumable at any step, sliced per host, nothing dropped."""

import numpy as np
import pytest

from ascjax import features
from ascjax.data import layout, pipeline, sources
from tests import fixtures
from tests.conftest import SMALL_FRONT_END


@pytest.fixture(scope='module')
def source(tau_builder):
    return sources.TfdsSource.from_builder(tau_builder, 'train')


def _take(ds):
    return list(ds.as_numpy_iterator())


def _indices(source, steps, **kw):
    kw = {'global_batch_size': 4, 'seed': 0, **kw}
    return [b['index'] for b in _take(pipeline.train_batches(source, num_steps=steps, **kw))]


def test_batch_layout(source):
    (batch,) = _take(pipeline.train_batches(source, global_batch_size=4, seed=0, num_steps=1))
    frames = SMALL_FRONT_END.num_frames(fixtures.SAMPLE_RATE)
    assert batch['spectrogram'].shape == (4, SMALL_FRONT_END.n_mels, frames, 1)
    assert batch['spectrogram'].dtype == np.float32
    for key in ('label', 'device', 'city', 'pair', 'index'):
        assert batch[key].shape == (4,) and batch[key].dtype == np.int32
    record = source.data_source[int(batch['index'][0])]
    assert batch['label'][0] == record['label']
    assert batch['device'][0] == layout.device_id(record['device'].decode())
    assert batch['city'][0] == layout.CITIES.index(record['city'].decode())
    assert batch['pair'][0] == sources.pair_id(record['pair'])
    np.testing.assert_array_equal(batch['spectrogram'][0, ..., 0], record['spectrogram'])


def test_deterministic_per_seed(source):
    a, b = _indices(source, 6), _indices(source, 6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _indices(source, 6, seed=1))


def test_each_epoch_is_a_permutation(source):
    n, batch = len(source), 4
    steps_per_epoch = n // batch
    stream = np.concatenate(_indices(source, 3 * steps_per_epoch))
    for e in range(3):
        epoch = stream[e * steps_per_epoch * batch:(e + 1) * steps_per_epoch * batch]
        assert len(set(epoch.tolist())) == epoch.size        # no example twice within an epoch
    assert not np.array_equal(stream[:n], stream[n:2 * n])    # reshuffled every epoch


def test_resume_continues_without_replay_or_skip(source):
    full = _indices(source, 7)
    resumed = _indices(source, 3, start_step=4)
    np.testing.assert_array_equal(np.stack(full[4:]), np.stack(resumed))


def test_hosts_take_contiguous_slices_of_one_global_batch(source):
    full = np.stack(_indices(source, 5))
    parts = [np.stack(_indices(source, 5, process_index=p, process_count=2)) for p in range(2)]
    np.testing.assert_array_equal(full, np.concatenate(parts, axis=1))
    with pytest.raises(ValueError, match='not divisible'):
        pipeline.train_batches(source, global_batch_size=4, seed=0, process_count=3)


def test_eval_visits_every_example_once(tau_builder):
    source = sources.TfdsSource.from_builder(tau_builder, 'test')
    batches = _take(pipeline.eval_batches(source, global_batch_size=4))
    index = np.concatenate([b['index'] for b in batches])
    mask = np.concatenate([b['mask'] for b in batches])
    assert sorted(index[mask > 0].tolist()) == list(range(len(source)))


def test_wav_source_with_host_features_equals_the_cache(tau_dir, tau_builder):
    """The cold path (decode + TF log-mel per batch) gives the cached features."""
    cached = sources.TfdsSource.from_builder(tau_builder, 'test')
    wav = sources.WavSource.open(tau_dir, 'test', fixtures.SAMPLE_RATE, fixtures.CLIP_SECONDS)
    (cold,) = _take(pipeline.eval_batches(wav, global_batch_size=8, front_end=SMALL_FRONT_END))
    for i, filename in enumerate(c.filename for c in wav.clips):
        record = next(cached.data_source[j] for j in range(len(cached))
                      if cached.data_source[j]['filename'].decode() == filename)
        np.testing.assert_allclose(cold['spectrogram'][i, ..., 0], record['spectrogram'], atol=1e-5)
        assert cold['label'][i] == record['label']


def test_audio_for_device_features(tau_dir):
    """Without a host front end, audio sources yield waveforms; logmel_jax then runs on device."""
    wav = sources.WavSource.open(tau_dir, 'train', fixtures.SAMPLE_RATE, fixtures.CLIP_SECONDS)
    (batch,) = _take(pipeline.train_batches(wav, global_batch_size=4, seed=0, num_steps=1))
    assert batch['audio'].shape == (4, fixtures.SAMPLE_RATE) and 'spectrogram' not in batch
    on_device = np.asarray(features.logmel_jax(batch['audio'], SMALL_FRONT_END))
    on_host = features.logmel_tf(batch['audio'], SMALL_FRONT_END).numpy()
    np.testing.assert_allclose(on_device, on_host, atol=1e-4)


def test_a_split_smaller_than_a_batch_is_an_error(source):
    with pytest.raises(ValueError, match='fewer than one global batch'):
        pipeline.train_batches(source, global_batch_size=64, seed=0)
