"""Device-translator augmentation inside the classifier's jitted train step.

(`ascjax.tasks.classifier` builds it from a translator workdir: config.translator.)

Each device-A example of the batch is, with probability p, replaced by its translation to a device
drawn uniformly from the devices the translator was trained on. Other devices' examples are never
touched. The translator runs in eval mode (running SSN statistics) with frozen weights.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ascjax.data import layout

# (key, x [B, F, T, 1], batch) -> x: a batch transform of the classifier (batch: device, ...).
Translate = Callable[[jax.Array, jax.Array, dict], jax.Array]


def make_translate(apply: Callable[[jax.Array, jax.Array, dict], jax.Array], targets,
                   probability: float, source_device: str = 'a') -> Translate:
    """`apply(x, target_device_ids, batch) -> x'` is the translator (the batch is there for
    translations looked up by example index); `targets` are the device ids to draw from."""
    targets = jnp.asarray(targets, jnp.int32)
    source = layout.device_id(source_device)

    def translate(key, x, batch):
        device = batch['device']
        pick_key, target_key = jax.random.split(key)
        replace = (device == source) & (jax.random.uniform(pick_key, device.shape) < probability)
        target = targets[jax.random.randint(target_key, device.shape, 0, len(targets))]
        translated = apply(x, target, batch).astype(x.dtype)
        return jnp.where(replace[:, None, None, None], translated, x)
    return translate
