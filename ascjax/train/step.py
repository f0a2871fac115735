"""The jitted train and eval steps, vmapped over the seed axis, sharded over the ('data',) mesh.

`make_step` is the one step builder: it vmaps a per-seed update over the K models of the state and
jits it with the batch sharded and the state replicated. The classifier (`classifier_update`) and
the device translator (`ascjax.translator.train`) each supply only their per-seed update.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from ascjax import features
from ascjax.train import augment
from ascjax.train import mesh as mesh_lib
from ascjax.train.state import TrainState

# (params, mutable, opt_state, norm_stats, train_key, step, batch)
#     -> (params, mutable, opt_state, metrics): one seed's update on the shared global batch, where
# `mutable` is the dict of collections a training forward pass updates (TrainState.mutable()).
Update = Callable[..., tuple]


def spectrogram(batch: dict, front_end: features.FrontEnd) -> jax.Array:
    """[B, F, T, 1] log-mels: from the batch, or computed here when the host sent waveforms."""
    if 'spectrogram' in batch:
        return batch['spectrogram']
    return features.logmel_jax(batch['audio'], front_end)[..., None]


def make_step(update: Update, state_shardings, mesh, schedule=None,
              prepare: Callable[[dict], dict] | None = None):
    """state, batch -> state, metrics ([K] per seed, plus the learning rate if `schedule`).

    `prepare` maps the batch once for all seeds (e.g. waveforms -> log-mels) before the vmap.
    """
    per_seed = jax.vmap(update, in_axes=(0, 0, 0, 0, 0, None, None))

    def step(state: TrainState, batch: dict):
        if prepare is not None:
            batch = prepare(batch)
        params, mutable, opt_state, metrics = per_seed(
            state.params, state.mutable(), state.opt_state, state.norm_stats, state.train_keys,
            state.step, batch)
        if schedule is not None:
            metrics['learning_rate'] = schedule(state.step)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                             **mutable), metrics

    return jax.jit(step, donate_argnums=(0,),
                   in_shardings=(state_shardings, mesh_lib.batch_sharding(mesh)),
                   out_shardings=(state_shardings, mesh_lib.replicated(mesh)))


def classifier_update(model: nn.Module, tx, cfg, num_classes: int, translate, params,
                      mutable, opt_state, norm_stats, train_key, step, batch):
    """One update of one seed's classifier: (translator) -> augment -> loss -> update.

    `translate(key, x, batch) -> x` is the device-translator augmentation or None. With `teacher`
    logits in the batch the loss is knowledge distillation (cfg.distill: alpha, temperature T):
    (1 - alpha) * CE(labels) + alpha * T^2 * KL(teacher_T || student_T), mixup mixing the teacher's
    softened probabilities with the same weights as the inputs and labels.
    """
    keys = augment.step_keys(train_key, step)
    x, labels = batch['spectrogram'], batch['label']
    if translate is not None:
        x = translate(keys['translate'], x, batch)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), cfg.label_smoothing)
    distill = 'teacher' in batch
    if distill:
        temperature, alpha = cfg.distill.temperature, cfg.distill.alpha
        x, targets, teacher = augment.augment(
            keys, cfg.augment, x, targets, jax.nn.softmax(batch['teacher'] / temperature))
    else:
        x, targets = augment.augment(keys, cfg.augment, x, targets)
    extra = {'norm_stats': norm_stats} if norm_stats else {}

    def loss_fn(p):
        logits, updates = model.apply({'params': p, **mutable, **extra}, x, train=True,
                                      mutable=list(mutable), rngs={'dropout': keys['dropout']})
        logits = logits.astype(jnp.float32)
        loss = optax.softmax_cross_entropy(logits, targets).mean()
        if distill:
            kl = optax.losses.kl_divergence(jax.nn.log_softmax(logits / temperature), teacher)
            loss = (1 - alpha) * loss + alpha * temperature ** 2 * kl.mean()
        return loss, (logits, updates)

    (loss, (logits, mutable)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    metrics = {'loss': loss, 'grad_norm': optax.global_norm(grads),
               'accuracy': jnp.mean(jnp.argmax(logits, -1) == labels)}
    return params, mutable, opt_state, metrics


def make_train_step(model: nn.Module, tx, config, schedule, state_shardings, mesh,
                    translate=None):
    """The classifier's train step: state, batch -> state, metrics."""
    front_end = features.from_config(config.data)
    update = functools.partial(classifier_update, model, tx, config.train,
                               config.model.num_classes, translate)
    prepare = lambda batch: {**batch, 'spectrogram': spectrogram(batch, front_end)}
    return make_step(update, state_shardings, mesh, schedule, prepare)


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
