"""The train step in bf16: convolutions in bfloat16, parameters, statistics and loss in float32."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ascjax import models
from ascjax.tasks import classifier
from ascjax.train import state as state_lib
from tests import tiny_config


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
