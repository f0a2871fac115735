"""Building layers of BC-ResNet in Flax Linen, NHWC = [batch, frequency, time, channels].

Two things here are not plain Flax:

* BatchNorm and SubSpectralNorm are configured with PyTorch's semantics (torch momentum 0.1 is
  Flax momentum 0.9, eps 1e-5), because the reference numbers come from PyTorch code.
* Depthwise and 1x1 convolutions have three implementations behind ``conv_impl``:
  ``'xla'`` is ``nn.Conv`` (a grouped ``lax.conv_general_dilated`` for depthwise), ``'shift'`` is a
  sum of shifted, strided slices times per-channel taps (depthwise) and a matmul (1x1). XLA:CPU
  runs grouped convolutions, and above all their backward pass, one to two orders of magnitude
  slower than the equivalent multiply-adds (../shared/TOOLING.md, "JAX on CPU"). ``'einsum'`` is
  ``'shift'`` with the taps stacked and contracted in one einsum: ~25% slower than ``'shift'`` on
  CPU, but qwix's quantisation-aware training sees the depthwise kernel as one einsum weight and
  fake-quantises it per output channel (under ``'shift'`` it sees a multiply per tap). All
  implementations declare the same parameters (``kernel`` in Flax's (kh, kw, in/groups, out)
  layout, optional ``bias``) with the same initialisers, so variables are interchangeable and a
  model can be trained with one and evaluated with the other.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax import lax

CONV_IMPLS = ('auto', 'xla', 'shift', 'einsum')
# Weight initialisation schemes (config field model.init): Flax's defaults, or PyTorch's.
INITS = ('flax', 'torch')

# PyTorch BatchNorm2d defaults expressed in Flax terms: Flax keeps `momentum` of the old value,
# PyTorch mixes in `momentum` of the new one.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

Padding = tuple[tuple[int, int], tuple[int, int]]


def resolve_conv_impl(conv_impl: str) -> str:
    """Maps ``'auto'`` to a concrete implementation for the current default backend.

    CPU: 'shift' (measured, see module docstring). GPU/TPU: 'shift' as well for now; whether
    cuDNN's grouped convolutions beat it there is still to be measured on the device machine.
    """
    if conv_impl not in CONV_IMPLS:
        raise ValueError(f'conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}')
    if conv_impl != 'auto':
        return conv_impl
    return 'shift'  # for every backend until GPU timings say otherwise


def kernel_init(init: str) -> nn.initializers.Initializer:
    """The convolution kernel initialiser of scheme ``init``.

    'flax': lecun_normal, std 1/sqrt(fan_in). 'torch': torch.nn.Conv2d's default,
    kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)), std 1/sqrt(3 fan_in): sqrt(3) narrower.
    Both take fan_in = kh * kw * in/groups from the Flax kernel layout (kh, kw, in/groups, out),
    which is torch's fan_in of the same layer.
    """
    if init == 'flax':
        return nn.initializers.lecun_normal()
    if init == 'torch':
        return nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')
    raise ValueError(f'model.init must be one of {INITS}, got {init!r}')


def bias_init(init: str, fan_in: int) -> nn.initializers.Initializer:
    """Bias initialiser: zeros ('flax'), or torch's U(+-1/sqrt(fan_in)) of the layer's kernel."""
    if init == 'flax':
        return nn.initializers.zeros_init()
    bound = 1.0 / math.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound,
                                                                    bound)


def batch_norm(dtype=jnp.float32, name: str | None = None, axis: int | tuple[int, ...] = -1):
    """BatchNorm with PyTorch's momentum, eps and running variance; statistics stay float32."""
    return TorchBatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype,
                          param_dtype=jnp.float32, axis=axis, name=name)


class TorchBatchNorm(nn.BatchNorm):
    """``nn.BatchNorm`` as ``torch.nn.BatchNorm2d`` computes it: the batch is normalised with its
    biased variance, but the running variance accumulates the *unbiased* one (n / (n - 1)).

    Flax accumulates the biased variance; the difference is 1 / n of the update, which matters
    where n is small (the temporal BN after the frequency mean sees B x T values) and for exact
    step-for-step parity with the PyTorch reference. Same variables as ``nn.BatchNorm``
    (params scale/bias, batch_stats mean/var), so checkpoints and the converter are unchanged.
    """

    @nn.compact
    def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
        if self.axis_name is not None:
            raise NotImplementedError('TorchBatchNorm has no cross-device statistics (axis_name)')
        use_running_average = nn.merge_param('use_running_average', self.use_running_average,
                                             use_running_average)
        axes = tuple(a % x.ndim for a in ((self.axis,) if isinstance(self.axis, int)
                                          else self.axis))
        reduce = tuple(a for a in range(x.ndim) if a not in axes)
        shape = tuple(x.shape[a] for a in axes)
        broadcast = tuple(x.shape[a] if a in axes else 1 for a in range(x.ndim))
        ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, shape, jnp.float32)
        ra_var = self.variable('batch_stats', 'var', jnp.ones, shape, jnp.float32)
        x32 = x.astype(jnp.float32)
        if use_running_average:
            mean, var = ra_mean.value, ra_var.value
        else:
            # Two reductions that XLA fuses into one pass, as Flax's fast variance.
            mean = jnp.mean(x32, reduce)
            var = jnp.maximum(jnp.mean(jnp.square(x32), reduce) - jnp.square(mean), 0.0)
            if not self.is_initializing():
                n = math.prod(x.shape[a] for a in reduce)
                unbiased = var * (n / max(n - 1, 1))
                ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
                ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * unbiased
        scale = self.param('scale', self.scale_init, shape, self.param_dtype)
        bias = self.param('bias', self.bias_init, shape, self.param_dtype)
        mul = (scale * lax.rsqrt(var + self.epsilon)).reshape(broadcast)
        y = (x32 - mean.reshape(broadcast)) * mul + bias.reshape(broadcast)
        return y.astype(self.dtype or x.dtype)


class SubSpectralNorm(nn.Module):
    """SubSpectralNorm: BatchNorm with separate statistics and affine per frequency sub-band.

    The frequency axis is cut into ``sub_bands`` contiguous bands (band s holds bins
    [s*F/S, (s+1)*F/S)) and every (band, channel) pair is normalised on its own, because
    low and high frequencies of a spectrogram have very different statistics. Parameters and
    ``batch_stats`` have shape (S, C); the official PyTorch layout stores the same numbers flat
    at index ``c*S + s``.
    """
    sub_bands: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        b, f, t, c = x.shape
        if f % self.sub_bands:
            raise ValueError(f'SubSpectralNorm: {f} frequency bins are not divisible into '
                             f'{self.sub_bands} sub-bands')
        bands = x.reshape(b, self.sub_bands, f // self.sub_bands, t, c)
        bands = batch_norm(self.dtype, name='bn', axis=(1, 4))(bands, use_running_average=not train)
        return bands.reshape(b, f, t, c)


def _tap_windows(x: jax.Array, kernel_shape: tuple[int, ...], strides: tuple[int, int],
                 padding: Padding, dilation: tuple[int, int]) -> list[jax.Array]:
    """The strided window of the padded input that each tap (i, j) of a kernel reads, taps in
    row-major order (the order of a Flax (kh, kw, ...) kernel's first two axes)."""
    kh, kw = kernel_shape[:2]
    x = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    batch, height, width, channels = x.shape
    out_h = (height - dilation[0] * (kh - 1) - 1) // strides[0] + 1
    out_w = (width - dilation[1] * (kw - 1) - 1) // strides[1] + 1
    windows = []
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilation[0], j * dilation[1]
            windows.append(lax.slice(
                x, (0, top, left, 0),
                (batch, top + (out_h - 1) * strides[0] + 1, left + (out_w - 1) * strides[1] + 1,
                 channels),
                (1, strides[0], strides[1], 1)))
    return windows


@functools.partial(jax.jit, static_argnames=('strides', 'padding', 'dilation'))
def shifted_depthwise_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                           padding: Padding, dilation: tuple[int, int]) -> jax.Array:
    """A convolution whose every output channel reads one input channel, as shifted multiply-adds.

    ``kernel`` is (kh, kw, 1, C_out) in Flax layout; ``x`` has C_out channels (depthwise) or one
    channel that all outputs share. Each tap (i, j) contributes the strided window of the padded
    input that starts at (i*dilation_h, j*dilation_w), times that tap's per-channel weight.
    Jitted so that un-jitted (eager) callers compile one program per layer shape rather than one
    per slice; inside an outer jit it is simply inlined.
    """
    windows = _tap_windows(x, kernel.shape, strides, padding, dilation)
    taps = kernel.reshape(-1, kernel.shape[-1])
    out = windows[0] * taps[0]
    for window, tap in zip(windows[1:], taps[1:]):
        out = out + window * tap
    return out


@functools.partial(jax.jit, static_argnames=('strides', 'padding', 'dilation'))
def einsum_depthwise_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                          padding: Padding, dilation: tuple[int, int]) -> jax.Array:
    """``shifted_depthwise_conv`` as one einsum of the stacked windows with the (taps, C) kernel."""
    windows = jnp.stack(_tap_windows(x, kernel.shape, strides, padding, dilation))
    return jnp.einsum('tbhwc,tc->bhwc', windows, kernel.reshape(-1, kernel.shape[-1]))


# `channel_dot` serves the 'shift' 1x1 and patch convolutions with at least this many output
# channels; narrower ones keep one dot, which ran faster there (Mod-1's 10-25 channels; `make
# bench`, section levers).
CHANNEL_DOT_MIN_FEATURES = 64
# Rows per chunk of `channel_dot`'s weight gradient (the largest divisor of the row count up to
# this; measured on CPU: 4096 rows per chunk ran the [884736, 160]^T x [884736, 80] product of
# Mod-8's stage-1 transition as fast as one dot, and lets XLA keep both operands row-major).
WEIGHT_GRAD_CHUNK = 4096


@jax.custom_vjp
def channel_dot(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``jnp.dot(x, kernel)`` over the channel axis of ``x`` [..., C_in] with a weight gradient
    that XLA:CPU does not transpose.

    The kernel gradient x^T g contracts the rows of two [N, C] activations. As one dot, XLA's
    layout assignment writes one operand transposed ([C, N]) from the fusion that produces it,
    which cost ~10% of a Mod-8 train step on CPU (the head's and stage 1's weight gradients;
    `make bench`, section levers). Here it is a batch of [c, C_in]^T [c, C_out] products over
    row chunks of c rows, summed: the same sum in another order (float rounding).
    """
    return jnp.dot(x, kernel)


def _channel_dot_fwd(x, kernel):
    return jnp.dot(x, kernel), (x, kernel)


def _row_chunk(rows: int) -> int:
    return max(c for c in range(1, min(rows, WEIGHT_GRAD_CHUNK) + 1) if rows % c == 0)


def _channel_dot_bwd(residuals, g):
    x, kernel = residuals
    dx = jnp.dot(g, kernel.T).astype(x.dtype)
    x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    chunk = _row_chunk(x2.shape[0])
    dkernel = jnp.einsum('rci,rco->rio', x2.reshape(-1, chunk, x2.shape[-1]),
                         g2.reshape(-1, chunk, g2.shape[-1]),
                         preferred_element_type=jnp.float32).sum(0)
    return dx, dkernel.astype(kernel.dtype)


channel_dot.defvjp(_channel_dot_fwd, _channel_dot_bwd)


@functools.partial(jax.jit, static_argnames=('strides', 'padding', 'dot'))
def patch_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
               padding: Padding, dot: Callable = jnp.dot) -> jax.Array:
    """A dense convolution as patches times a matrix: the (kh kw C_in) windows of every output
    position, stacked on the channel axis, contracted with the kernel reshaped to (kh kw C_in,
    C_out). One dot_general, so under the seed vmap (per-seed kernels and inputs) it becomes a
    batched matmul, not the grouped convolution that ``lax.conv_general_dilated`` turns into.
    """
    windows = _tap_windows(x, kernel.shape, strides, padding, (1, 1))
    patches = jnp.concatenate(windows, axis=-1)   # [B, H', W', kh kw C_in], tap-major
    return dot(patches, kernel.reshape(-1, kernel.shape[-1]))


class PatchConv(nn.Module):
    """The 'shift'/'einsum' twin of a bias-free dense ``nn.Conv``: ``patch_conv``.

    Same field names and the same ``kernel`` (kh, kw, C_in, C_out) parameter as ``nn.Conv``.
    """
    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: Padding = ((0, 0), (0, 0))
    dtype: jnp.dtype | None = None
    param_dtype: jnp.dtype = jnp.float32
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    chunked_weight_grad: bool = False    # `channel_dot` (conv_impl 'shift', wide layers)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param('kernel', self.kernel_init,
                            (*self.kernel_size, x.shape[-1], self.features), self.param_dtype)
        x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
        return patch_conv(x, kernel, tuple(self.strides), tuple(tuple(p) for p in self.padding),
                          channel_dot if self.chunked_weight_grad else jnp.dot)


class ShiftDepthwiseConv(nn.Module):
    """The 'shift' twin of ``nn.Conv(features, ..., feature_group_count=features, use_bias=False)``.

    Same field names and the same ``kernel`` parameter (shape, initialiser) as ``nn.Conv``;
    ``einsum`` selects ``einsum_depthwise_conv`` (conv_impl 'einsum').
    """
    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: Padding = ((0, 0), (0, 0))
    kernel_dilation: tuple[int, int] = (1, 1)
    dtype: jnp.dtype | None = None
    param_dtype: jnp.dtype = jnp.float32
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    einsum: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param('kernel', self.kernel_init, (*self.kernel_size, 1, self.features),
                            self.param_dtype)
        x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
        padding = tuple(tuple(p) for p in self.padding)
        conv = einsum_depthwise_conv if self.einsum else shifted_depthwise_conv
        return conv(x, kernel, tuple(self.strides), padding,
                                      tuple(self.kernel_dilation))


class MatmulConv(nn.Module):
    """The 'shift' twin of a 1x1 ``nn.Conv``: one matmul over the channel axis.

    Same field names and the same ``kernel`` (1, 1, C_in, C_out) and ``bias`` parameters as
    ``nn.Conv``.
    """
    features: int
    use_bias: bool = False
    dtype: jnp.dtype | None = None
    param_dtype: jnp.dtype = jnp.float32
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
    chunked_weight_grad: bool = False    # `channel_dot` (conv_impl 'shift', wide layers)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param('kernel', self.kernel_init, (1, 1, x.shape[-1], self.features),
                            self.param_dtype)
        bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
                if self.use_bias else None)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = (channel_dot if self.chunked_weight_grad else jnp.dot)(x, kernel[0, 0])
        return y if bias is None else y + bias


def depthwise_conv(features: int, kernel_size: tuple[int, int], *, strides=(1, 1),
                   padding: Padding = ((0, 0), (0, 0)), dilation=(1, 1), conv_impl: str = 'auto',
                   dtype=jnp.float32, init: str = 'flax', name: str | None = None) -> nn.Module:
    """A bias-free depthwise convolution: ``nn.Conv`` ('xla') or shifted multiply-adds ('shift',
    'einsum').

    Call it inside a compact method; the module it returns is a child named ``name`` either way,
    so both implementations give the same variable tree.
    """
    if resolve_conv_impl(conv_impl) == 'xla':
        return nn.Conv(features, kernel_size, strides=strides, padding=padding,
                       kernel_dilation=dilation, feature_group_count=features, use_bias=False,
                       dtype=dtype, param_dtype=jnp.float32, kernel_init=kernel_init(init),
                       name=name)
    return ShiftDepthwiseConv(features, tuple(kernel_size), strides=tuple(strides),
                              padding=padding, kernel_dilation=tuple(dilation), dtype=dtype,
                              param_dtype=jnp.float32, kernel_init=kernel_init(init), name=name,
                              einsum=resolve_conv_impl(conv_impl) == 'einsum')


def _use_channel_dot(conv_impl: str, features: int) -> bool:
    return (resolve_conv_impl(conv_impl) == 'shift'
            and features >= CHANNEL_DOT_MIN_FEATURES)


def pointwise_conv(features: int, *, use_bias: bool = False, conv_impl: str = 'auto',
                   dtype=jnp.float32, init: str = 'flax', fan_in: int | None = None,
                   name: str | None = None) -> nn.Module:
    """A 1x1 convolution, as ``nn.Conv`` ('xla') or a matmul ('shift', 'einsum'); same variables.

    ``fan_in`` (the input width) is needed for a bias under torch's initialisation.
    """
    if use_bias and init == 'torch' and fan_in is None:
        raise ValueError('pointwise_conv: a torch-initialised bias needs the fan_in')
    inits = dict(kernel_init=kernel_init(init),
                 bias_init=bias_init(init, fan_in) if use_bias else nn.initializers.zeros_init())
    if resolve_conv_impl(conv_impl) == 'xla':
        return nn.Conv(features, (1, 1), use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
                       name=name, **inits)
    return MatmulConv(features, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32, name=name,
                      chunked_weight_grad=_use_channel_dot(conv_impl, features), **inits)


def dense_conv(features: int, kernel_size: tuple[int, int], *, strides=(1, 1),
               padding: Padding = ((0, 0), (0, 0)), conv_impl: str = 'auto', dtype=jnp.float32,
               init: str = 'flax', name: str | None = None) -> nn.Module:
    """A bias-free dense convolution: ``nn.Conv`` ('xla') or patches times a matrix ('shift',
    'einsum'); same variables either way."""
    if resolve_conv_impl(conv_impl) == 'xla':
        return nn.Conv(features, kernel_size, strides=strides, padding=padding, use_bias=False,
                       dtype=dtype, param_dtype=jnp.float32, kernel_init=kernel_init(init),
                       name=name)
    return PatchConv(features, tuple(kernel_size), strides=tuple(strides), padding=padding,
                     dtype=dtype, param_dtype=jnp.float32, kernel_init=kernel_init(init),
                     chunked_weight_grad=_use_channel_dot(conv_impl, features), name=name)
