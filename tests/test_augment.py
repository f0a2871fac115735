"""On-device augmentations and keys: every random draw of a train step gets a fresh key."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ascjax import models
from ascjax.augment import spec as augment
from ascjax.tasks import classifier
from ascjax.train import state as state_lib
from tests import tiny_config

RANDOM_FUNCTIONS = ('uniform', 'randint', 'beta', 'permutation', 'bernoulli', 'normal')


def test_no_key_is_used_for_two_draws(monkeypatch):
    """Records the key of every jax.random draw of 3 steps x 2 seeds of a real train step."""
    used = collections.Counter()
    calls = collections.Counter()
    for name in RANDOM_FUNCTIONS:
        original = getattr(jax.random, name)

        def recording(key, *args, _original=original, _name=name, **kwargs):
            # Under jit the key is a tracer: record its value when the step runs.
            jax.debug.callback(lambda k: used.update([np.asarray(k).tobytes()]),
                               jax.random.key_data(key))
            calls[_name] += 1
            return _original(key, *args, **kwargs)
        monkeypatch.setattr(jax.random, name, recording)

    config = tiny_config.get_config('mod1_resnorm,freqmixstyle')
    config.train.augment.freq_mixstyle = 1.0
    model = models.create_model('bcresnet_mod', tau=1, norm='resnorm',
                                norm_positions=models.POSITIONS, conv_impl='shift')
    tx = optax.sgd(0.1)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 32, 16, 1)), jnp.float32)
    labels = jnp.arange(4) % 10
    variables = model.init(jax.random.PRNGKey(0), x[:1])
    used.clear()
    params, stats, opt = variables['params'], {'batch_stats': variables['batch_stats']}, tx.init(
        variables['params'])
    train_one = jax.jit(classifier.recipe_update(model, config)(tx))
    for seed_key in state_lib.seed_keys(0, 2):
        for step in range(3):
            params, stats, opt, _ = train_one(params, stats, opt, seed_key, step,
                                              {'spectrogram': x, 'label': labels})
    jax.effects_barrier()
    assert sum(used.values()) >= 2 * 3 * 5
    assert {'randint', 'uniform', 'beta', 'permutation', 'bernoulli'} <= set(calls)
    reused = [k for k, n in used.items() if n > 1]
    assert not reused, f'{len(reused)} keys used more than once'


def test_step_keys_are_distinct_across_steps_and_uses():
    keys = [augment.step_keys(jax.random.PRNGKey(0), s) for s in range(50)]
    flat = [np.asarray(k).tobytes() for ks in keys for k in ks.values()]
    assert len(set(flat)) == len(flat)


def test_band_masks_zero_bands_of_bounded_width():
    x = jnp.ones((64, 32, 40, 1))
    y = np.asarray(augment.band_masks(jax.random.PRNGKey(1), x, 1, num_masks=1, max_width=5))
    masked_rows = (y[..., 0] == 0).all(axis=2).sum(axis=1)      # masked frequency bins per clip
    assert masked_rows.max() <= 5 and masked_rows.min() >= 0 and masked_rows.mean() > 1
    assert np.all((y == 0) | (y == 1))
    t = np.asarray(augment.band_masks(jax.random.PRNGKey(2), x, 2, num_masks=2, max_width=3))
    assert ((t[..., 0] == 0).all(axis=1).sum(axis=1) <= 6).all()


def test_mixup_mixes_inputs_and_targets_alike():
    x = jnp.arange(8.0).reshape(8, 1, 1, 1)
    y = jax.nn.one_hot(jnp.arange(8), 8)
    mx, my = augment.mixup(jax.random.PRNGKey(0), 0.3, x, y)
    np.testing.assert_allclose(np.asarray(my).sum(1), 1.0, rtol=1e-6)
    assert np.all(np.asarray(my).max(1) >= 0.5 - 1e-6)            # lam >= 0.5
    np.testing.assert_allclose(np.asarray(mx)[:, 0, 0, 0], np.asarray(my) @ np.arange(8.0),
                               rtol=1e-5)
    same = augment.mixup(jax.random.PRNGKey(0), 0.0, x, y)
    assert same[0] is x and same[1] is y


def test_time_roll_is_a_roll():
    x = jnp.arange(2 * 10, dtype=jnp.float32).reshape(2, 1, 10, 1)
    y = np.asarray(augment.time_roll(jax.random.PRNGKey(3), x, 4))
    for i in range(2):
        assert any(np.array_equal(y[i], np.roll(np.asarray(x[i]), s, axis=1))
                   for s in range(-4, 5))


def test_seed_k_is_the_same_model_alone_or_among_k():
    from ascjax.train import mesh as mesh_lib
    model = models.create_model('bcresnet_mod', tau=1)
    tx = optax.sgd(0.1)
    mesh = mesh_lib.data_mesh()
    one = state_lib.create(model, tx, (32, 20, 1), seed=3, num_seeds=1, mesh=mesh)
    two = state_lib.create(model, tx, (32, 20, 1), seed=3, num_seeds=2, mesh=mesh)
    a, b = jax.tree.leaves(one.params), jax.tree.leaves(two.params)
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(a, b))
    assert any(not np.array_equal(q[0], q[1]) for q in b)


def test_freq_mixstyle_mixes_per_frequency_statistics():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((6, 8, 20, 2)) * rng.uniform(0.5, 3, (6, 8, 1, 1))
                    + rng.uniform(-5, 5, (6, 8, 1, 1)), jnp.float32)
    apply, lam, perm = augment.freq_mixstyle_draws(jax.random.PRNGKey(0), 6, 0.3, 1.0)
    assert bool(apply) and lam.shape == (6,) and sorted(np.asarray(perm)) == list(range(6))
    y = np.asarray(augment.apply_freq_mixstyle(apply, lam, perm, x))
    mu, sig = np.asarray(x).mean((2, 3)), np.asarray(x).std((2, 3))
    w, p = np.asarray(lam)[:, None], np.asarray(perm)
    np.testing.assert_allclose(y.mean((2, 3)), w * mu + (1 - w) * mu[p], atol=1e-4)
    np.testing.assert_allclose(y.std((2, 3)), w * sig + (1 - w) * sig[p], rtol=1e-3)
    # Off: probability 0, or the batch's coin says no.
    assert augment.freq_mixstyle(jax.random.PRNGKey(0), x, 0.3, 0.0) is x
    np.testing.assert_array_equal(
        augment.apply_freq_mixstyle(jnp.asarray(False), lam, perm, x), x)


def test_freq_mixstyle_option_and_torch_reference_agree():
    """The config option turns it on; the PyTorch trainer applies the same draws identically."""
    torch = __import__('pytest').importorskip('torch')
    from experiments.configs import paper
    from ascjax.torch_reference import train as torch_train
    cfg = paper.get_config('mod1,freqmixstyle').train.augment
    assert cfg.freq_mixstyle == 0.4 and paper.get_config('mod1').train.augment.freq_mixstyle == 0
    x = np.random.default_rng(1).standard_normal((4, 16, 10, 1)).astype(np.float32)
    keys = augment.step_keys(jax.random.PRNGKey(0), 3)
    cfg.freq_mixstyle = 1.0
    draws = jax.device_get(augment.draws(keys, cfg, x.shape))
    ours, _ = augment.augment(keys, cfg, jnp.asarray(x), jnp.zeros((4, 10)))
    theirs, _ = torch_train.augment(torch_train.to_nchw(x), torch.zeros(4, 10), draws)
    np.testing.assert_allclose(theirs.permute(0, 2, 3, 1).numpy(), np.asarray(ours),
                               rtol=1e-4, atol=1e-4)
    assert set(torch_train.numpy_draws(0)(3, cfg, x.shape)) == set(draws)
