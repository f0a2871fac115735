"""The train step: bf16 compute with float32 state, and K seeds in one program (vmapped or one
after another) equal to K single-seed steps."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ascjax import models
from ascjax.tasks import classifier
from ascjax.train import state as state_lib
from tests import tiny_config


@pytest.mark.slow   # ~80 s; tests/test_models.py keeps the bf16 forward in the default suite
def test_bfloat16_compute_keeps_float32_state_and_loss():
    config = tiny_config.get_config('mod1_resnorm')
    config.model.dtype = 'bfloat16'
    model = models.from_config(config.model)
    assert model.dtype == jnp.bfloat16
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 32, 16, 1)), jnp.float32)
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x[:1])
    tx = optax.sgd(0.01)
    one = jax.jit(classifier.recipe_update(model, config)(tx))
    params, stats, _, metrics = one(variables['params'], {'batch_stats': variables['batch_stats']},
                                    tx.init(variables['params']), state_lib.seed_keys(0, 1)[0],
                                    0, {'spectrogram': x, 'label': jnp.arange(4)})
    for leaf in jax.tree.leaves((params, stats)):
        assert leaf.dtype == jnp.float32
    assert metrics['loss'].dtype == jnp.float32 and np.isfinite(float(metrics['loss']))
    logits = model.apply({'params': params, **stats}, x, train=False)
    assert logits.dtype == jnp.float32


def _seed_parallel_setup(config, num_seeds: int):
    from ascjax import features
    from ascjax.train import mesh as mesh_lib, optim
    model = models.from_config(config.model)
    mesh = mesh_lib.data_mesh()
    shape = features.input_shape(config.data)
    tx = optim.optimizer(config.train, state_lib.param_shapes(model, shape), 10)
    state = state_lib.create(model, tx, shape, config.seed, num_seeds, mesh)
    shardings = jax.tree.map(lambda a: a.sharding, state)
    step = classifier.make_train_step(model, tx, config, optim.schedule(config.train, 10),
                                      shardings, mesh)
    rng = np.random.default_rng(0)
    batch = mesh_lib.global_batch({
        'spectrogram': rng.standard_normal((8, *shape)).astype(np.float32),
        'label': (np.arange(8) % 10).astype(np.int32)}, mesh)
    return state, step, batch


# at_once 1 (seeds one after another, ~150 s) is the slow variant: its program has no vmapped conv.
@pytest.mark.parametrize('at_once', [4, pytest.param(1, marks=pytest.mark.slow)])
def test_seed_parallel_step_has_no_grouped_convolutions_and_equals_single_seed_steps(at_once):
    """K = 4 seeds in one step (per-seed weights, per-seed mixup/roll/dropout draws), vmapped
    together (at_once 4, the accelerator default) or one after another (1, the CPU default):
    XLA's optimised program holds no grouped or batch-grouped convolution (the slow path that a
    vmapped nn.Conv becomes), and seed k's update equals a single-seed step on seed k alone."""
    import re
    config = tiny_config.get_config('mod1_resnorm')
    config.num_seeds, config.seeds_at_once = 4, at_once
    state, step, batch = _seed_parallel_setup(config, 4)
    hlo = step.lower(state, batch).compile().as_text()
    groups = re.findall(r'(?:feature|batch)_group_count=(\d+)', hlo)
    assert all(int(g) == 1 for g in groups), sorted(set(groups))

    config.num_seeds = 1
    one, one_step, _ = _seed_parallel_setup(config, 1)
    alone = []   # seed k's state with a seed axis of 1, taken before the step donates `state`
    for k in range(4):
        seed_k = lambda a, k=k: np.asarray(a)[k:k + 1]
        alone.append(jax.device_put(state.replace(
            step=np.asarray(state.step), params=jax.tree.map(seed_k, state.params),
            opt_state=jax.tree.map(seed_k, state.opt_state),
            collections=jax.tree.map(seed_k, state.collections),
            train_keys=seed_k(state.train_keys)), jax.tree.map(lambda a: a.sharding, one)))
    new, metrics = step(state, batch)
    for k in range(4):
        got, got_metrics = one_step(alone[k], batch)
        np.testing.assert_allclose(got_metrics['loss'][0], metrics['loss'][k], rtol=1e-5)
        for a, b in zip(jax.tree.leaves(got.variables()), jax.tree.leaves(new.variables())):
            np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b)[k], rtol=1e-4, atol=1e-6)


def test_seeds_at_once_auto_is_all_on_accelerators_and_one_on_cpu():
    from ascjax.train import step as step_lib
    assert step_lib.seeds_at_once(0, 8, 'cpu') == 1
    assert step_lib.seeds_at_once(0, 8, 'gpu') == 8 and step_lib.seeds_at_once(0, 8, 'tpu') == 8
    assert step_lib.seeds_at_once(3, 8, 'cpu') == 3 and step_lib.seeds_at_once(16, 8, 'cpu') == 8
    with pytest.raises(ValueError, match='seeds_at_once'):
        step_lib.seeds_at_once(-1, 8)
