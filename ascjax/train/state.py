"""The train state: K independently initialised models (K = config.num_seeds >= 1) stacked on a
leading seed axis, trained together by one vmapped step. K = 1 is the ordinary single model.

Seed k's keys depend on (config.seed, k) only, so model k is the same whether it is trained alone
or among K: `seed_key(k) = fold_in(PRNGKey(config.seed), k)`; init uses fold_in(seed_key, 0),
augmentation and dropout fold_in(seed_key, 1).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax import struct

from ascjax.train import mesh as mesh_lib


@struct.dataclass
class TrainState:
    step: jax.Array          # scalar int32, shared by all seeds
    params: Any              # every leaf [K, ...]
    batch_stats: Any
    opt_state: Any
    norm_stats: Any          # Global FreqNorm's per-bin statistics ({} for other models)
    train_keys: jax.Array    # [K, 2] uint32: keys for augmentation and dropout
    quant_stats: Any = struct.field(default_factory=dict)   # QAT activation ranges (qwix), or {}

    @property
    def num_seeds(self) -> int:
        return self.train_keys.shape[0]

    def mutable(self) -> dict:
        """The collections a training forward pass updates: batch_stats, and quant_stats under
        quantisation-aware training. `replace(**mutable)` puts updated ones back."""
        out = {'batch_stats': self.batch_stats}
        if self.quant_stats:
            out['quant_stats'] = self.quant_stats
        return out

    def variables(self) -> dict:
        """Variables for model.apply, still with the seed axis."""
        out = {'params': self.params, **self.mutable()}
        if self.norm_stats:
            out['norm_stats'] = self.norm_stats
        return out


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    root = jax.random.PRNGKey(seed)
    return jnp.stack([jax.random.fold_in(root, k) for k in range(num_seeds)])


def _init_one(model: nn.Module, tx: optax.GradientTransformation, inputs: tuple, key):
    variables = model.init({'params': jax.random.fold_in(key, 0)}, *inputs, train=False)
    params = variables['params']
    return (params, variables.get('batch_stats', {}), tx.init(params),
            variables.get('norm_stats', {}), jax.random.fold_in(key, 1),
            variables.get('quant_stats', {}))


def _init_fn(model, tx, seed: int, num_seeds: int):
    def init(*inputs):
        keys = seed_keys(seed, num_seeds)
        parts = jax.vmap(lambda k: _init_one(model, tx, inputs, k))(keys)
        return TrainState(jnp.zeros((), jnp.int32), *parts)
    return init


def _sample_inputs(input_shape, extra_inputs):
    """The model's example inputs (batch of 1): the spectrogram, then any `extra_inputs` given as
    (shape, dtype) pairs without the batch axis (e.g. the translator's target device)."""
    return (jax.ShapeDtypeStruct((1, *input_shape), jnp.float32),
            *(jax.ShapeDtypeStruct((1, *shape), dtype) for shape, dtype in extra_inputs))


def shardings(abstract_state: TrainState, mesh):
    """Everything replicated: these models are small, the batch is what is sharded."""
    return jax.tree.map(lambda _: mesh_lib.replicated(mesh), abstract_state)


def abstract(model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...],
             seed: int, num_seeds: int, mesh, extra_inputs=()) -> TrainState:
    """Shapes, dtypes and shardings of `create(...)`, computing nothing (the restore target)."""
    shapes = jax.eval_shape(_init_fn(model, tx, seed, num_seeds),
                            *_sample_inputs(input_shape, extra_inputs))
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                        shapes, shardings(shapes, mesh))


def create(model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...],
           seed: int, num_seeds: int, mesh, extra_inputs=()) -> TrainState:
    """A fresh state, created directly in its (replicated) sharding by a jitted init."""
    target = abstract(model, tx, input_shape, seed, num_seeds, mesh, extra_inputs)
    init = _init_fn(model, tx, seed, num_seeds)
    out_shardings = jax.tree.map(lambda s: s.sharding, target)
    inputs = [jnp.zeros(s.shape, s.dtype) for s in _sample_inputs(input_shape, extra_inputs)]
    return jax.jit(init, out_shardings=out_shardings)(*inputs)


def seed_slice(state: TrainState, k: int) -> dict:
    """Model k's variables without the seed axis (for export, prediction, conversion)."""
    return jax.tree.map(lambda a: a[k], state.variables())
