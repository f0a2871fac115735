"""The device-translator U-Net: shapes, SubSpectralNorm everywhere, identity at init, FiLM."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from ascjax.data.layout import DEVICES
from ascjax.models.unet import UNet, translate

SMALL = dict(features=4, depth=2, sub_bands=4)


@pytest.fixture(scope='module')
def small():
    """A small UNet, an odd-T batch, device ids and the variables, initialised once (init
    dominates the run time on CPU). Parameters do not depend on ``dtype`` or ``residual``."""
    model = UNet(**SMALL)
    x = jax.random.normal(jax.random.key(0), (2, 32, 25, 1))
    device = jnp.arange(2) % len(DEVICES)
    return model, x, device, model.init(jax.random.key(1), x, device, train=False)


def test_output_shape_matches_odd_input(small):
    model, x, device, variables = small
    y = model.apply(variables, x, device, train=False)
    assert y.shape == x.shape and y.dtype == jnp.float32


def test_full_size_shapes_with_depth_3():
    model = UNet(features=16, depth=3)
    x = jax.ShapeDtypeStruct((2, 256, 431, 1), jnp.float32)
    device = jax.ShapeDtypeStruct((2,), jnp.int32)
    variables = jax.eval_shape(lambda x, d: model.init(jax.random.key(0), x, d, train=False),
                               x, device)
    y = jax.eval_shape(lambda v, x, d: model.apply(v, x, d, train=False), variables, x, device)
    assert y.shape == (2, 256, 431, 1) and y.dtype == jnp.float32
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables['params']))


def test_every_normalisation_is_a_sub_spectral_norm(small):
    model, x, device, variables = small
    stats = jax.tree_util.tree_flatten_with_path(variables['batch_stats'])[0]
    assert len(stats) == 2 * 2 * (2 * SMALL['depth'] + 1)  # mean+var, 2 blocks per stage
    for path, leaf in stats:
        keys = [k.key for k in path]
        assert keys[-3:-1] == ['ssn', 'bn'], keys
        assert leaf.shape[0] == SMALL['sub_bands'] and leaf.ndim == 2, (keys, leaf.shape)

    # And by module type: every BatchNorm that runs sits inside a SubSpectralNorm.
    batch_norms = []

    def spy(module, method_name):
        if isinstance(module, nn.BatchNorm):
            batch_norms.append(type(module.parent).__name__)
        return False

    model.apply(variables, x, device, train=False, capture_intermediates=spy)
    assert batch_norms and set(batch_norms) == {'SubSpectralNorm'}


@pytest.mark.parametrize('train', [False, True])
def test_residual_net_is_exact_identity_at_init(small, train):
    model, x, device, variables = small
    y = model.apply(variables, x, device, train=train, mutable=['batch_stats'])[0]
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(translate(model, variables, x, 3), x)


def test_device_conditioning_changes_the_output(small):
    model, x, _, variables = small
    x = jnp.concatenate([x[:1], x[:1]])  # the same clip, translated to two devices
    device = jnp.array([1, 2])
    params = variables['params']
    keys = iter(jax.random.split(jax.random.key(7), 100))

    def perturb(path, leaf):
        names = [k.key for k in path]
        if 'film' in names or 'out' in names:
            return leaf + 0.5 * jax.random.normal(next(keys), leaf.shape)
        return leaf

    # Output conv alone: the net is no longer the identity, but blind to the device.
    out_only = jax.tree_util.tree_map_with_path(
        lambda p, l: perturb(p, l) if p[0].key == 'out' else l, params)
    y = translate(model, {**variables, 'params': out_only}, x, device)
    assert not np.allclose(y, x)
    np.testing.assert_allclose(y[0], y[1], rtol=1e-6, atol=1e-6)

    # With FiLM tables perturbed too, devices 1 and 2 get different translations.
    perturbed = jax.tree_util.tree_map_with_path(perturb, params)
    y = translate(model, {**variables, 'params': perturbed}, x, device)
    assert np.max(np.abs(y[0] - y[1])) > 1e-3


@pytest.mark.parametrize('freq, depth', [(24, 3), (36, 2)])
def test_incompatible_frequency_size_is_a_clear_error(freq, depth):
    model = UNet(features=4, depth=depth, sub_bands=4)
    x = jnp.zeros((1, freq, 9, 1))
    with pytest.raises(ValueError, match=rf'F={freq}.*divisible by sub_bands=4'):
        model.init(jax.random.key(0), x, jnp.zeros((1,), jnp.int32), train=False)


def test_training_updates_batch_stats(small):
    model, x, device, variables = small
    y, updates = model.apply(variables, x, device, train=True, mutable=['batch_stats'])
    assert y.shape == x.shape
    old = jax.tree.leaves(variables['batch_stats'])
    new = jax.tree.leaves(updates['batch_stats'])
    assert len(old) == len(new)
    assert all(not np.allclose(a, b) for a, b in zip(old, new))


def test_bfloat16_compute_keeps_float32_params_and_output(small):
    _, x, device, variables = small
    model = UNet(**SMALL, dtype=jnp.bfloat16)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(1), x, device, train=False))
    assert jax.tree.map(lambda a: (a.shape, a.dtype), shapes) == \
        jax.tree.map(lambda a: (a.shape, a.dtype), variables)
    y = translate(model, variables, x, device)
    assert y.dtype == jnp.float32
    np.testing.assert_array_equal(y, x)  # still the identity: the correction is exactly zero
