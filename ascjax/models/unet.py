"""The device translator: a 2-D U-Net over log-mels, conditioned on the target device by FiLM.

Layout NHWC = [batch, frequency, time, 1]. ``UNet()(x, device, train)`` maps a spectrogram
recorded on one device (in practice device A) to the same scene as the target device ``device``
would have recorded it, with the same shape, in float32. Variables hold ``params`` and
``batch_stats``; training calls ``apply(..., train=True, mutable=['batch_stats'])``.

Every normalisation is a SubSpectralNorm (as in BC-ResNet), because device responses differ per
frequency region and so do the statistics of the features. With ``residual=True`` the net
predicts a correction that is added to the input, and the zero-initialised output convolution
makes the untrained translator the exact identity, so training starts from "no translation".
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from ascjax.models.layers import SubSpectralNorm

Dtype = Any


class ConvBlock(nn.Module):
    """3x3 conv (no bias) -> SubSpectralNorm -> FiLM(device) -> ReLU.

    FiLM: a per-block ``nn.Embed`` gives each device a per-channel (gamma, beta), applied as
    ``h * (1 + gamma) + beta`` after the SSN. The table starts at zero, so at init every device
    gets the unconditioned block and the devices drift apart only through training.
    """
    features: int
    num_devices: int
    sub_bands: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, device: jax.Array, train: bool) -> jax.Array:
        h = nn.Conv(self.features, (3, 3), padding='SAME', use_bias=False, dtype=self.dtype,
                    param_dtype=jnp.float32, name='conv')(x)
        h = SubSpectralNorm(self.sub_bands, jnp.float32, name='ssn')(h.astype(jnp.float32), train)
        film = nn.Embed(self.num_devices, 2 * self.features, param_dtype=jnp.float32,
                        embedding_init=nn.initializers.zeros_init(), name='film')(device)
        gamma, beta = jnp.split(film[:, None, None, :], 2, axis=-1)
        return nn.relu(h * (1 + gamma) + beta).astype(self.dtype)


class UNet(nn.Module):
    """U-Net with ``depth`` down-sampling levels of widths ``features * 2**level``.

    Encoder level: two ConvBlocks, then a 2x2 max-pool over (F, T). Bottleneck: two ConvBlocks at
    ``features * 2**depth``. Decoder level: nearest-neighbour x2 upsampling (``jnp.repeat``, no
    parameters and no checkerboard artefacts), concatenation with the encoder skip, two ConvBlocks.
    Output: a 1x1 conv with bias to one channel, zero-initialised; with ``residual`` it is added to
    the input; then a learned per-(device, frequency bin) offset, zero-initialised (its table has
    F columns, so a model is tied to its input's number of mel bins).

    F and T are edge-padded up to a multiple of ``2**depth`` and the output is cropped back, so odd
    sizes (T=431) work. Every level's padded F must be divisible by ``sub_bands`` (SubSpectralNorm),
    i.e. ``ceil(F / 2**depth)`` must be; otherwise ``__call__`` raises ValueError.
    ``device`` is int [B] (or one id for the whole batch): indices of
    ``ascjax.data.layout.DEVICES`` in ``[0, num_devices)``; unknown devices (id -1) are not
    supported (``nn.Embed`` would not raise on them).

    Convolutions compute in ``dtype``; SSN, FiLM, the output conv and the residual add run in
    float32; parameters and the output are float32.
    """
    features: int = 16
    depth: int = 3
    num_devices: int = 9
    sub_bands: int = 4
    residual: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, device: jax.Array, train: bool) -> jax.Array:
        b, f, t, _ = x.shape
        scale = 2 ** self.depth
        f_pad, t_pad = -(-f // scale) * scale, -(-t // scale) * scale
        level_bins = tuple(f_pad // 2 ** level for level in range(self.depth + 1))
        if any(bins % self.sub_bands for bins in level_bins):
            raise ValueError(
                f'UNet: F={f} (padded to {f_pad} for depth={self.depth}) gives {level_bins} '
                f'frequency bins per level; each must be divisible by sub_bands={self.sub_bands}')
        x = x.astype(jnp.float32)
        device = jnp.broadcast_to(jnp.asarray(device, jnp.int32), (b,))

        def block_pair(h, features, name):
            for j in range(2):
                h = ConvBlock(features, self.num_devices, self.sub_bands, self.dtype,
                              name=f'{name}_{j + 1}')(h, device, train)
            return h

        h = jnp.pad(x, ((0, 0), (0, f_pad - f), (0, t_pad - t), (0, 0)), mode='edge')
        inputs = h
        h = h.astype(self.dtype)
        skips = []
        for level in range(self.depth):
            h = block_pair(h, self.features * 2 ** level, f'down{level + 1}')
            skips.append(h)
            h = nn.max_pool(h, (2, 2), strides=(2, 2))
        h = block_pair(h, self.features * 2 ** self.depth, 'bottleneck')
        for level in reversed(range(self.depth)):
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
            h = jnp.concatenate([h, skips[level]], axis=-1)
            h = block_pair(h, self.features * 2 ** level, f'up{level + 1}')
        out = nn.Conv(1, (1, 1), dtype=jnp.float32, param_dtype=jnp.float32,
                      kernel_init=nn.initializers.zeros_init(),
                      bias_init=nn.initializers.zeros_init(), name='out')(h.astype(jnp.float32))
        if self.residual:
            out = inputs + out
        # A learned per-device, per-frequency offset: the device's mean spectral response. Without
        # it a device louder than A (positive offsets) can get stuck: the correction passes a ReLU
        # and a shared output conv whose sign the quieter devices set first.
        offset = nn.Embed(self.num_devices, f, param_dtype=jnp.float32,
                          embedding_init=nn.initializers.zeros_init(), name='device_offset')(device)
        return out[:, :f, :t, :] + offset[:, :, None, None]


def translate(model: UNet, variables: dict, x: jax.Array, device: jax.Array | int) -> jax.Array:
    """``x`` [B, F, T, 1] as recorded by ``device`` (int [B] or one id for all), in eval mode."""
    return model.apply(variables, x, device, train=False)


def from_config(model_config) -> UNet:
    """The translator of a config's `model` section, one FiLM row per TAU device."""
    from ascjax.data import layout
    fields = dict(model_config)
    fields['dtype'] = jnp.dtype(fields.get('dtype', 'float32'))
    return UNet(num_devices=len(layout.DEVICES), **fields)
