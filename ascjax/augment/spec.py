"""On-device augmentations of log-mel batches [B, F, T, 1], inside the jitted train step.

Every random draw gets its own key: `step_keys(seed_key, step)` folds the step into the seed's key
and splits it once into one key per named use, and each augmentation splits its key again per draw
(tests record every key that reaches jax.random and check that none is used twice).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Appending a name keeps the keys of the earlier ones (split is prefix-stable), so old runs replay.
KEY_NAMES = ('time_roll', 'freq_mask', 'time_mask', 'mixup', 'dropout', 'translate',
             'freq_mixstyle')


def step_keys(seed_key: jax.Array, step) -> dict[str, jax.Array]:
    """Independent keys for every random use of one step, a pure function of (seed key, step)."""
    keys = jax.random.split(jax.random.fold_in(seed_key, step), len(KEY_NAMES))
    return dict(zip(KEY_NAMES, keys))


def roll_shifts(key: jax.Array, batch: int, max_shift: int) -> jax.Array:
    """[B] integer time shifts, uniform on [-max_shift, max_shift]."""
    return jax.random.randint(key, (batch,), -max_shift, max_shift + 1)


def apply_time_roll(x: jax.Array, shifts: jax.Array) -> jax.Array:
    """Rolls example b of [B, F, T, C] along time by shifts[b] (jnp.roll's direction)."""
    return jax.vmap(lambda e, s: jnp.roll(e, s, axis=1))(x, shifts)


def time_roll(key: jax.Array, x: jax.Array, max_shift: int) -> jax.Array:
    """Rolls each example along time by an integer shift drawn from [-max_shift, max_shift]."""
    if max_shift <= 0:
        return x
    return apply_time_roll(x, roll_shifts(key, x.shape[0], max_shift))


def band_draws(key: jax.Array, batch: int, size: int, num_masks: int,
               max_width: int) -> tuple[jax.Array, jax.Array]:
    """([B, num_masks] widths U{0..max_width}, [B, num_masks] starts uniform over the valid
    positions) of SpecAugment bands along an axis of length ``size``."""
    width_key, start_key = jax.random.split(key)
    widths = jax.random.randint(width_key, (batch, num_masks), 0, max_width + 1)
    starts = jnp.floor(jax.random.uniform(start_key, (batch, num_masks))
                       * (size - widths + 1)).astype(jnp.int32)
    return widths, starts


def apply_band_masks(x: jax.Array, axis: int, widths: jax.Array, starts: jax.Array,
                     value: float = 0.0) -> jax.Array:
    """Sets the bands [starts, starts + widths) of every example along ``axis`` to ``value``."""
    size = x.shape[axis]
    pos = jnp.arange(size)[None, None, :]
    masked = jnp.any((pos >= starts[..., None]) & (pos < (starts + widths)[..., None]), axis=1)
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    shape[axis] = size
    return jnp.where(masked.reshape(shape), jnp.asarray(value, x.dtype), x)


def band_masks(key: jax.Array, x: jax.Array, axis: int, num_masks: int, max_width: int,
               value: float = 0.0) -> jax.Array:
    """SpecAugment-style masking: per example, `num_masks` bands of width U{0..max_width} along
    `axis` (1 = frequency, 2 = time), at uniform positions, set to `value`."""
    if num_masks <= 0 or max_width <= 0:
        return x
    widths, starts = band_draws(key, x.shape[0], x.shape[axis], num_masks, max_width)
    return apply_band_masks(x, axis, widths, starts, value)


def mixup_draws(key: jax.Array, batch: int, alpha: float,
                per: str = 'example') -> tuple[jax.Array, jax.Array]:
    """([B] weights lam ~ Beta(alpha, alpha) folded to lam >= 0.5 (cpjku's convention), [B]
    partner permutation). ``per='batch'`` draws one lam for the whole batch (as many PyTorch
    recipes do), ``'example'`` one per example."""
    if per not in ('example', 'batch'):
        raise ValueError(f"train.augment.mixup_per must be 'example' or 'batch', got {per!r}")
    lam_key, perm_key = jax.random.split(key)
    lam = jax.random.beta(lam_key, alpha, alpha, (batch if per == 'example' else 1,))
    lam = jnp.broadcast_to(jnp.maximum(lam, 1.0 - lam), (batch,))
    return lam, jax.random.permutation(perm_key, batch)


def apply_mixup(lam: jax.Array, perm: jax.Array, *arrays: jax.Array) -> tuple[jax.Array, ...]:
    """lam[b] * a[b] + (1 - lam[b]) * a[perm[b]] for every array a (inputs and targets alike)."""
    def mix(a):
        w = lam.reshape((-1,) + (1,) * (a.ndim - 1)).astype(a.dtype)
        return w * a + (1 - w) * a[perm]
    return tuple(mix(a) for a in arrays)


def mixup(key: jax.Array, alpha: float, x: jax.Array, *targets: jax.Array,
          per: str = 'example'):
    """Mixes each example with a random partner (`mixup_draws`), applied identically to the
    inputs and every target (labels, teacher probabilities...). Returns (x, targets...)."""
    if alpha <= 0:
        return (x, *targets)
    return apply_mixup(*mixup_draws(key, x.shape[0], alpha, per), x, *targets)


def freq_mixstyle_draws(key: jax.Array, batch: int, alpha: float,
                        probability: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(whether this batch is mixed [], [B] weights lam ~ Beta(alpha, alpha), [B] partner
    permutation) of Freq-MixStyle. As in CPJKU's helper, one coin decides for the whole batch."""
    apply_key, lam_key, perm_key = jax.random.split(key, 3)
    return (jax.random.uniform(apply_key) < probability,
            jax.random.beta(lam_key, alpha, alpha, (batch,)),
            jax.random.permutation(perm_key, batch))


def apply_freq_mixstyle(apply: jax.Array, lam: jax.Array, perm: jax.Array, x: jax.Array,
                        eps: float = 1e-6) -> jax.Array:
    """Freq-MixStyle (REFERENCE.md §3.3) of [B, F, T, C]: each example's per-frequency mean and
    std over (time, channels), treated as constants, are replaced by their mix with a partner's,
    lam[b] * own + (1 - lam[b]) * partner's. ``apply`` False returns x unchanged."""
    mu = jax.lax.stop_gradient(x.mean(axis=(2, 3), keepdims=True))
    sig = jax.lax.stop_gradient(jnp.sqrt(x.var(axis=(2, 3), keepdims=True) + eps))
    w = lam.reshape(-1, 1, 1, 1).astype(x.dtype)
    mixed = ((x - mu) / sig * (w * sig + (1 - w) * sig[perm])
             + w * mu + (1 - w) * mu[perm])
    return jnp.where(apply, mixed, x)


def freq_mixstyle(key: jax.Array, x: jax.Array, alpha: float, probability: float) -> jax.Array:
    """Freq-MixStyle with probability ``probability`` per batch; off for probability <= 0."""
    if probability <= 0 or alpha <= 0:
        return x
    return apply_freq_mixstyle(*freq_mixstyle_draws(key, x.shape[0], alpha, probability), x)


def draws(keys: dict[str, jax.Array], cfg, shape: tuple[int, ...]) -> dict[str, jax.Array]:
    """Every random number that `augment` uses on a batch of ``shape`` [B, F, T, C], by name.

    The PyTorch reference trainer applies the same draws to reproduce a step exactly.
    """
    batch, out = shape[0], {}
    if cfg.get('freq_mixstyle', 0.0) > 0 and cfg.get('freq_mixstyle_alpha', 0.0) > 0:
        out['freq_mixstyle'] = freq_mixstyle_draws(keys['freq_mixstyle'], batch,
                                                   cfg.freq_mixstyle_alpha, cfg.freq_mixstyle)
    if cfg.time_roll > 0:
        out['time_roll'] = roll_shifts(keys['time_roll'], batch, cfg.time_roll)
    for name, axis, num, width in (('freq_mask', 1, cfg.freq_masks, cfg.freq_mask_width),
                                   ('time_mask', 2, cfg.time_masks, cfg.time_mask_width)):
        if num > 0 and width > 0:
            out[name] = band_draws(keys[name], batch, shape[axis], num, width)
    if cfg.mixup_alpha > 0:
        out['mixup'] = mixup_draws(keys['mixup'], batch, cfg.mixup_alpha,
                                   cfg.get('mixup_per', 'example'))
    return out


def augment(keys: dict[str, jax.Array], cfg, x: jax.Array, *targets: jax.Array):
    """The training augmentations of config.train.augment, in order: Freq-MixStyle, time roll,
    frequency masks, time masks, mixup (of the inputs and of every target alike).
    Returns (x, *targets)."""
    d = draws(keys, cfg, x.shape)
    if 'freq_mixstyle' in d:
        x = apply_freq_mixstyle(*d['freq_mixstyle'], x)
    if 'time_roll' in d:
        x = apply_time_roll(x, d['time_roll'])
    if 'freq_mask' in d:
        x = apply_band_masks(x, 1, *d['freq_mask'])
    if 'time_mask' in d:
        x = apply_band_masks(x, 2, *d['time_mask'])
    if 'mixup' in d:
        return apply_mixup(*d['mixup'], x, *targets)
    return (x, *targets)
