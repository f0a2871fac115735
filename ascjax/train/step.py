"""The jitted train and eval steps over the seed axis, sharded over the ('data',) mesh.

`make_step` is the one step builder: it runs a task's per-seed update over the K models of the
state (vmapped, `seeds_at_once` at a time) and jits it with the batch sharded and the state
replicated. `make_eval_step` does the same
for a per-seed forward pass. What an update computes (loss, augmentation) is the task's business.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

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


def seeds_at_once(requested: int, num_seeds: int, backend: str | None = None) -> int:
    """How many of the K seeds one vmap updates together (config.seeds_at_once; 0 = auto).

    auto: all K on an accelerator, where one small model leaves the chip idle; one at a time on
    CPU, where one seed's step already streams its activations through memory at full bandwidth
    and K at once only make the working set K times larger (`make bench`, section seeds).
    """
    if requested < 0:
        raise ValueError(f'--config.seeds_at_once={requested}: must be >= 0 (0 = auto)')
    if requested == 0:
        requested = 1 if (backend or jax.default_backend()) == 'cpu' else num_seeds
    return min(requested, num_seeds)


def over_seeds(update: Update, chunk: int | None = None) -> Update:
    """`update` over the leading seed axis of (params, collections, opt_state, train_key), the
    step and batch shared: vmapped over `chunk` seeds at a time (`seeds_at_once`), the chunks
    one after another in the same program. The chunks are unrolled, not a `lax.map`: inside a
    while loop XLA:CPU ran the same per-seed update 2.4x slower (Mod-1, 3-s clips, one core);
    unrolled, K = 8 seeds one at a time cost what 8 single-seed steps do."""
    vmapped = jax.vmap(update, in_axes=(0, 0, 0, 0, None, None))

    def per_seed(params, collections, opt_state, train_keys, step, batch):
        seeded = (params, collections, opt_state, train_keys)
        k = train_keys.shape[0]
        at_once = seeds_at_once(chunk or 0, k)
        if at_once == k:
            return vmapped(*seeded, step, batch)
        parts = [vmapped(*jax.tree.map(lambda a, s=start: a[s:s + at_once], seeded), step, batch)
                 for start in range(0, k, at_once)]
        return jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)
    return per_seed


def make_step(update: Update, state_shardings, mesh, schedule=None,
              prepare: Callable[[dict], dict] | None = None, seeds_at_once: int = 0):
    """state, batch -> state, metrics ([K] per seed, plus the learning rate if `schedule`).

    `prepare` maps the batch once for all seeds (e.g. waveforms -> log-mels) before the seeds'
    updates; `seeds_at_once` is config.seeds_at_once (`over_seeds`).
    """
    per_seed = over_seeds(update, seeds_at_once)

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
