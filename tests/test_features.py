"""The log-mel front end equals librosa (reflect padding) and its TF and JAX versions agree."""

import librosa
import numpy as np
import pytest

from ascjax import features

SR = 44_100


def _signals():
    rng = np.random.default_rng(0)
    t = np.arange(10 * SR) / SR
    return {
        'noise': 0.1 * rng.standard_normal(t.size),
        'tones': 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 5000 * t),
        'chirp': 0.5 * np.sin(2 * np.pi * (50 + 1000 * t) * t),
        'silence': np.zeros(t.size),
        'bursts': rng.standard_normal(t.size) * (np.sin(2 * np.pi * 0.7 * t) > 0.8),
    }


def _librosa_logmel(y, fe):
    mel = librosa.feature.melspectrogram(
        y=y, sr=fe.sample_rate, n_fft=fe.n_fft, hop_length=fe.hop_length,
        win_length=fe.win_length, n_mels=fe.n_mels, fmin=fe.fmin, fmax=fe.fmax,
        center=True, pad_mode='reflect', power=2.0)
    return mel, np.log(mel + fe.log_offset)


@pytest.mark.parametrize('fe', [
    features.FrontEnd(),
    features.FrontEnd(n_fft=2048, win_length=1764, hop_length=882, n_mels=128, fmin=50.0,
                      fmax=16_000.0, log_offset=1e-5),
], ids=['default', 'other'])
def test_matches_librosa(fe):
    for name, y in _signals().items():
        y = y.astype(np.float32)
        mel, ref = _librosa_logmel(y, fe)
        ours_tf = features.logmel_tf(y, fe).numpy()
        ours_jax = np.asarray(features.logmel_jax(y, fe))
        assert ours_tf.shape == ours_jax.shape == ref.shape == (fe.n_mels, fe.num_frames(y.size))
        audible = mel >= 1e-5
        for ours in (ours_tf, ours_jax):
            assert np.abs(ours - ref)[audible].max(initial=0.0) <= 1e-3, name
            # Below the threshold (silence), values sit at the log offset floor.
            assert np.all(ours[~audible] <= np.log(1e-5 + fe.log_offset) + 1e-3), name


def test_default_shape_is_256_by_431():
    assert features.FrontEnd().num_frames(10 * SR) == 431
    out = features.logmel_jax(np.zeros((2, 10 * SR), np.float32))
    assert out.shape == (2, 256, 431)


def test_tf_and_jax_agree_on_batches():
    fe = features.FrontEnd(sample_rate=16_000, n_fft=512, win_length=480, hop_length=160, n_mels=40)
    y = np.random.default_rng(1).standard_normal((3, 16_000)).astype(np.float32)
    a = features.logmel_tf(y, fe).numpy()
    b = np.asarray(features.logmel_jax(y, fe))
    assert a.shape == (3, 40, 101)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_tag_distinguishes_configs():
    assert features.FrontEnd().tag != features.FrontEnd(hop_length=512).tag
