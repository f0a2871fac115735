"""BC-ResNet (official KWS layout) and BC-ResNet-Mod (the QTI DCASE2021 Task 1A layout).

Layout NHWC = [batch, frequency, time, channels]. ``model.apply(variables, x, train=False)`` maps
log-mels [B, F, T, 1] to float32 logits [B, num_classes]. ``variables`` hold ``params`` and
``batch_stats`` (plus ``norm_stats`` for Global FreqNorm, see norms.py). Training calls
``apply(..., train=True, mutable=['batch_stats'], rngs={'dropout': key})``. Stage outputs are sown
into ``intermediates`` (head_out, stage1_out..stage4_out, pool1_out, pool2_out; stage outputs are
taken after the stage's normalisation) for shape checks and analysis.

Block semantics follow the official code (Qualcomm-AI-research/bcresnet, REFERENCE §1); the
Mod layout is the reconstruction of REFERENCE §2.2, which reproduces the paper's 8.1k and 315k
parameters exactly. Its unverified details are fields with the documented defaults.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from ascjax.models.layers import (SubSpectralNorm, batch_norm, dense_conv, depthwise_conv,
                                  pointwise_conv)
from ascjax.models.norms import FeatureNorm, check_norm_config

Dtype = Any


# model.remat: what a block keeps for the backward pass. 'none': everything XLA keeps; 'block':
# only its input, all else recomputed; 'dots': its matmul and conv outputs, the elementwise
# passes (BN/SSN, activations, adds) recomputed. A memory-traffic lever for bandwidth-bound CPU
# steps (`make bench`, section levers); the numbers are the same either way.
REMAT_POLICIES = {'none': None, 'block': jax.checkpoint_policies.nothing_saveable,
                  'dots': jax.checkpoint_policies.dots_saveable}


@functools.cache
def block_class(remat: str) -> type[nn.Module]:
    """``BCResBlock``, or its ``nn.remat`` under policy ``remat`` (``REMAT_POLICIES``)."""
    if remat not in REMAT_POLICIES:
        raise ValueError(f'model.remat must be one of {tuple(REMAT_POLICIES)}, got {remat!r}')
    if remat == 'none':
        return BCResBlock
    return nn.remat(BCResBlock, policy=REMAT_POLICIES[remat], static_argnums=(2,))


def width_ratios(base: int) -> tuple[int, int, int, int]:
    """Stage widths b, 1.5b, 2b, 2.5b (truncated to int, as the official code does)."""
    return base, int(base * 1.5), base * 2, int(base * 2.5)


class BCResBlock(nn.Module):
    """Broadcasted residual block: a 2-D frequency-wise part whose frequency-averaged output feeds
    a cheap 1-D temporal part, broadcast back over frequency.

    It is a *transition* block when the input width differs from ``features``: a 1x1 conv + BN +
    ReLU first adapts the width, and there is no identity shortcut (no projection exists).

    f2: [transition: 1x1 conv, BN, ReLU] -> frequency depthwise 3x1 (stride along frequency) ->
        SubSpectralNorm. Its output is the auxiliary 2-D residual.
    f1: mean over frequency -> temporal depthwise 1x3 (dilated, "same") -> BN -> SiLU -> 1x1 conv ->
        channel dropout.
    out = ReLU(f1 (broadcast over F) + f2 [+ input in normal blocks]).
    """
    features: int
    freq_stride: int = 1
    dilation: int = 1
    sub_bands: int = 5
    dropout: float = 0.1
    conv_impl: str = 'auto'
    weight_init: str = 'flax'
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        transition = x.shape[-1] != self.features
        if not transition and self.freq_stride != 1:
            raise ValueError('a normal block keeps its identity shortcut, so it cannot stride')
        shortcut = x
        conv_args = dict(conv_impl=self.conv_impl, dtype=self.dtype, init=self.weight_init)

        if transition:
            x = pointwise_conv(self.features, name='transition_conv', **conv_args)(x)
            x = batch_norm(self.dtype, 'transition_bn')(x, use_running_average=not train)
            x = nn.relu(x)
        x = depthwise_conv(self.features, (3, 1), strides=(self.freq_stride, 1),
                           padding=((1, 1), (0, 0)), name='freq_dw', **conv_args)(x)
        aux_2d = SubSpectralNorm(self.sub_bands, self.dtype, name='freq_ssn')(x, train)

        d = self.dilation
        x = jnp.mean(aux_2d, axis=1, keepdims=True)
        x = depthwise_conv(self.features, (1, 3), padding=((0, 0), (d, d)), dilation=(1, d),
                           name='temporal_dw', **conv_args)(x)
        x = batch_norm(self.dtype, 'temporal_bn')(x, use_running_average=not train)
        x = nn.silu(x)
        x = pointwise_conv(self.features, name='pointwise', **conv_args)(x)
        x = nn.Dropout(self.dropout, broadcast_dims=(1, 2), deterministic=not train)(x)

        x = x + aux_2d
        if not transition:
            x = x + shortcut
        return nn.relu(x)


class BCResStage(nn.Module):
    """``num_blocks`` BC-ResBlocks of one width; only the first may stride (and be a transition)."""
    features: int
    num_blocks: int
    freq_stride: int = 1
    dilation: int = 1
    sub_bands: int = 5
    dropout: float = 0.1
    conv_impl: str = 'auto'
    weight_init: str = 'flax'
    remat: str = 'none'
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        block = block_class(self.remat)
        for j in range(self.num_blocks):
            x = block(self.features, freq_stride=self.freq_stride if j == 0 else 1,
                           dilation=self.dilation, sub_bands=self.sub_bands, dropout=self.dropout,
                           conv_impl=self.conv_impl, weight_init=self.weight_init,
                           dtype=self.dtype, name=f'block{j + 1}')(x, train)
        return x


def conv_bn_relu_head(x: jax.Array, features: int, strides: tuple[int, int], train: bool,
                      dtype: Dtype, init: str = 'flax', conv_impl: str = 'auto') -> jax.Array:
    """Head: 5x5 conv (pad 2, no bias) -> BN -> ReLU. Call inside a compact method.

    The conv follows ``conv_impl`` like the others: alone it is an ordinary one-channel conv, but
    under the seed vmap (per-seed kernels, per-seed augmented inputs) ``nn.Conv`` becomes a grouped
    convolution, XLA's slow path; 'shift'/'einsum' write it as patches times a matrix.
    """
    x = dense_conv(features, (5, 5), strides=strides, padding=((2, 2), (2, 2)),
                   conv_impl=conv_impl, dtype=dtype, init=init, name='head_conv')(x)
    x = batch_norm(dtype, 'head_bn')(x, use_running_average=not train)
    return nn.relu(x)


def place_norm(x: jax.Array, position: str, norm: str, positions: tuple[str, ...],
               lam: float | None, dtype: Dtype) -> jax.Array:
    """Applies ``norm`` at ``position`` if configured there. Call inside a compact method."""
    if norm == 'none' or position not in positions:
        return x
    return FeatureNorm(norm, lam, name=f'norm_{position}')(x).astype(dtype)


class BCResNet(nn.Module):
    """Official BC-ResNet-tau (KWS): b = int(8 tau), stages of 2/2/4/4 blocks with widths
    b/1.5b/2b/2.5b, frequency stride 2 in stages 2 and 3, time dilation 2**stage.

    Classifier: depthwise 5x5 without frequency padding (40 mel -> 5 bins -> 1), 1x1 to 4b, BN,
    ReLU, global average pool, 1x1 conv with bias.
    """
    tau: float = 8
    num_classes: int = 12
    sub_bands: int = 5
    dropout: float = 0.1
    norm: str = 'none'
    norm_positions: tuple[str, ...] = ()
    norm_lambda: float | None = None
    conv_impl: str = 'auto'
    weight_init: str = 'flax'        # 'flax' | 'torch' (layers.kernel_init); config: model.init
    remat: str = 'none'              # REMAT_POLICIES
    dtype: Dtype = jnp.float32

    STAGE_BLOCKS = (2, 2, 4, 4)
    STRIDED_STAGES = (1, 2)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_norm_config(self.norm, self.norm_positions)
        base = int(8 * self.tau)
        widths = width_ratios(base)
        conv_args = dict(conv_impl=self.conv_impl, dtype=self.dtype, init=self.weight_init)
        norm = functools.partial(place_norm, norm=self.norm, positions=self.norm_positions,
                                 lam=self.norm_lambda, dtype=self.dtype)

        x = norm(x, 'input').astype(self.dtype)
        x = conv_bn_relu_head(x, 2 * base, (2, 1), train, self.dtype, self.weight_init,
                              self.conv_impl)
        self.sow('intermediates', 'head_out', x)
        for idx, (width, blocks) in enumerate(zip(widths, self.STAGE_BLOCKS)):
            name = f'stage{idx + 1}'
            x = BCResStage(width, blocks, freq_stride=2 if idx in self.STRIDED_STAGES else 1,
                           dilation=2 ** idx, sub_bands=self.sub_bands, dropout=self.dropout,
                           conv_impl=self.conv_impl, weight_init=self.weight_init,
                           remat=self.remat, dtype=self.dtype, name=name)(x, train)
            x = norm(x, name)
            self.sow('intermediates', f'{name}_out', x)

        x = depthwise_conv(widths[-1], (5, 5), padding=((0, 0), (2, 2)), name='classifier_dw',
                           **conv_args)(x)
        x = pointwise_conv(4 * base, name='classifier_pw', **conv_args)(x)
        x = batch_norm(self.dtype, 'classifier_bn')(x, use_running_average=not train)
        x = nn.relu(x)
        x = jnp.mean(x, axis=(1, 2), keepdims=True)
        x = pointwise_conv(self.num_classes, use_bias=True, fan_in=x.shape[-1],
                           name='classifier_out', **conv_args)(x)
        return x.reshape(x.shape[0], self.num_classes).astype(jnp.float32)


class BCResNetMod(nn.Module):
    """BC-ResNet-Mod-tau for ASC (REFERENCE §2.2, reconstructed): b = 10 tau, head 5x5 stride
    ``head_stride`` to 2b, stages of 2/2/2/3 blocks with widths b/1.5b/2b/2.5b, all undilated
    (the "limited receptive field"), max-pool ``pool`` after stages 1 and 2, classifier 1x1 conv
    with bias (then BN if ``classifier_bn``) and global average pool.

    Unverified, kept configurable: head_stride (2, 2) vs (2, 1), pool (2, 2) vs frequency only,
    dropout 0.1 (official) vs 0.5 (third party), classifier_bn (+2 * num_classes params).
    """
    tau: float = 8
    num_classes: int = 10
    sub_bands: int = 4
    head_stride: tuple[int, int] = (2, 2)
    pool: tuple[int, int] = (2, 2)
    dropout: float = 0.1
    classifier_bn: bool = False
    norm: str = 'none'
    norm_positions: tuple[str, ...] = ()
    norm_lambda: float | None = None
    conv_impl: str = 'auto'
    weight_init: str = 'flax'        # 'flax' | 'torch' (layers.kernel_init); config: model.init
    remat: str = 'none'              # REMAT_POLICIES
    dtype: Dtype = jnp.float32

    STAGE_BLOCKS = (2, 2, 2, 3)
    POOLED_STAGES = (0, 1)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_norm_config(self.norm, self.norm_positions)
        base = int(10 * self.tau)
        conv_args = dict(conv_impl=self.conv_impl, dtype=self.dtype, init=self.weight_init)
        norm = functools.partial(place_norm, norm=self.norm, positions=self.norm_positions,
                                 lam=self.norm_lambda, dtype=self.dtype)

        x = norm(x, 'input').astype(self.dtype)
        x = conv_bn_relu_head(x, 2 * base, tuple(self.head_stride), train, self.dtype,
                              self.weight_init, self.conv_impl)
        self.sow('intermediates', 'head_out', x)
        for idx, (width, blocks) in enumerate(zip(width_ratios(base), self.STAGE_BLOCKS)):
            name = f'stage{idx + 1}'
            x = BCResStage(width, blocks, dilation=1, sub_bands=self.sub_bands,
                           dropout=self.dropout, conv_impl=self.conv_impl,
                           weight_init=self.weight_init, remat=self.remat, dtype=self.dtype,
                           name=name)(x, train)
            x = norm(x, name)
            self.sow('intermediates', f'{name}_out', x)
            if idx in self.POOLED_STAGES:
                x = nn.max_pool(x, tuple(self.pool), strides=tuple(self.pool))
                self.sow('intermediates', f'pool{idx + 1}_out', x)

        x = pointwise_conv(self.num_classes, use_bias=True, fan_in=x.shape[-1],
                           name='classifier_conv', **conv_args)(x)
        if self.classifier_bn:
            x = batch_norm(self.dtype, 'classifier_bn')(x, use_running_average=not train)
        x = jnp.mean(x, axis=(1, 2))
        return x.astype(jnp.float32)
