"""The jitted train and eval steps, vmapped over the seed axis, sharded over the ('data',) mesh."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from ascjax import features
from ascjax.train import augment
from ascjax.train import mesh as mesh_lib
from ascjax.train.state import TrainState


def spectrogram(batch: dict, front_end: features.FrontEnd) -> jax.Array:
    """[B, F, T, 1] log-mels: from the batch, or computed here when the host sent waveforms."""
    if 'spectrogram' in batch:
        return batch['spectrogram']
    return features.logmel_jax(batch['audio'], front_end)[..., None]


def _train_one(model: nn.Module, tx, cfg, num_classes: int, params, batch_stats, opt_state,
               norm_stats, train_key, step, x, labels):
    """One SGD step of one seed's model on the (shared) global batch."""
    keys = augment.step_keys(train_key, step)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), cfg.label_smoothing)
    x, targets = augment.augment(keys, cfg.augment, x, targets)
    extra = {'norm_stats': norm_stats} if norm_stats else {}

    def loss_fn(p):
        logits, updates = model.apply({'params': p, 'batch_stats': batch_stats, **extra}, x,
                                      train=True, mutable=['batch_stats'],
                                      rngs={'dropout': keys['dropout']})
        loss = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()
        return loss, (logits, updates['batch_stats'])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    metrics = {'loss': loss, 'grad_norm': optax.global_norm(grads),
               'accuracy': jnp.mean(jnp.argmax(logits, -1) == labels)}
    return params, batch_stats, opt_state, metrics


def make_train_step(model: nn.Module, tx, config, schedule, state_shardings, mesh):
    """state, batch -> state, metrics (metrics [K] per seed, plus the learning rate)."""
    front_end = features.from_config(config.data)
    one = functools.partial(_train_one, model, tx, config.train, config.model.num_classes)
    per_seed = jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None, None, None))

    def step(state: TrainState, batch: dict):
        x = spectrogram(batch, front_end)
        params, batch_stats, opt_state, metrics = per_seed(
            state.params, state.batch_stats, state.opt_state, state.norm_stats, state.train_keys,
            state.step, x, batch['label'])
        metrics['learning_rate'] = schedule(state.step)
        new = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                            opt_state=opt_state)
        return new, metrics

    return jax.jit(step, donate_argnums=(0,),
                   in_shardings=(state_shardings, mesh_lib.batch_sharding(mesh)),
                   out_shardings=(state_shardings, mesh_lib.replicated(mesh)))


def make_eval_step(model: nn.Module, config, state_shardings, mesh):
    """state, batch -> logits [K, B, classes] (float32), still sharded along the batch."""
    front_end = features.from_config(config.data)

    def logits(state: TrainState, batch: dict):
        x = spectrogram(batch, front_end)
        apply = lambda v: model.apply(v, x, train=False).astype(jnp.float32)
        return jax.vmap(apply)(state.variables())

    return jax.jit(logits, in_shardings=(state_shardings, mesh_lib.batch_sharding(mesh)),
                   out_shardings=jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(
                       None, mesh_lib.AXIS)))
