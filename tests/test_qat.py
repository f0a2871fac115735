"""Quantisation-aware training with qwix: int8 weights per output channel, activation ranges."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from ascjax import models
from ascjax.compress import qat


def _fake_quant_per_output_channel(kernel):
    """int8, symmetric, one scale per output channel: LiteRT's absmax / 127 grid, [-127, 127]."""
    scale = jnp.abs(kernel).reshape(-1, kernel.shape[-1]).max(0) / 127
    return jnp.clip(jnp.round(kernel / scale), -127, 127) * scale


@pytest.mark.parametrize('conv_impl', ['shift', 'xla'])
def test_every_kernel_is_fake_quantised_per_output_channel(conv_impl):
    """The QAT model computes exactly the float model with every convolution kernel on its int8
    per-channel grid (activations left in float here, to isolate the weights)."""
    model = models.create_model('bcresnet_mod', tau=1, norm='resnorm',
                                norm_positions=models.POSITIONS, conv_impl=conv_impl)
    cfg = qat.default_config()
    cfg.act_qtype = ''
    quantised = qat.quantize(model, cfg)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 20, 1))
    variables = jax.jit(lambda x: quantised.init(jax.random.PRNGKey(1), x, train=False))(x)
    assert 'quant_stats' not in variables
    flat = traverse_util.flatten_dict(variables['params'])
    kernels = [k for k in flat if k[-1] == 'kernel']
    assert len(kernels) == 33
    on_grid = traverse_util.unflatten_dict(
        {k: _fake_quant_per_output_channel(v) if k in kernels else v for k, v in flat.items()})
    apply = lambda m: jax.jit(lambda v, x: m.apply(v, x, train=False))   # eager shift convs crawl
    expected = apply(model)({**variables, 'params': on_grid}, x)
    got = apply(quantised)(variables, x)
    np.testing.assert_allclose(got, expected, atol=1e-5)   # 'einsum' sums taps in another order
    float_out = apply(model)(variables, x)
    assert float(jnp.abs(float_out - got).max()) > 1e-3      # and quantisation did change it


def test_activation_ranges_are_a_collection_updated_by_training():
    model = models.create_model('bcresnet_mod', tau=1, norm='resnorm',
                                norm_positions=models.POSITIONS)
    quantised = qat.quantize(model, qat.default_config())
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 20, 1))
    variables = jax.jit(lambda x: quantised.init(jax.random.PRNGKey(1), x, train=False))(x)
    plain = model.init(jax.random.PRNGKey(1), x, train=False)
    assert jax.tree.structure(variables['params']) == jax.tree.structure(plain['params'])
    counts = lambda v: {float(c) for p, c in jax.tree_util.tree_flatten_with_path(
        v['quant_stats'])[0] if 'count' in jax.tree_util.keystr(p)}
    assert counts(variables) == {0.0}
    _, updates = jax.jit(lambda v, x: quantised.apply(
        v, x, train=True, mutable=['batch_stats', 'quant_stats'],
        rngs={'dropout': jax.random.PRNGKey(2)}))(variables, x)
    assert counts(updates) == {1.0}


def test_unknown_qtype_names_the_flag():
    cfg = qat.default_config()
    cfg.weight_qtype = 'int4'
    with pytest.raises(ValueError, match='config.qat.weight_qtype'):
        qat.provider(cfg)
