"""One-shot magnitude pruning as an optax GradientTransformation wrapper (jaxpruner's `wrap_optax`
design): the masks live in the optimizer state, so they are checkpointed and restored with it.

    tx = prune.wrap(inner_tx, prunable, sparsity=0.89, at_step=0, scope='global')

Before update `at_step` the masks are all ones. At that update the masks are computed from the
current parameters' magnitudes (the `sparsity` fraction of smallest |w| among the prunable tensors,
over all of them at once ('global') or per tensor ('layer'); ties broken by position, so the count is
exact), and the update of a pruned weight is set to -w, which zeroes it. From then on the masks are
fixed and every update of a pruned weight is 0, so the pruned weights stay exactly zero while the
others are fine-tuned by `inner` (whose own state, e.g. momentum, sees masked gradients).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


class PruneState(NamedTuple):
    inner: Any
    masks: Any            # bool tree like params: True = kept (ones for unprunable tensors)
    count: jax.Array      # int32: updates applied so far


def _smallest(values: jax.Array, k: int) -> jax.Array:
    """Bool mask of the k smallest entries of a 1-D array (stable: ties go to lower positions)."""
    order = jnp.argsort(values, stable=True)
    return jnp.zeros(values.shape, bool).at[order[:k]].set(True)


def magnitude_masks(params, prunable, sparsity: float, scope: str = 'global'):
    """Kept-masks that prune round(sparsity * n) of the prunable weights with the smallest |w|."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f'sparsity {sparsity} must be in [0, 1)')
    leaves, treedef = jax.tree.flatten(params)
    flags = treedef.flatten_up_to(prunable)
    chosen = [i for i, f in enumerate(flags) if f]
    if not chosen:
        raise ValueError('no prunable parameters: check the include/exclude regexes')
    masks = [jnp.ones(p.shape, bool) for p in leaves]
    if scope == 'global':
        sizes = [leaves[i].size for i in chosen]
        flat = jnp.concatenate([jnp.abs(leaves[i]).ravel() for i in chosen])
        pruned = _smallest(flat, int(round(sparsity * flat.size)))
        for i, part in zip(chosen, jnp.split(pruned, np.cumsum(sizes)[:-1])):
            masks[i] = ~part.reshape(leaves[i].shape)
    elif scope == 'layer':
        for i in chosen:
            p = leaves[i]
            masks[i] = ~_smallest(jnp.abs(p).ravel(), int(round(sparsity * p.size))).reshape(p.shape)
    else:
        raise ValueError(f"pruning scope {scope!r}: expected 'global' or 'layer'")
    return jax.tree.unflatten(treedef, masks)


def wrap(inner: optax.GradientTransformation, prunable, sparsity: float, at_step: int = 0,
         scope: str = 'global') -> optax.GradientTransformation:
    """`inner` with one-shot magnitude pruning at update `at_step` (see the module docstring)."""
    if not 0.0 <= sparsity < 1.0 or scope not in ('global', 'layer'):
        raise ValueError(f'pruning: sparsity {sparsity} must be in [0, 1) and scope {scope!r} '
                         "'global' or 'layer'")
    if not any(jax.tree.leaves(prunable)):
        raise ValueError('pruning: no prunable parameters; check the include/exclude regexes')

    def init(params):
        return PruneState(inner.init(params), jax.tree.map(lambda p: jnp.ones(p.shape, bool),
                                                           params), jnp.zeros((), jnp.int32))

    def update(updates, state, params):
        if params is None:
            raise ValueError('pruning needs the params in update()')
        masks = jax.lax.cond(state.count == at_step,
                             lambda: magnitude_masks(params, prunable, sparsity, scope),
                             lambda: state.masks)
        updates = jax.tree.map(lambda g, m: jnp.where(m, g, 0), updates, masks)
        updates, inner_state = inner.update(updates, state.inner, params)
        # Pruned weights: -w at the pruning update (w + -w == 0 exactly), 0 afterwards.
        updates = jax.tree.map(lambda u, p, m: jnp.where(m, u, -p), updates, params, masks)
        return updates, PruneState(inner_state, masks, state.count + 1)

    return optax.GradientTransformation(init, update)


def sparsity(params, prunable) -> float:
    """Fraction of exact zeros among the prunable weights."""
    leaves = [p for p, f in zip(jax.tree.leaves(params),
                                jax.tree.structure(params).flatten_up_to(prunable)) if f]
    total = sum(p.size for p in leaves)
    return float(sum(int(jnp.sum(p == 0)) for p in leaves) / total)
