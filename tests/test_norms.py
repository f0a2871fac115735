"""FreqIN, ResNorm, RFN and Global FreqNorm: formulas, invariances, dtypes, placement checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ascjax.models import norms


def _log_mel_like(key, shape=(3, 16, 20, 4)):
    """Spectrogram-like values: a large negative offset with per-bin structure, like log-mels."""
    k1, k2 = jax.random.split(key)
    tilt = jnp.linspace(-4.0, 4.0, shape[1])[None, :, None, None]
    per_bin = jax.random.normal(k2, shape[:2] + (1, 1))
    return -12.0 + tilt + 2.0 * jax.random.normal(k1, shape) + per_bin


def _apply(norm, x, lam=None):
    module = norms.FeatureNorm(norm, lam)
    variables = module.init(jax.random.key(0), x)
    return module.apply(variables, x)


def test_freqin_standardises_each_example_and_bin_over_time_and_channels():
    y = np.asarray(norms.freq_instance_norm(_log_mel_like(jax.random.key(0))))
    np.testing.assert_allclose(y.mean(axis=(2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(2, 3)), 1.0, atol=1e-3)


def test_freqin_matches_explicit_formula():
    x = np.asarray(_log_mel_like(jax.random.key(1)), np.float64)
    mu = x.mean(axis=(2, 3), keepdims=True)
    var = x.var(axis=(2, 3), keepdims=True)  # biased
    want = (x - mu) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(_apply('freqin', jnp.asarray(x, jnp.float32)), want, atol=1e-5)


def test_resnorm_is_lambda_x_plus_freqin():
    x = _log_mel_like(jax.random.key(2))
    fin = norms.freq_instance_norm(x)
    np.testing.assert_allclose(_apply('resnorm', x), 0.1 * x + fin, atol=1e-5)  # default lambda
    np.testing.assert_allclose(_apply('resnorm', x, 0.3), 0.3 * x + fin, atol=1e-5)


def test_rfn_mixes_layer_norm_and_freqin():
    x = np.asarray(_log_mel_like(jax.random.key(3)), np.float64)
    ln = (x - x.mean(axis=(1, 2, 3), keepdims=True)) / np.sqrt(
        x.var(axis=(1, 2, 3), keepdims=True) + 1e-5)
    fin = np.asarray(norms.freq_instance_norm(jnp.asarray(x, jnp.float32)))
    xf = jnp.asarray(x, jnp.float32)
    np.testing.assert_allclose(_apply('rfn', xf), 0.5 * ln + 0.5 * fin, atol=1e-5)
    np.testing.assert_allclose(_apply('rfn', xf, 0.2), 0.2 * ln + 0.8 * fin, atol=1e-5)


def test_freqin_cancels_a_per_frequency_gain():
    """A device's frequency response adds a per-bin constant to log-mels; FreqIN removes it, and
    ResNorm's normalised part is unchanged (only the lambda * x shortcut sees the offset)."""
    x = _log_mel_like(jax.random.key(4))
    gain = 6.0 * jax.random.normal(jax.random.key(5), (1, x.shape[1], 1, 1))
    np.testing.assert_allclose(norms.freq_instance_norm(x + gain), norms.freq_instance_norm(x),
                               atol=2e-5)
    resnorm_shift = _apply('resnorm', x + gain) - _apply('resnorm', x)
    np.testing.assert_allclose(resnorm_shift, jnp.broadcast_to(0.1 * gain, x.shape), atol=2e-5)


def test_bf16_input_keeps_float32_statistics():
    # per-bin offset large relative to the spread: bf16 statistics would be visibly off
    x32 = _log_mel_like(jax.random.key(6), (2, 8, 64, 4)) * 0.25 - 40.0
    x16 = x32.astype(jnp.bfloat16)
    want = norms.freq_instance_norm(x16.astype(jnp.float32))
    for norm in ('freqin', 'resnorm', 'rfn'):
        y = _apply(norm, x16)
        assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(_apply('freqin', x16).astype(jnp.float32), want, atol=3e-2)
    # the reductions themselves run in float32
    jaxpr = jax.make_jaxpr(norms.freq_instance_norm)(x16)
    reductions = [e for e in jaxpr.eqns if e.primitive.name == 'reduce_sum']
    assert reductions and all(e.outvars[0].aval.dtype == jnp.float32 for e in reductions)


def test_none_is_identity():
    x = _log_mel_like(jax.random.key(7))
    np.testing.assert_array_equal(_apply('none', x), x)


def test_global_freqnorm_uses_stored_statistics():
    x = _log_mel_like(jax.random.key(8), (4, 16, 20, 1))
    module = norms.FeatureNorm('global_freqnorm')
    variables = module.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, variables) == {'norm_stats': {'mean': (16,), 'std': (16,)}}
    np.testing.assert_array_equal(module.apply(variables, x), x)  # 0 / 1 until filled in

    mean, std = norms.global_freq_stats([np.asarray(x[:2, ..., 0]), np.asarray(x[2:])])
    x64 = np.asarray(x, np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, np.sqrt(x64.var(axis=(0, 2, 3)) + 1e-5), rtol=1e-5)

    filled = {'norm_stats': {'mean': jnp.asarray(mean), 'std': jnp.asarray(std)}}
    y = np.asarray(module.apply(filled, x))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1.0, atol=1e-4)


def test_with_global_freq_stats_fills_every_input_norm():
    variables = {'params': {}, 'norm_stats': {'norm_input': {'mean': jnp.zeros(4),
                                                             'std': jnp.ones(4)}}}
    out = norms.with_global_freq_stats(variables, np.arange(4.0), np.full(4, 2.0))
    np.testing.assert_array_equal(out['norm_stats']['norm_input']['std'], 2.0)
    assert out['params'] is variables['params']
    with pytest.raises(ValueError):
        norms.with_global_freq_stats(variables, np.zeros(5), np.ones(5))
    with pytest.raises(ValueError):
        norms.with_global_freq_stats({'params': {}}, np.zeros(4), np.ones(4))


@pytest.mark.parametrize('norm, positions', [
    ('batchnorm', ('input',)),
    ('resnorm', ('stage5',)),
    ('global_freqnorm', ('input', 'stage1')),
])
def test_check_norm_config_rejects_bad_settings(norm, positions):
    with pytest.raises(ValueError):
        norms.check_norm_config(norm, positions)


def test_resnorm_positions_default_is_input_and_every_stage():
    assert norms.RESNORM_POSITIONS == ('input', 'stage1', 'stage2', 'stage3', 'stage4')
