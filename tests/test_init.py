"""model.init: PyTorch's default initialisation, layer by layer, against torch itself.

For every convolution kernel and bias of BC-ResNet-Mod-1 (init='torch'), the std of ascjax's
initial values is compared with the std of a torch ``nn.Conv2d`` of the same shape initialised by
torch's ``reset_parameters``. Each side draws at least 40,000 values per layer (re-initialising
as often as the layer needs), so the std's standard error is ~0.2% (uniform: sqrt(0.2 / n)),
far inside the 5% tolerance; Flax's own lecun_normal is sqrt(3) wider and must fail it.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from ascjax import models
from experiments.configs import paper

torch = pytest.importorskip('torch')

DRAWS = 40_000
TOLERANCE = 0.05


def _ascjax_stds(init: str) -> dict[str, float]:
    config = paper.get_config('mod1_resnorm')
    config.model.init = init
    model = models.from_config(config.model)
    x = jnp.zeros((1, 32, 16, 1))
    sizes = {k: v.size for k, v in traverse_util.flatten_dict(
        jax.eval_shape(lambda: model.init(jax.random.key(0), x))['params']).items()}
    repeats = math.ceil(DRAWS / min(sizes[k] for k in sizes if k[-1] in ('kernel', 'bias')))
    params = jax.jit(jax.vmap(lambda k: model.init(k, x)['params']))(
        jax.random.split(jax.random.key(0), repeats))
    return {'/'.join(k): float(np.std(np.asarray(v)))
            for k, v in traverse_util.flatten_dict(params).items()
            if k[-1] in ('kernel', 'bias')}, traverse_util.flatten_dict(params)


def _torch_std(kernel_shape, leaf: str) -> float:
    """std of a torch Conv2d weight (or bias) with this Flax kernel's (kh, kw, in/groups, out)."""
    kh, kw, fan_in_channels, out = kernel_shape
    conv = torch.nn.Conv2d(fan_in_channels, out, (kh, kw), bias=leaf == 'bias')
    tensor = conv.weight if leaf == 'kernel' else conv.bias
    values = []
    with torch.no_grad():
        while sum(v.size for v in values) < DRAWS:
            conv.reset_parameters()
            values.append(tensor.detach().numpy().ravel().copy())
    return float(np.std(np.concatenate(values)))


def _ratios(init: str) -> dict[str, float]:
    stds, flat = _ascjax_stds(init)
    out = {}
    for path, std in stds.items():
        *module, leaf = path.split('/')
        kernel = flat.get((*module, 'kernel'))
        if kernel is not None:     # convolutions only: BN/SSN biases are zeros in both
            out[path] = std / _torch_std(kernel.shape[1:], leaf)
    return out


def test_torch_init_matches_torch_layer_by_layer():
    torch.manual_seed(0)
    ratios = _ratios('torch')
    # head, 9 blocks x (frequency dw, temporal dw, 1x1) + 4 transition 1x1s, classifier + bias
    assert len(ratios) == 34
    bad = {k: r for k, r in ratios.items() if abs(r - 1) > TOLERANCE}
    assert not bad, bad


def test_flax_init_is_sqrt3_wider_and_fails_the_same_check():
    torch.manual_seed(0)
    ratios = _ratios('flax')
    kernels = [r for k, r in ratios.items() if k.endswith('kernel')]
    # lecun_normal is truncated at 2 std and rescaled, so its std is 1/sqrt(fan_in) exactly.
    np.testing.assert_allclose(kernels, math.sqrt(3), rtol=TOLERANCE)
    assert ratios['classifier_conv/bias'] == 0.0     # Flax: zero biases
