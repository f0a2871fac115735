"""One-shot magnitude pruning as an optax wrapper: exact sparsity, fixed masks, checkpointed."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ascjax import models
from ascjax.compress import prune
from ascjax.train import checkpoint, mesh as mesh_lib, optim, state as state_lib


def _setup(sparsity=0.89, at_step=2, scope='global'):
    model = models.create_model('bcresnet_mod', tau=1, norm='resnorm',
                                norm_positions=models.POSITIONS)
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 32, 20, 1))
    variables = model.init(jax.random.PRNGKey(0), x[:1])
    prunable = optim.path_mask(variables['params'], [r'kernel$'])
    tx = prune.wrap(optax.sgd(0.05, momentum=0.9), prunable, sparsity, at_step, scope)

    @jax.jit
    def step(params, stats, opt, x):
        def loss_fn(p):
            y, upd = model.apply({'params': p, 'batch_stats': stats}, x, train=True,
                                 mutable=['batch_stats'], rngs={'dropout': jax.random.PRNGKey(2)})
            return optax.softmax_cross_entropy_with_integer_labels(y, jnp.arange(8) % 10).mean(), upd
        (_, upd), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
        u, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, u), upd['batch_stats'], opt
    return model, variables, prunable, tx, step, x


def _zeros(params, prunable):
    flags = jax.tree.structure(params).flatten_up_to(prunable)
    return [np.asarray(p) == 0 for p, f in zip(jax.tree.leaves(params), flags) if f]


@pytest.mark.parametrize('scope', ['global', 'layer'])
def test_sparsity_is_exact_and_pruned_weights_stay_zero(scope):
    model, variables, prunable, tx, step, x = _setup(scope=scope)
    params, stats = variables['params'], variables['batch_stats']
    opt = tx.init(params)
    n = sum(p.size for p, f in zip(jax.tree.leaves(params),
                                   jax.tree.structure(params).flatten_up_to(prunable)) if f)
    for _ in range(2):                       # before the pruning step: dense
        params, stats, opt = step(params, stats, opt, x)
    assert prune.sparsity(params, prunable) == 0.0
    params, stats, opt = step(params, stats, opt, x)
    zeros = _zeros(params, prunable)
    if scope == 'global':
        assert sum(z.sum() for z in zeros) == round(0.89 * n)
    else:
        assert all(z.sum() == round(0.89 * z.size) for z in zeros)
    for _ in range(3):                       # fine-tuning keeps exactly the same zeros
        params, stats, opt = step(params, stats, opt, x)
        assert all(np.array_equal(a, b) for a, b in zip(_zeros(params, prunable), zeros))
    # only prunable tensors (kernels) are masked; BN/SSN scales and biases keep every entry
    flags = jax.tree.structure(params).flatten_up_to(prunable)
    masks = jax.tree.leaves(opt.masks)
    assert all(np.all(m) for m, f in zip(masks, flags) if not f)
    assert sum(int((~m).sum()) for m in masks) == sum(z.sum() for z in zeros)


def test_masks_survive_a_checkpoint_and_resume(tmp_path):
    """The masks are part of the optimizer state: saved and restored by the train checkpoints."""
    model, variables, prunable, tx, _, _ = _setup(at_step=0)
    mesh = mesh_lib.data_mesh()
    state = state_lib.create(model, tx, (32, 20, 1), 0, 1, mesh)
    params = jax.tree.map(lambda p: p[0], state.params)
    opt = jax.tree.map(lambda o: o[0], state.opt_state)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, opt = tx.update(grads, opt, params)
    state = state.replace(params=jax.tree.map(lambda p: p[None], optax.apply_updates(params, updates)),
                          opt_state=jax.tree.map(lambda o: o[None], opt))
    mngr = checkpoint.manager(str(tmp_path), 2)
    checkpoint.save(mngr, state)
    mngr.wait_until_finished()
    target = state_lib.abstract(model, tx, (32, 20, 1), 0, 1, mesh)
    restored = checkpoint.restore(checkpoint.manager(str(tmp_path), 2), target)
    for a, b in zip(jax.tree.leaves(restored.opt_state.masks), jax.tree.leaves(opt.masks)):
        assert np.array_equal(np.asarray(a)[0], np.asarray(b))
    assert int(restored.opt_state.count[0]) == 1
    assert prune.sparsity(jax.tree.map(lambda p: p[0], restored.params), prunable) == pytest.approx(
        0.89, abs=1e-4)


def test_bad_settings_fail_clearly():
    _, variables, prunable, _, _, _ = _setup()
    with pytest.raises(ValueError, match='sparsity'):
        prune.wrap(optax.sgd(0.1), prunable, 1.0)
    with pytest.raises(ValueError, match='no prunable'):
        prune.wrap(optax.sgd(0.1), jax.tree.map(lambda _: False, prunable), 0.5)
