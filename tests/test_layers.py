"""SubSpectralNorm, PyTorch-style BatchNorm, and the two convolution implementations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from ascjax.models import layers


def _rel_close(a, b, rtol):
    """Max-abs error relative to the reference's max-abs value (gradients span many scales)."""
    a, b = np.asarray(a), np.asarray(b)
    assert np.max(np.abs(a - b)) <= rtol * max(np.max(np.abs(b)), 1e-12)


# --- BatchNorm / SubSpectralNorm ------------------------------------------------------------------

def test_batch_norm_uses_pytorch_momentum_eps_and_unbiased_running_variance():
    x = jax.random.normal(jax.random.key(0), (4, 6, 5, 3)) * 2.0 + 1.0
    bn = layers.batch_norm()
    variables = bn.init(jax.random.key(1), x, use_running_average=False)
    y, updates = bn.apply(variables, x, use_running_average=False, mutable=['batch_stats'])
    mean = np.asarray(x).mean(axis=(0, 1, 2))
    var = np.asarray(x).var(axis=(0, 1, 2))
    n = 4 * 6 * 5
    np.testing.assert_allclose(updates['batch_stats']['mean'], 0.1 * mean, rtol=1e-5, atol=1e-6)
    # torch.nn.BatchNorm2d accumulates the unbiased variance, but normalises with the biased one.
    np.testing.assert_allclose(updates['batch_stats']['var'], 0.9 + 0.1 * var * n / (n - 1),
                               rtol=1e-5)
    assert isinstance(bn, nn.BatchNorm)   # complexity and qwix recognise it as a BatchNorm
    np.testing.assert_allclose(y, (np.asarray(x) - mean) / np.sqrt(var + 1e-5), atol=1e-5)


def test_ssn_has_per_band_channel_params_and_stats():
    ssn = layers.SubSpectralNorm(sub_bands=4)
    variables = ssn.init(jax.random.key(0), jnp.zeros((2, 16, 5, 3)), train=False)
    shapes = jax.tree.map(jnp.shape, variables)
    assert shapes == {'params': {'bn': {'scale': (4, 3), 'bias': (4, 3)}},
                      'batch_stats': {'bn': {'mean': (4, 3), 'var': (4, 3)}}}


def test_ssn_bands_are_contiguous_and_normalised_separately():
    # band s (bins 4s..4s+3) of channel c has mean 10*s + c: each (band, channel) must be centred
    b, f, t, c, s = 3, 16, 7, 2, 4
    offsets = (10.0 * np.repeat(np.arange(s), f // s)[:, None, None] + np.arange(c))
    x = np.random.default_rng(0).normal(size=(b, f, t, c)) + offsets
    ssn = layers.SubSpectralNorm(sub_bands=s)
    variables = ssn.init(jax.random.key(0), x, train=False)
    y, updates = ssn.apply(variables, x, train=True, mutable=['batch_stats'])
    bands = np.asarray(y).reshape(b, s, f // s, t, c)
    np.testing.assert_allclose(bands.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(bands.var(axis=(0, 2, 3)), 1.0, atol=1e-3)
    expected_mean = x.reshape(b, s, f // s, t, c).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(updates['batch_stats']['bn']['mean'], 0.1 * expected_mean, rtol=1e-5)


def test_ssn_matches_official_pytorch_semantics():
    """Official SSN = BatchNorm2d(C*S) on the NCFT tensor viewed as (N, C*S, F/S, T)."""
    torch = pytest.importorskip('torch')
    b, f, t, c, s = 4, 20, 6, 3, 5
    rng = np.random.default_rng(1)
    x = rng.normal(size=(b, f, t, c)).astype(np.float32) * 3 + 2
    gamma = rng.normal(size=(s, c)).astype(np.float32)
    beta = rng.normal(size=(s, c)).astype(np.float32)

    bn = torch.nn.BatchNorm2d(c * s)  # torch index c*S + s  <->  ours [s, c]
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma.T.reshape(-1)))
        bn.bias.copy_(torch.from_numpy(beta.T.reshape(-1)))
    x_ncft = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    want = bn(x_ncft.reshape(b, c * s, f // s, t)).reshape(b, c, f, t).detach().numpy()

    ssn = layers.SubSpectralNorm(sub_bands=s)
    variables = {'params': {'bn': {'scale': gamma, 'bias': beta}},
                 'batch_stats': {'bn': {'mean': np.zeros((s, c)), 'var': np.ones((s, c))}}}
    got, updates = ssn.apply(variables, x, train=True, mutable=['batch_stats'])
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), want, atol=1e-5)
    np.testing.assert_allclose(updates['batch_stats']['bn']['mean'],
                               bn.running_mean.numpy().reshape(c, s).T, atol=1e-6)
    # both running variances hold the unbiased batch variance (TorchBatchNorm)
    np.testing.assert_allclose(updates['batch_stats']['bn']['var'],
                               bn.running_var.numpy().reshape(c, s).T, rtol=1e-5)


def test_ssn_rejects_indivisible_frequency():
    with pytest.raises(ValueError, match='not divisible'):
        layers.SubSpectralNorm(sub_bands=4).init(jax.random.key(0), jnp.zeros((1, 10, 3, 2)),
                                                 train=False)


def test_ssn_bf16_keeps_float32_stats():
    x = (jax.random.normal(jax.random.key(0), (2, 8, 4, 3)) + 5).astype(jnp.bfloat16)
    ssn = layers.SubSpectralNorm(sub_bands=2, dtype=jnp.bfloat16)
    variables = ssn.init(jax.random.key(0), x, train=False)
    y, updates = ssn.apply(variables, x, train=True, mutable=['batch_stats'])
    assert y.dtype == jnp.bfloat16
    for leaf in jax.tree.leaves((variables['params'], updates)):
        assert leaf.dtype == jnp.float32


# --- conv_impl ------------------------------------------------------------------------------------

def test_auto_resolves_to_shift_and_rejects_unknown():
    assert layers.resolve_conv_impl('auto') == 'shift'
    assert layers.resolve_conv_impl('xla') == 'xla'
    with pytest.raises(ValueError):
        layers.resolve_conv_impl('cudnn')


class _Depthwise(nn.Module):
    """Wraps the factory so both implementations are called the same way."""
    kernel_size: tuple
    strides: tuple
    padding: tuple
    dilation: tuple
    conv_impl: str

    @nn.compact
    def __call__(self, x):
        return layers.depthwise_conv(x.shape[-1], self.kernel_size, strides=self.strides,
                                     padding=self.padding, dilation=self.dilation,
                                     conv_impl=self.conv_impl, name='dw')(x)


class _Pointwise(nn.Module):
    features: int
    use_bias: bool
    conv_impl: str

    @nn.compact
    def __call__(self, x):
        return layers.pointwise_conv(self.features, use_bias=self.use_bias,
                                     conv_impl=self.conv_impl, name='pw')(x)


class _Dense(nn.Module):
    features: int
    strides: tuple
    conv_impl: str

    @nn.compact
    def __call__(self, x):
        return layers.dense_conv(self.features, (5, 5), strides=self.strides,
                                 padding=((2, 2), (2, 2)), conv_impl=self.conv_impl,
                                 name='dense')(x)


def _check_equivalent(make, x, impl='shift'):
    """Same init (names, shapes, values), outputs <= 1e-5 and gradients <= 1e-4 relative."""
    xla, shift = make('xla'), make(impl)
    v_xla = xla.init(jax.random.key(0), x)
    v_shift = shift.init(jax.random.key(0), x)
    assert jax.tree.structure(v_xla) == jax.tree.structure(v_shift)
    jax.tree.map(np.testing.assert_array_equal, v_xla, v_shift)
    if 'bias' in next(iter(v_xla['params'].values())):
        v_xla = jax.tree.map(lambda p: p + 0.3, v_xla)  # make a zero-initialised bias matter

    y_xla, y_shift = jax.jit(xla.apply)(v_xla, x), jax.jit(shift.apply)(v_xla, x)
    assert y_xla.shape == y_shift.shape
    np.testing.assert_allclose(y_shift, y_xla, atol=1e-5)

    cotangent = jax.random.normal(jax.random.key(3), y_xla.shape)
    loss = lambda model: lambda v, x: jnp.sum(model.apply(v, x) * cotangent)
    g_xla = jax.jit(jax.grad(loss(xla), argnums=(0, 1)))(v_xla, x)
    g_shift = jax.jit(jax.grad(loss(shift), argnums=(0, 1)))(v_xla, x)
    jax.tree.map(lambda a, b: _rel_close(a, b, 1e-4), g_shift, g_xla)


@pytest.mark.parametrize('kernel_size, strides, padding, dilation, shape', [
    ((3, 1), (1, 1), ((1, 1), (0, 0)), (1, 1), (2, 12, 7, 5)),   # frequency DW of a block
    ((3, 1), (2, 1), ((1, 1), (0, 0)), (1, 1), (2, 12, 7, 5)),   # ... with frequency stride
    ((3, 1), (2, 1), ((1, 1), (0, 0)), (1, 1), (2, 11, 7, 5)),   # ... odd frequency size
    ((1, 3), (1, 1), ((0, 0), (1, 1)), (1, 1), (2, 1, 9, 4)),    # temporal DW, dilation 1
    ((1, 3), (1, 1), ((0, 0), (2, 2)), (1, 2), (2, 1, 9, 4)),    # dilation 2
    ((1, 3), (1, 1), ((0, 0), (8, 8)), (1, 8), (2, 1, 9, 4)),    # dilation 8 > half the length
    ((1, 3), (1, 2), ((0, 0), (4, 4)), (1, 4), (2, 1, 10, 4)),   # time stride with dilation
    ((5, 5), (1, 1), ((0, 0), (2, 2)), (1, 1), (2, 5, 8, 6)),    # BC-ResNet classifier DW
    ((5, 5), (2, 2), ((2, 2), (2, 2)), (1, 1), (2, 9, 10, 3)),   # general strided 2-D DW
])
@pytest.mark.parametrize('impl', ['shift', 'einsum'])
def test_depthwise_shift_equals_xla(kernel_size, strides, padding, dilation, shape, impl):
    x = jax.random.normal(jax.random.key(1), shape)
    _check_equivalent(lambda impl: _Depthwise(kernel_size, strides, padding, dilation, impl), x,
                      impl)


@pytest.mark.parametrize('use_bias', [False, True])
@pytest.mark.parametrize('impl', ['shift', 'einsum'])
def test_pointwise_shift_equals_xla(use_bias, impl):
    x = jax.random.normal(jax.random.key(2), (2, 4, 6, 5))
    _check_equivalent(lambda impl: _Pointwise(7, use_bias, impl), x, impl)


@pytest.mark.parametrize('strides, shape', [
    ((2, 1), (2, 12, 7, 1)),    # BC-ResNet head: one input channel, frequency stride
    ((2, 2), (2, 11, 9, 1)),    # BC-ResNet-Mod head, odd sizes
    ((1, 1), (2, 8, 6, 3)),     # several input channels
])
@pytest.mark.parametrize('impl', ['shift', 'einsum'])
def test_dense_patches_equal_xla(strides, shape, impl):
    x = jax.random.normal(jax.random.key(4), shape)
    _check_equivalent(lambda impl: _Dense(6, strides, impl), x, impl)


def test_shift_conv_respects_compute_dtype():
    x = jax.random.normal(jax.random.key(0), (1, 6, 5, 4))
    for module in (layers.ShiftDepthwiseConv(4, (3, 1), padding=((1, 1), (0, 0)),
                                             dtype=jnp.bfloat16),
                   layers.MatmulConv(3, use_bias=True, dtype=jnp.bfloat16),
                   layers.PatchConv(3, (5, 5), padding=((2, 2), (2, 2)), dtype=jnp.bfloat16)):
        variables = module.init(jax.random.key(0), x)
        assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
        assert module.apply(variables, x).dtype == jnp.bfloat16


@pytest.mark.parametrize('rows', [2 * 4096, 3 * 7 * 11, 4099])   # chunked, odd chunks, prime
def test_channel_dot_is_a_dot_with_the_same_gradients(rows):
    """channel_dot sums its weight gradient over row chunks: jnp.dot's values, and its gradients
    up to float rounding, for any row count (a prime one falls back to chunks of one row)."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(rows, 24)), jnp.float32).reshape(rows, 1, 24)
    w = jnp.asarray(rng.normal(size=(24, 70)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(rows, 1, 70)), jnp.float32)
    want, want_vjp = jax.vjp(jnp.dot, x, w)
    got, got_vjp = jax.vjp(layers.channel_dot, x, w)
    np.testing.assert_array_equal(got, want)
    for a, b in zip(got_vjp(g), want_vjp(g)):
        _rel_close(a, b, 1e-5)


def test_wide_shift_convolutions_take_channel_dot():
    wide, narrow = layers.CHANNEL_DOT_MIN_FEATURES, layers.CHANNEL_DOT_MIN_FEATURES - 1
    assert layers.pointwise_conv(wide, conv_impl='shift').chunked_weight_grad
    assert layers.dense_conv(wide, (5, 5), conv_impl='shift').chunked_weight_grad
    assert not layers.pointwise_conv(narrow, conv_impl='shift').chunked_weight_grad
    assert not layers.pointwise_conv(wide, conv_impl='einsum').chunked_weight_grad  # QAT: qwix
