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
import numpy as np
import optax
from flax import linen as nn
from flax import struct

from ascjax.train import mesh as mesh_lib


@struct.dataclass
class TrainState:
    step: jax.Array          # scalar int32, shared by all seeds
    params: Any              # every leaf [K, ...]
    opt_state: Any
    collections: Any         # the model's other variable collections by name (batch_stats,
    #                          norm_stats, quant_stats, ...), every leaf [K, ...]
    train_keys: jax.Array    # [K, 2] uint32: keys for augmentation and dropout

    @property
    def num_seeds(self) -> int:
        return self.train_keys.shape[0]

    def variables(self) -> dict:
        """Variables for model.apply, still with the seed axis."""
        return {'params': self.params, **self.collections}


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    root = jax.random.PRNGKey(seed)
    return jnp.stack([jax.random.fold_in(root, k) for k in range(num_seeds)])


def _init_one(model: nn.Module, tx: optax.GradientTransformation, inputs: tuple, key):
    variables = dict(model.init({'params': jax.random.fold_in(key, 0)}, *inputs, train=False))
    params = variables.pop('params')
    return params, tx.init(params), variables, jax.random.fold_in(key, 1)


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


def param_shapes(model: nn.Module, input_shape: tuple[int, ...], extra_inputs=()):
    """The shapes of the model's params (for the optimizer's parameter groups), computing nothing."""
    return jax.eval_shape(lambda *xs: model.init(jax.random.PRNGKey(0), *xs, train=False),
                          *_sample_inputs(input_shape, extra_inputs))['params']


def param_count(params) -> int:
    """Parameters of one seed's model (the leading seed axis not counted)."""
    return int(sum(np.prod(p.shape[1:]) for p in jax.tree.leaves(params)))
