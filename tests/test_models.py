"""BC-ResNet / BC-ResNet-Mod: exact parameter counts, shapes, conv_impl equivalence, dropout,
normalisation placement and dtypes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ascjax.models import RESNORM_POSITIONS, BCResBlock, create_model, with_global_freq_stats


def _abstract_variables(model, shape):
    """Variables as shapes only: counting never runs a convolution."""
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))


def _size(tree):
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _rel_close(a, b, rtol):
    a, b = np.asarray(a), np.asarray(b)
    assert np.max(np.abs(a - b)) <= rtol * max(np.max(np.abs(b)), 1e-12)


# --- parameter counts (learnable only; the paper's and the official code's numbers) -------------

@pytest.mark.parametrize('name, kwargs, shape, params, stats', [
    ('bcresnet_mod', dict(tau=1), (1, 256, 431, 1), 8_055, 1_830),
    ('bcresnet_mod', dict(tau=2), (1, 256, 431, 1), 25_050, None),
    ('bcresnet_mod', dict(tau=4), (1, 256, 431, 1), 85_890, None),
    ('bcresnet_mod', dict(tau=8), (1, 256, 431, 1), 314_970, 14_640),
    ('bcresnet', dict(tau=8, num_classes=10, sub_bands=4), (1, 256, 431, 1), 317_610, None),
    ('bcresnet', dict(tau=1), (1, 40, 101, 1), 9_232, 2_416),
    ('bcresnet', dict(tau=8), (1, 40, 101, 1), 321_068, 19_328),
])
def test_parameter_counts_are_exact(name, kwargs, shape, params, stats):
    variables = _abstract_variables(create_model(name, **kwargs), shape)
    assert _size(variables['params']) == params
    if stats is not None:
        assert _size(variables['batch_stats']) == stats


def test_counts_do_not_depend_on_time_length():
    model = create_model('bcresnet_mod', tau=1)
    assert (_size(_abstract_variables(model, (1, 256, 431, 1))['params'])
            == _size(_abstract_variables(model, (1, 256, 100, 1))['params']))


def test_classifier_bn_adds_two_params_per_class():
    model = create_model('bcresnet_mod', tau=1, classifier_bn=True)
    assert _size(_abstract_variables(model, (1, 256, 431, 1))['params']) == 8_055 + 20


def test_parameter_tree_names():
    params = _abstract_variables(create_model('bcresnet_mod', tau=1), (1, 32, 20, 1))['params']
    assert set(params) == {'head_conv', 'head_bn', 'stage1', 'stage2', 'stage3', 'stage4',
                           'classifier_conv'}
    assert set(params['stage1']['block1']) == {'transition_conv', 'transition_bn', 'freq_dw',
                                               'freq_ssn', 'temporal_dw', 'temporal_bn',
                                               'pointwise'}
    assert 'transition_conv' not in params['stage1']['block2']  # normal block
    assert params['stage1']['block1']['freq_dw']['kernel'].shape == (3, 1, 1, 10)
    assert params['stage1']['block1']['freq_ssn']['bn']['scale'].shape == (4, 10)


# --- shapes --------------------------------------------------------------------------------------

def _intermediate_shapes(model, shape):
    variables = _abstract_variables(model, shape)
    logits, state = jax.eval_shape(
        lambda v: model.apply(v, jnp.zeros(shape), train=False, mutable=['intermediates']),
        variables)
    return logits, {k: v[0].shape for k, v in state['intermediates'].items()}


def test_mod8_shapes_on_a_ten_second_clip():
    logits, shapes = _intermediate_shapes(create_model('bcresnet_mod', tau=8), (2, 256, 431, 1))
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32
    assert shapes == {
        'head_out': (2, 128, 216, 160),
        'stage1_out': (2, 128, 216, 80), 'pool1_out': (2, 64, 108, 80),
        'stage2_out': (2, 64, 108, 120), 'pool2_out': (2, 32, 54, 120),
        'stage3_out': (2, 32, 54, 160),
        'stage4_out': (2, 32, 54, 200),
    }


def test_bcresnet8_shapes_on_kws_input():
    logits, shapes = _intermediate_shapes(create_model('bcresnet', tau=8), (2, 40, 101, 1))
    assert logits.shape == (2, 12)
    assert shapes == {'head_out': (2, 20, 101, 128), 'stage1_out': (2, 20, 101, 64),
                      'stage2_out': (2, 10, 101, 96), 'stage3_out': (2, 5, 101, 128),
                      'stage4_out': (2, 5, 101, 160)}


def test_mod_head_stride_and_pool_are_configurable():
    _, shapes = _intermediate_shapes(
        create_model('bcresnet_mod', tau=1, head_stride=(2, 1), pool=(2, 1)), (1, 256, 431, 1))
    assert shapes['head_out'] == (1, 128, 431, 20)
    assert shapes['stage4_out'] == (1, 32, 431, 25)


# --- conv_impl equivalence on whole models ------------------------------------------------------

# Compiling a whole model's backward pass dominates these tests' time; XLA's backend optimisations
# only change rounding, so the equivalence checks compile without them (about 2x faster).
FAST_COMPILE = {'xla_backend_optimization_level': 0, 'xla_llvm_disable_expensive_passes': True}
# 32 mel: SSN(4) sizes 16/8/4. Batch 4 x 40 frames, not fewer: with 2 x 20 the last stages' BN
# groups hold 4 values each, and float32 gradients (both implementations agree to 1e-13 in
# float64) drift apart by ~1.4e-4 through such ill-conditioned batch statistics.
MOD1_INPUT = (4, 32, 40, 1)
BCRES1_INPUT = (2, 40, 16, 1)   # 40 mel (KWS): SSN(5) sizes 20/10/5; dilation 8 on 16 frames


def _random_variables(model, shape, seed=0):
    """Random, non-trivial variables (affine, running stats, kernels scaled by fan-in) built with
    NumPy from the abstract tree: no per-shape compilation of flax initialisers."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "'var'" in name or "'scale'" in name or "'std'" in name:
            values = 1.0 + 0.2 * np.abs(rng.normal(size=leaf.shape))
        elif "'kernel'" in name:
            values = rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
        else:
            values = 0.2 * rng.normal(size=leaf.shape)
        return jnp.asarray(values, jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, _abstract_variables(model, shape))


def _train_step_outputs(model, variables, x):
    """Gradients (params and input) and outputs of one train-mode step, plus eval logits."""
    def loss(params, x):
        logits, updates = model.apply({**variables, 'params': params}, x, train=True,
                                      mutable=['batch_stats'], rngs={'dropout': jax.random.key(3)})
        return jnp.sum(logits * jnp.arange(1, logits.shape[-1] + 1)), (logits, updates)

    grads, (logits, updates) = jax.grad(loss, argnums=(0, 1), has_aux=True)(variables['params'], x)
    return grads, logits, updates, model.apply(variables, x, train=False)


def _forward_outputs(model, variables, x):
    """Train-mode logits and batch statistics, plus eval logits (no backward pass)."""
    logits, updates = model.apply(variables, x, train=True, mutable=['batch_stats'],
                                  rngs={'dropout': jax.random.key(3)})
    return logits, updates, model.apply(variables, x, train=False)


def _assert_same(got, want):
    """Outputs and statistics to 1e-5 (relative to their scale), gradients to 1e-4 relative."""
    if len(want) == 4:
        jax.tree.map(lambda a, b: _rel_close(a, b, 1e-4), got[0], want[0])
        got, want = got[1:], want[1:]
    jax.tree.map(lambda a, b: _rel_close(a, b, 1e-5), got, want)


def _outputs_by_impl(name, kwargs, shape, outputs):
    x = jnp.asarray(np.random.default_rng(1).normal(size=shape), jnp.float32)
    models = {impl: create_model(name, conv_impl=impl, **kwargs) for impl in ('xla', 'shift')}
    # same variable names and shapes (values: test_layers checks the initialisers are identical)
    assert (jax.tree.map(jnp.shape, _abstract_variables(models['xla'], shape))
            == jax.tree.map(jnp.shape, _abstract_variables(models['shift'], shape)))
    variables = _random_variables(models['xla'], shape)
    return [jax.jit(lambda v, x, m=m: outputs(m, v, x), compiler_options=FAST_COMPILE)(variables, x)
            for m in models.values()]


def test_shift_and_xla_agree_on_mod1_with_resnorm():
    kwargs = dict(tau=1, norm='resnorm', norm_positions=RESNORM_POSITIONS)
    want, got = _outputs_by_impl('bcresnet_mod', kwargs, MOD1_INPUT, _train_step_outputs)
    _assert_same(got, want)


def test_shift_and_xla_agree_on_bcresnet1_forward():
    want, got = _outputs_by_impl('bcresnet', dict(tau=1), BCRES1_INPUT, _forward_outputs)
    _assert_same(got, want)


@pytest.mark.slow
def test_shift_and_xla_agree_on_bcresnet1_gradients():
    want, got = _outputs_by_impl('bcresnet', dict(tau=1), BCRES1_INPUT, _train_step_outputs)
    _assert_same(got, want)


@pytest.mark.parametrize('in_width, width, freq_stride, dilation',
                         [(6, 4, 2, 1), (4, 4, 1, 8), (32, 64, 2, 1)])
def test_shift_and_xla_agree_on_blocks(in_width, width, freq_stride, dilation):
    """Transition block with frequency stride; normal block with dilation 8 on 12 frames; a
    transition to 64 channels, whose 1x1 convolutions take layers.channel_dot."""
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 10, 12, in_width)), jnp.float32)
    blocks = [BCResBlock(width, freq_stride=freq_stride, dilation=dilation, sub_bands=5,
                         dropout=0.5, conv_impl=impl) for impl in ('xla', 'shift')]
    variables = _random_variables(blocks[0], x.shape)
    want, got = [jax.jit(lambda v, x, b=b: _train_step_outputs(b, v, x))(variables, x)
                 for b in blocks]
    _assert_same(got, want)



@pytest.mark.parametrize('remat', ['block', 'dots'])
def test_remat_keeps_variables_and_numbers(remat):
    """model.remat changes what the backward pass stores, not what it computes: same variable
    tree, same logits, statistics and gradients as without it (dropout keys included)."""
    kwargs = dict(tau=1, norm='resnorm', norm_positions=RESNORM_POSITIONS, conv_impl='shift')
    plain, remat_model = (create_model('bcresnet_mod', remat=r, **kwargs) for r in ('none', remat))
    assert (jax.tree.map(jnp.shape, _abstract_variables(plain, MOD1_INPUT))
            == jax.tree.map(jnp.shape, _abstract_variables(remat_model, MOD1_INPUT)))
    x = jnp.asarray(np.random.default_rng(1).normal(size=MOD1_INPUT), jnp.float32)
    variables = _random_variables(plain, MOD1_INPUT)
    want, got = [jax.jit(lambda v, x, m=m: _train_step_outputs(m, v, x),
                         compiler_options=FAST_COMPILE)(variables, x)
                 for m in (plain, remat_model)]
    _assert_same(got, want)


def test_unknown_remat_policy_fails():
    with pytest.raises(ValueError, match='model.remat'):
        _abstract_variables(create_model('bcresnet_mod', tau=1, remat='all'), MOD1_INPUT)

# --- dropout, modes, dtypes ----------------------------------------------------------------------

@pytest.fixture(scope='module')
def mod1():
    """A Mod-1 (xla convs), its random variables and an input; shared to save compilations."""
    model = create_model('bcresnet_mod', tau=1, conv_impl='xla')
    x = jnp.asarray(np.random.default_rng(0).normal(size=MOD1_INPUT), jnp.float32)
    return model, _random_variables(model, MOD1_INPUT), x


def _block_dropout_output(train, rng=None):
    block = BCResBlock(8, dropout=0.5, sub_bands=2, conv_impl='xla')
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 4, 6, 8)), jnp.float32)
    variables = _random_variables(block, x.shape)
    kwargs = {'rngs': {'dropout': rng}} if rng is not None else {}
    _, state = block.apply(variables, x, train=train, capture_intermediates=True,
                           mutable=['intermediates', 'batch_stats'], **kwargs)
    return np.asarray(state['intermediates']['Dropout_0']['__call__'][0])


def test_dropout_drops_whole_channels_in_training():
    y = _block_dropout_output(True, jax.random.key(5))
    assert y.shape == (4, 1, 6, 8)
    dropped = np.all(y == 0, axis=(1, 2))
    kept = np.all(y != 0, axis=(1, 2))
    assert np.all(dropped | kept)  # every (example, channel) is dropped entirely or kept entirely
    assert dropped.any() and kept.any()
    other = _block_dropout_output(True, jax.random.key(6))
    assert not np.array_equal(np.all(other == 0, axis=(1, 2)), dropped)


def test_eval_is_deterministic_and_needs_no_rng():
    np.testing.assert_array_equal(_block_dropout_output(False), _block_dropout_output(False))
    assert np.all(_block_dropout_output(False) != 0)


def test_block_rejects_strided_normal_block():
    with pytest.raises(ValueError):
        jax.eval_shape(lambda: BCResBlock(4, freq_stride=2).init(jax.random.key(0),
                                                                  jnp.zeros((1, 8, 4, 4))))


def test_training_updates_batch_stats_only(mod1):
    model, variables, x = mod1
    train = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=['batch_stats'],
                                             rngs={'dropout': jax.random.key(2)}))
    logits, updates = train(variables, x)
    assert set(updates) == {'batch_stats'} and logits.shape == (MOD1_INPUT[0], 10)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), updates['batch_stats'],
                           variables['batch_stats'])
    assert all(jax.tree.leaves(changed))


def test_bf16_compute_keeps_float32_params_and_stats(mod1):
    _, variables, x = mod1
    kwargs = dict(tau=1, conv_impl='xla', norm='resnorm', norm_positions=('input', 'stage2'))
    bf16 = create_model('bcresnet_mod', dtype=jnp.bfloat16, **kwargs)
    f32 = create_model('bcresnet_mod', **kwargs)
    assert jax.tree.all(jax.tree.map(lambda leaf: leaf.dtype == jnp.float32,
                                     _abstract_variables(bf16, MOD1_INPUT)))

    def run(v, x):
        logits, updates = bf16.apply(v, x, train=True, mutable=['batch_stats'],
                                     rngs={'dropout': jax.random.key(2)})
        return logits, updates, bf16.apply(v, x), f32.apply(v, x)

    logits, updates, bf16_eval, f32_eval = jax.jit(run)(variables, x)
    assert logits.dtype == jnp.float32 and bf16_eval.dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(updates))
    _rel_close(bf16_eval, f32_eval, 0.1)


# --- normalisation placement ---------------------------------------------------------------------

def test_norms_are_parameter_free_and_change_the_output(mod1):
    plain, variables, x = mod1
    normed = create_model('bcresnet_mod', tau=1, conv_impl='xla', norm='resnorm',
                          norm_positions=('input', 'stage1', 'stage4'))
    assert (jax.tree.map(jnp.shape, _abstract_variables(normed, MOD1_INPUT))
            == jax.tree.map(jnp.shape, variables))
    # Pre-FreqIN normalises the input: a per-bin gain (a device response) leaves the output alone
    pre = create_model('bcresnet_mod', tau=1, conv_impl='xla', norm='freqin',
                       norm_positions=('input',))
    gain = 5.0 * jnp.linspace(-1.0, 1.0, MOD1_INPUT[1])[None, :, None, None]
    plain_y, normed_y, pre_y, pre_gain_y = jax.jit(lambda v, x: (
        plain.apply(v, x), normed.apply(v, x), pre.apply(v, x), pre.apply(v, x + gain)))(
        variables, x)
    assert not np.allclose(plain_y, normed_y)
    _rel_close(pre_gain_y, pre_y, 1e-4)


def test_global_freqnorm_variables_live_in_norm_stats(mod1):
    _, variables, x = mod1
    model = create_model('bcresnet_mod', tau=1, conv_impl='xla', norm='global_freqnorm',
                         norm_positions=('input',))
    abstract = _abstract_variables(model, MOD1_INPUT)
    assert jax.tree.map(jnp.shape, abstract['norm_stats']) == {
        'norm_input': {'mean': (32,), 'std': (32,)}}
    mean, std = np.linspace(-1, 1, 32), np.linspace(1, 2, 32)
    filled = with_global_freq_stats({**variables, 'norm_stats': jax.tree.map(
        lambda a: jnp.zeros(a.shape), abstract['norm_stats'])}, mean, std)
    plain = create_model('bcresnet_mod', tau=1, conv_impl='xla')
    standardised = (x - mean[None, :, None, None]) / std[None, :, None, None]
    got, want = jax.jit(lambda v, x: (model.apply(v, x), plain.apply(v, standardised)))(filled, x)
    _rel_close(got, want, 1e-5)


@pytest.mark.parametrize('kwargs', [
    dict(norm='global_freqnorm', norm_positions=('stage1',)),
    dict(norm='resnorm', norm_positions=('stage9',)),
    dict(norm='layernorm', norm_positions=('input',)),
])
def test_bad_norm_config_fails_at_init(kwargs):
    with pytest.raises(ValueError):
        _abstract_variables(create_model('bcresnet_mod', tau=1, **kwargs), MOD1_INPUT)


def test_create_model_rejects_unknown_name():
    with pytest.raises(ValueError, match='bcresnet_mod'):
        create_model('resnet50')
