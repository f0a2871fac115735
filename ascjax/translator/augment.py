"""Device-translator augmentation inside the classifier's jitted train step.

Each device-A example of the batch is, with probability p, replaced by its translation to a device
drawn uniformly from the devices the translator was trained on. Other devices' examples are never
touched. The translator runs in eval mode (running SSN statistics) with frozen weights.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ascjax.data import layout

# (key, x [B, F, T, 1], batch) -> x: what classifier_update calls (batch: device, index, ...).
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


def from_config(cfg, front_end=None) -> Translate:
    """The augmentation of config.translator (`workdir`, `probability`) from a trained translator.

    `front_end`: the classifier's features, which must equal the translator's.
    """
    from ascjax.translator import train as translator_train
    model, variables, info, tr_config = translator_train.load(cfg.workdir)
    if front_end is not None:
        from ascjax import features
        if features.from_config(tr_config.data) != front_end:
            raise ValueError(f'--config.translator.workdir={cfg.workdir}: the translator was '
                             'trained on other features than this run uses')
    targets = [layout.device_id(d) for d in info['devices']]
    apply = lambda x, target, batch: model.apply(variables, x, target, train=False)
    return make_translate(apply, targets, cfg.probability, info['source_device'])
