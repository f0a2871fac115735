"""Input and stage normalisations compared in the QTI report: Global FreqNorm, FreqIN, ResNorm, RFN.

All act on NHWC = [batch, frequency, time, channels] and compute their statistics in float32
whatever the input dtype; the result has the input's dtype.

* ``global_freqnorm``: dataset-level per-mel-bin standardisation, input only. Its mean and std
  live in the variable collection ``norm_stats`` (``{'norm_input': {'mean': (F,), 'std': (F,)}}``),
  initialised to 0 and 1. The training loop fills them once from the training set:
  ``variables = with_global_freq_stats(variables, *global_freq_stats(train_features))``, and
  passes the collection to every ``apply`` (it is never mutable).
* ``freqin``: instance frequency-wise normalisation: per example and frequency bin, statistics
  over (time, channels), biased variance, no affine. A per-bin gain (a constant added to a log-mel
  bin, which is what a recording device's frequency response does) cancels out, which is the
  device-robustness argument of the paper.
* ``resnorm``: ResNorm = lambda * x + FreqIN(x): the shortcut keeps the information FreqIN throws
  away (lambda = 0.1 by default; exact form unverified, REFERENCE §3.1).
* ``rfn``: RFN = lambda * LN(x) + (1 - lambda) * FreqIN(x), LN per example over (F, T, C) without
  affine (lambda = 0.5 by default, unverified).

Placement is a tuple of ``POSITIONS``: ``input`` (before the head conv) and ``stage1``..``stage4``
(after the stage, before its max-pool). "Pre-ResNorm" is ``resnorm`` at ``('input',)``; "ResNorm"
is ``resnorm`` at ``RESNORM_POSITIONS``.
"""

from __future__ import annotations

from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

NORMS = ('none', 'global_freqnorm', 'freqin', 'resnorm', 'rfn')
POSITIONS = ('input', 'stage1', 'stage2', 'stage3', 'stage4')
RESNORM_POSITIONS = POSITIONS  # input and after every stage (REFERENCE §3.2)
DEFAULT_LAMBDA = {'resnorm': 0.1, 'rfn': 0.5}
EPSILON = 1e-5
STATS_COLLECTION = 'norm_stats'


def _instance_norm(x: jax.Array, axes: tuple[int, ...], eps: float) -> jax.Array:
    """Standardises ``x`` over ``axes`` per remaining index, in float32, without affine."""
    # parent=None keeps this parameter-free LayerNorm out of any enclosing module's tree.
    norm = nn.LayerNorm(epsilon=eps, use_bias=False, use_scale=False, reduction_axes=axes,
                        use_fast_variance=False, dtype=jnp.float32, parent=None)
    return norm.apply({}, x.astype(jnp.float32))


def freq_instance_norm(x: jax.Array, eps: float = EPSILON) -> jax.Array:
    """FreqIN: per (example, frequency) over (time, channels); float32 result."""
    return _instance_norm(x, (2, 3), eps)


def layer_norm(x: jax.Array, eps: float = EPSILON) -> jax.Array:
    """Per-example layer norm over (frequency, time, channels), no affine; float32 result."""
    return _instance_norm(x, (1, 2, 3), eps)


def residual_norm(x: jax.Array, lam: float = DEFAULT_LAMBDA['resnorm'],
                  eps: float = EPSILON) -> jax.Array:
    """ResNorm: lambda * x + FreqIN(x); float32 result."""
    return lam * x.astype(jnp.float32) + freq_instance_norm(x, eps)


def relaxed_freq_norm(x: jax.Array, lam: float = DEFAULT_LAMBDA['rfn'],
                      eps: float = EPSILON) -> jax.Array:
    """RFN: lambda * LN(x) + (1 - lambda) * FreqIN(x); float32 result."""
    return lam * layer_norm(x, eps) + (1.0 - lam) * freq_instance_norm(x, eps)


def check_norm_config(norm: str, positions: Iterable[str]) -> None:
    """Raises ValueError for an unknown norm or position, or Global FreqNorm off the input."""
    if norm not in NORMS:
        raise ValueError(f'norm must be one of {NORMS}, got {norm!r}')
    unknown = set(positions) - set(POSITIONS)
    if unknown:
        raise ValueError(f'unknown norm positions {sorted(unknown)}; choose from {POSITIONS}')
    if norm == 'global_freqnorm' and set(positions) - {'input'}:
        raise ValueError("global_freqnorm holds per-mel-bin input statistics: only position "
                         "'input' is allowed")


class FeatureNorm(nn.Module):
    """One of ``NORMS`` at one position of the network; ``lam=None`` takes ``DEFAULT_LAMBDA``."""
    norm: str
    lam: float | None = None
    eps: float = EPSILON

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        check_norm_config(self.norm, ())
        lam = DEFAULT_LAMBDA.get(self.norm) if self.lam is None else self.lam
        if self.norm == 'none':
            return x
        if self.norm == 'global_freqnorm':
            y = self._global_freqnorm(x)
        elif self.norm == 'freqin':
            y = freq_instance_norm(x, self.eps)
        elif self.norm == 'resnorm':
            y = residual_norm(x, lam, self.eps)
        else:
            y = relaxed_freq_norm(x, lam, self.eps)
        return y.astype(x.dtype)

    def _global_freqnorm(self, x: jax.Array) -> jax.Array:
        bins = x.shape[1]
        mean = self.variable(STATS_COLLECTION, 'mean', jnp.zeros, (bins,), jnp.float32).value
        std = self.variable(STATS_COLLECTION, 'std', jnp.ones, (bins,), jnp.float32).value
        return (x.astype(jnp.float32) - mean[:, None, None]) / std[:, None, None]


def global_freq_stats(features: Iterable[np.ndarray], eps: float = EPSILON):
    """Per-mel-bin mean and std over a training set, for Global FreqNorm.

    ``features`` yields arrays [B, F, T] or [B, F, T, 1] (e.g. batches of log-mels). Sums are
    accumulated in float64 so a full dataset does not lose precision. ``std = sqrt(var + eps)``
    keeps silent bins finite.
    """
    total = total_sq = None
    count = 0
    for batch in features:
        batch = np.asarray(batch, np.float64)
        batch = batch.reshape(batch.shape[0], batch.shape[1], -1)
        sums, sums_sq = batch.sum(axis=(0, 2)), np.square(batch).sum(axis=(0, 2))
        total = sums if total is None else total + sums
        total_sq = sums_sq if total_sq is None else total_sq + sums_sq
        count += batch.shape[0] * batch.shape[2]
    if not count:
        raise ValueError('global_freq_stats needs at least one batch')
    mean = total / count
    var = np.maximum(total_sq / count - np.square(mean), 0.0)
    return mean.astype(np.float32), np.sqrt(var + eps).astype(np.float32)


def with_global_freq_stats(variables: dict, mean, std) -> dict:
    """Returns ``variables`` with every Global FreqNorm's ``norm_stats`` set to (mean, std)."""
    if STATS_COLLECTION not in variables:
        raise ValueError(f"variables have no '{STATS_COLLECTION}': the model uses no "
                         'global_freqnorm')
    stats = {}
    for name, old in variables[STATS_COLLECTION].items():
        if np.shape(mean) != old['mean'].shape or np.shape(std) != old['std'].shape:
            raise ValueError(f'{name}: statistics of shape {np.shape(mean)} do not fit '
                             f"{old['mean'].shape}")
        stats[name] = {'mean': jnp.asarray(mean, jnp.float32), 'std': jnp.asarray(std, jnp.float32)}
    return {**variables, STATS_COLLECTION: stats}
