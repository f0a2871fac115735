"""Parity with PyTorch: converted checkpoints give the torch logits and input gradients.

The torch models (ascjax/torch_reference/model.py) carry the official key scheme, random weights and
random BN/SSN affine and running statistics, so a wrong layout or a swapped channel / sub-band
shows up in the logits. Everything runs in eval mode and float32.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ascjax.models import convert, create_model

torch = pytest.importorskip('torch')
from ascjax.torch_reference import model as ref  # noqa: E402  (needs torch)

torch.set_num_threads(2)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESNORM = dict(norm='resnorm', norm_positions=ref.NORM_POSITIONS, norm_lambda=0.1)
LOGIT_ATOL = 1e-4
GRAD_RTOL = 1e-3
GRAD_TRIM = 0.02  # share of (example, frame) slices left out of the trimmed gradient error


def _torch_model(name, tau, num_classes, sub_bands, norm=None, norm_positions=(),
                 norm_lambda=0.1, classifier_bn=False, seed=0):
    del norm  # the torch reference only knows ResNorm
    if name == 'bcresnet':
        model = ref.BCResNets(int(8 * tau), num_classes, sub_bands, norm_positions, norm_lambda)
    else:
        model = ref.BCResNetMod(int(10 * tau), num_classes, sub_bands, classifier_bn,
                                norm_positions, norm_lambda)
    return ref.randomize_(model, seed)


def _inputs(shape, num_classes, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen), torch.randint(num_classes, (shape[0],), generator=gen)


def _nhwc(x):
    return jnp.asarray(x.numpy().transpose(0, 2, 3, 1))


def _torch_input_grad(model, x, labels):
    x = x.clone().requires_grad_(True)
    logits = model(x)
    torch.log_softmax(logits, dim=-1)[torch.arange(len(labels)), labels].sum().backward()
    return x.grad.numpy().transpose(0, 2, 3, 1)  # NCHW -> NHWC


def _flax_logits_grad_and_sown(model, variables, x, labels):
    """Logits, the input gradient of the loss, and the intermediates of that same computation."""
    def loss(x):
        logits, state = model.apply(variables, x, mutable=['intermediates'])
        picked = jax.nn.log_softmax(logits)[jnp.arange(len(labels)), labels]
        return jnp.sum(picked), (logits, state['intermediates'])

    (_, (logits, sown)), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(_nhwc(x))
    return np.asarray(logits), np.asarray(grad), sown


def _pool_routes(sown):
    """Where each 2x2 max-pool window of BC-ResNet-Mod took its value, as torch flat indices.

    Max-pool's gradient jumps when two values of a window swap order: a float32 near-tie (about
    one window in a million at 256x431, gap ~1e-8) can be decided differently by torch and XLA,
    which moves that window's gradient (measured: 1e-2 of the input-gradient norm). Routing torch
    like Flax keeps the gradient comparison meaningful; logits are checked with torch's own pool.
    """
    routes = {}
    for idx in ref.BCResNetMod.pooled_stages:
        a = np.asarray(sown[f'stage{idx + 1}_out'][0])  # the pool input, NHWC
        n, f, t, c = a.shape
        windows = a[:, :f // 2 * 2, :t // 2 * 2].reshape(n, f // 2, 2, t // 2, 2, c)
        windows = windows.transpose(0, 5, 1, 3, 2, 4).reshape(n, c, f // 2, t // 2, 4)
        di, dj = np.divmod(windows.argmax(-1), 2)
        rows = 2 * np.arange(f // 2)[:, None] + di
        cols = 2 * np.arange(t // 2)[None, :] + dj
        routes[idx] = torch.from_numpy(rows * t + cols)
    return routes


def _grad_errors(grad, want):
    """Relative input-gradient error (norm of difference / norm): in full, and without the worst
    ``GRAD_TRIM`` of (example, time frame) slices.

    ReLU makes the gradient jump where a pre-activation lies within float32 rounding of 0; torch
    and XLA round differently, so a few such kinks flip. That is float32 noise, not a conversion
    error: on Mod-8 with ResNorm at 256x431, torch's own float32 and float64 gradients differ by
    up to ~1.4e-3 of the norm depending on the seed. A flip changes the gradient near a few time
    frames, while a wrong layer would change it everywhere, hence the trimmed error.
    """
    per_slice = np.square(grad - want).sum(axis=(1, 3)).ravel()  # NHWC: per (example, frame)
    kept = np.sort(per_slice)[:len(per_slice) - int(GRAD_TRIM * len(per_slice))]
    norm = np.linalg.norm(want)
    return np.sqrt(per_slice.sum()) / norm, np.sqrt(kept.sum()) / norm


CASES = {  # name: (model, fields, conv_impl, input shape NCHW)
    'bcresnet1-s5-xla': ('bcresnet', dict(tau=1, num_classes=12, sub_bands=5), 'xla',
                         (2, 1, 40, 101)),
    'bcresnet1-s5-shift': ('bcresnet', dict(tau=1, num_classes=12, sub_bands=5), 'shift',
                           (2, 1, 40, 101)),
    'bcresnet8-s5-shift': ('bcresnet', dict(tau=8, num_classes=12, sub_bands=5), 'shift',
                           (2, 1, 40, 101)),
    'bcresnet1-s4-resnorm-shift': ('bcresnet', dict(tau=1, num_classes=10, sub_bands=4,
                                                    **RESNORM), 'shift', (2, 1, 64, 50)),
    'mod8-s4-resnorm-shift': ('bcresnet_mod', dict(tau=8, num_classes=10, sub_bands=4,
                                                   **RESNORM), 'shift', (2, 1, 256, 431)),
    'mod1-s4-classifier_bn-shift': ('bcresnet_mod', dict(tau=1, num_classes=10, sub_bands=4,
                                                         classifier_bn=True), 'shift',
                                    (2, 1, 128, 100)),
}


@pytest.mark.parametrize('case', list(CASES))
def test_logits_and_input_gradients_match_torch(case):
    name, fields, conv_impl, shape = CASES[case]
    torch_model = _torch_model(name, **fields)
    x, labels = _inputs(shape, fields['num_classes'])
    with torch.no_grad():
        want_logits = torch_model(x).numpy()

    variables = convert.torch_to_flax(torch_model.state_dict(), name, **fields)
    model = create_model(name, conv_impl=conv_impl, **fields)
    logits, grad, sown = _flax_logits_grad_and_sown(model, variables, x, labels.numpy())
    np.testing.assert_allclose(logits, want_logits, rtol=0, atol=LOGIT_ATOL)

    if name == 'bcresnet_mod':
        torch_model.pool_routes = _pool_routes(sown)
    full, trimmed = _grad_errors(grad, _torch_input_grad(torch_model, x, labels))
    assert trimmed <= GRAD_RTOL and full <= 10 * GRAD_RTOL, (full, trimmed)


def test_every_variable_is_filled_once_from_every_torch_tensor():
    fields = dict(tau=1, num_classes=10, sub_bands=4, classifier_bn=True)
    state_dict = _torch_model('bcresnet_mod', **fields).state_dict()
    variables = convert.torch_to_flax(state_dict, 'bcresnet_mod', **fields)
    expected = convert.expected_variables('bcresnet_mod', **fields)
    assert (jax.tree.map(lambda a: (a.shape, a.dtype), variables)
            == jax.tree.map(lambda a: (a.shape, a.dtype), expected))
    tensors = {k: v for k, v in state_dict.items() if not k.endswith('num_batches_tracked')}
    assert convert.count(variables) == sum(v.numel() for v in tensors.values())


def test_sub_spectral_norm_layout_matters():
    """A converter reading SSN as (S, C) row-major instead of c*S + s would fail parity."""
    fields = dict(tau=1, num_classes=12, sub_bands=5)
    torch_model = _torch_model('bcresnet', **fields)
    x, _ = _inputs((2, 1, 40, 101), 12)
    with torch.no_grad():
        want = torch_model(x).numpy()
    variables = convert.torch_to_flax(torch_model.state_dict(), 'bcresnet', **fields)
    ssn = variables['batch_stats']['stage1']['block1']['freq_ssn']['bn']
    ssn['mean'] = ssn['mean'].T.reshape(ssn['mean'].shape)  # the wrong flat order
    logits = jax.jit(create_model('bcresnet', **fields).apply)(variables, _nhwc(x))
    assert np.max(np.abs(np.asarray(logits) - want)) > 100 * LOGIT_ATOL


def test_mismatched_state_dict_names_every_bad_key():
    fields = dict(tau=1, num_classes=12, sub_bands=5)
    state_dict = dict(_torch_model('bcresnet', **fields).state_dict())
    del state_dict['BCBlocks.2.0.f2.1.block.1.ssnorm.running_var']
    state_dict['classifier.9.weight'] = torch.zeros(1)
    state_dict['cnn_head.0.weight'] = torch.zeros(16, 1, 3, 3)
    with pytest.raises(convert.CheckpointMismatchError) as error:
        convert.torch_to_flax(state_dict, 'bcresnet', **fields)
    message = str(error.value)
    assert 'BCBlocks.2.0.f2.1.block.1.ssnorm.running_var' in message
    assert 'classifier.9.weight' in message
    assert 'cnn_head.0.weight: got (16, 1, 3, 3), expected (16, 1, 5, 5)' in message


def test_wrong_model_fields_are_reported_as_shape_mismatches():
    state_dict = _torch_model('bcresnet', tau=1, num_classes=12, sub_bands=5).state_dict()
    with pytest.raises(convert.CheckpointMismatchError, match='ssnorm.weight: got'):
        convert.torch_to_flax(state_dict, 'bcresnet', tau=1, num_classes=12, sub_bands=4)


def test_command_line_tool_round_trip(tmp_path):
    import flax

    fields = dict(tau=1, num_classes=10, sub_bands=4, classifier_bn=True)
    torch_model = _torch_model('bcresnet_mod', **fields)
    # A training checkpoint: wrapped, with nn.DataParallel's 'module.' prefix.
    wrapped = {'epoch': 3, 'state_dict': {f'module.{k}': v
                                          for k, v in torch_model.state_dict().items()}}
    torch.save(wrapped, tmp_path / 'model.pt')
    out = tmp_path / 'model.msgpack'
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'convert_torch_checkpoint.py'),
         f'--state_dict={tmp_path / "model.pt"}', '--model=bcresnet_mod', '--tau=1',
         '--num_classes=10', '--sub_bands=4', '--classifier_bn', f'--out={out}'],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '8,075 params' in result.stdout

    model = create_model('bcresnet_mod', **fields)
    target = convert.expected_variables('bcresnet_mod', **fields)
    variables = flax.serialization.from_bytes(target, out.read_bytes())
    x, _ = _inputs((2, 1, 64, 40), 10)
    with torch.no_grad():
        want = torch_model(x).numpy()
    logits = jax.jit(model.apply)(variables, _nhwc(x))
    np.testing.assert_allclose(np.asarray(logits), want, rtol=0, atol=LOGIT_ATOL)
    assert (jax.tree.structure(convert.load_flax_variables(str(out)))
            == jax.tree.structure(variables))
