"""The jitted train and eval steps, vmapped over the seed axis, sharded over the ('data',) mesh.

`make_step` is the one step builder: it vmaps a task's per-seed update over the K models of the
state and jits it with the batch sharded and the state replicated. `make_eval_step` does the same
for a per-seed forward pass. What an update computes (loss, augmentation) is the task's business.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from ascjax import features
from ascjax.train import mesh as mesh_lib
from ascjax.train.state import TrainState

# (params, collections, opt_state, train_key, step, batch) -> (params, collections, opt_state,
#     metrics): one seed's update on the shared global batch; `collections` are the model's
#     variable collections other than params (TrainState.collections), updated or not.
Update = Callable[..., tuple]
# (variables, batch) -> output [B, ...]: one seed's forward pass in eval mode.
Apply = Callable[[dict, dict], jax.Array]


def spectrogram(batch: dict, front_end: features.FrontEnd) -> jax.Array:
    """[B, F, T, 1] log-mels: from the batch, or computed here when the host sent waveforms."""
    if 'spectrogram' in batch:
        return batch['spectrogram']
    return features.logmel_jax(batch['audio'], front_end)[..., None]


def with_spectrogram(front_end: features.FrontEnd) -> Callable[[dict], dict]:
    """A batch map that puts the log-mels under 'spectrogram' (computing them from 'audio')."""
    return lambda batch: {**batch, 'spectrogram': spectrogram(batch, front_end)}


def make_step(update: Update, state_shardings, mesh, schedule=None,
              prepare: Callable[[dict], dict] | None = None):
    """state, batch -> state, metrics ([K] per seed, plus the learning rate if `schedule`).

    `prepare` maps the batch once for all seeds (e.g. waveforms -> log-mels) before the vmap.
    """
    per_seed = jax.vmap(update, in_axes=(0, 0, 0, 0, None, None))

    def step(state: TrainState, batch: dict):
        if prepare is not None:
            batch = prepare(batch)
        params, collections, opt_state, metrics = per_seed(
            state.params, state.collections, state.opt_state, state.train_keys, state.step, batch)
        if schedule is not None:
            metrics['learning_rate'] = schedule(state.step)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                             collections=collections), metrics

    return jax.jit(step, donate_argnums=(0,),
                   in_shardings=(state_shardings, mesh_lib.batch_sharding(mesh)),
                   out_shardings=(state_shardings, mesh_lib.replicated(mesh)))


def make_eval_step(apply: Apply, state_shardings, mesh,
                   prepare: Callable[[dict], dict] | None = None):
    """state, batch -> apply's output for every seed [K, B, ...], still sharded along the batch."""

    def outputs(state: TrainState, batch: dict):
        if prepare is not None:
            batch = prepare(batch)
        return jax.vmap(lambda v: apply(v, batch))(state.variables())

    return jax.jit(outputs, in_shardings=(state_shardings, mesh_lib.batch_sharding(mesh)),
                   out_shardings=jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(
                       None, mesh_lib.AXIS)))
