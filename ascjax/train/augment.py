"""On-device augmentations of log-mel batches [B, F, T, 1], inside the jitted train step.

Every random draw gets its own key: `step_keys(seed_key, step)` folds the step into the seed's key
and splits it once into one key per named use, and each augmentation splits its key again per draw
(tests record every key that reaches jax.random and check that none is used twice).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Appending a name keeps the keys of the earlier ones (split is prefix-stable), so old runs replay.
KEY_NAMES = ('time_roll', 'freq_mask', 'time_mask', 'mixup', 'dropout', 'translate')


def step_keys(seed_key: jax.Array, step) -> dict[str, jax.Array]:
    """Independent keys for every random use of one step, a pure function of (seed key, step)."""
    keys = jax.random.split(jax.random.fold_in(seed_key, step), len(KEY_NAMES))
    return dict(zip(KEY_NAMES, keys))


def time_roll(key: jax.Array, x: jax.Array, max_shift: int) -> jax.Array:
    """Rolls each example along time by an integer shift drawn from [-max_shift, max_shift]."""
    if max_shift <= 0:
        return x
    shifts = jax.random.randint(key, (x.shape[0],), -max_shift, max_shift + 1)
    return jax.vmap(lambda e, s: jnp.roll(e, s, axis=1))(x, shifts)


def band_masks(key: jax.Array, x: jax.Array, axis: int, num_masks: int, max_width: int,
               value: float = 0.0) -> jax.Array:
    """SpecAugment-style masking: per example, `num_masks` bands of width U{0..max_width} along
    `axis` (1 = frequency, 2 = time), at uniform positions, set to `value`."""
    if num_masks <= 0 or max_width <= 0:
        return x
    size = x.shape[axis]
    width_key, start_key = jax.random.split(key)
    widths = jax.random.randint(width_key, (x.shape[0], num_masks), 0, max_width + 1)
    starts = jnp.floor(jax.random.uniform(start_key, (x.shape[0], num_masks))
                       * (size - widths + 1)).astype(jnp.int32)
    pos = jnp.arange(size)[None, None, :]
    masked = jnp.any((pos >= starts[..., None]) & (pos < (starts + widths)[..., None]), axis=1)
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    shape[axis] = size
    return jnp.where(masked.reshape(shape), jnp.asarray(value, x.dtype), x)


def mixup(key: jax.Array, alpha: float, x: jax.Array, *targets: jax.Array):
    """Mixes each example with a random partner with weight lam ~ Beta(alpha, alpha), lam >= 0.5
    (cpjku's convention), applied identically to the inputs and every target (labels, teacher
    logits...). Returns (x, targets...)."""
    if alpha <= 0:
        return (x, *targets)
    lam_key, perm_key = jax.random.split(key)
    lam = jax.random.beta(lam_key, alpha, alpha, (x.shape[0],))
    lam = jnp.maximum(lam, 1.0 - lam)
    perm = jax.random.permutation(perm_key, x.shape[0])

    def mix(a):
        w = lam.reshape((-1,) + (1,) * (a.ndim - 1)).astype(a.dtype)
        return w * a + (1 - w) * a[perm]
    return (mix(x), *(mix(t) for t in targets))


def augment(keys: dict[str, jax.Array], cfg, x: jax.Array, *targets: jax.Array):
    """The training augmentations of config.train.augment, in order: time roll, frequency masks,
    time masks, mixup (of the inputs and of every target alike). Returns (x, *targets)."""
    x = time_roll(keys['time_roll'], x, cfg.time_roll)
    x = band_masks(keys['freq_mask'], x, 1, cfg.freq_masks, cfg.freq_mask_width)
    x = band_masks(keys['time_mask'], x, 2, cfg.time_masks, cfg.time_mask_width)
    return mixup(keys['mixup'], cfg.mixup_alpha, x, *targets)
