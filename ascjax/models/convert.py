"""PyTorch -> Flax conversion of BC-ResNet and BC-ResNet-Mod checkpoints.

The PyTorch key scheme is the official one (Qualcomm-AI-research/bcresnet, REFERENCE §1), which
BC-ResNet-Mod extends with the same blocks (REFERENCE §2.2):

    cnn_head.0 / cnn_head.1                      head 5x5 conv / BN
    BCBlocks.{stage}.{block}.f2.0.block.{0,1}     1x1 conv / BN          (transition blocks only)
    BCBlocks.{stage}.{block}.f2.{t}.block.0       frequency depthwise 3x1 conv
    BCBlocks.{stage}.{block}.f2.{t}.block.1.ssnorm  SubSpectralNorm's BatchNorm2d(C * S)
    BCBlocks.{stage}.{block}.f1.0.block.{0,1}     temporal depthwise 1x3 conv / BN
    BCBlocks.{stage}.{block}.f1.1                 1x1 conv
    bcresnet:     classifier.0 depthwise 5x5, .1 1x1 conv, .2 BN, .5 1x1 conv with bias
    bcresnet_mod: classifier.0 1x1 conv with bias, .1 BN (only with classifier_bn)

with t = 1 in transition blocks and 0 otherwise, stages and blocks counted from 0.

Layouts: a torch conv weight (out, in/groups, kh, kw) is a Flax kernel (kh, kw, in/groups, out);
both put frequency first, so no spatial flip or swap is needed. SubSpectralNorm keeps its
statistics flat at index c*S + s in torch and as (S, C) in Flax. ``num_batches_tracked`` has no
Flax counterpart and is ignored. Global FreqNorm's ``norm_stats`` are not part of any torch
checkpoint: set them afterwards with ``with_global_freq_stats``.

The expected Flax tree comes from ``jax.eval_shape`` of the model itself, so a converted checkpoint
fills every variable of that exact model exactly once, or the conversion fails naming every
missing, unexpected and misshapen key at once.

This module never imports torch at import time; ``load_torch_state_dict`` imports it when called.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from flax import serialization, traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from ascjax.models import create_model

COLLECTIONS = ('params', 'batch_stats')
IGNORED_TORCH_LEAVES = ('num_batches_tracked',)

# Flax leaf name -> torch leaf name (conv: kernel/bias; BN and SSN: scale/bias/mean/var).
_TORCH_LEAF = {'kernel': 'weight', 'bias': 'bias', 'scale': 'weight', 'mean': 'running_mean',
               'var': 'running_var'}

# Module path inside a Flax block -> torch module inside BCBlocks.{stage}.{block}; {t} is 1 in a
# transition block (its f2 starts with the 1x1 ConvBNReLU) and 0 otherwise.
_BLOCK_MODULES = {
    'transition_conv': 'f2.0.block.0',
    'transition_bn': 'f2.0.block.1',
    'freq_dw': 'f2.{t}.block.0',
    'freq_ssn/bn': 'f2.{t}.block.1.ssnorm',
    'temporal_dw': 'f1.0.block.0',
    'temporal_bn': 'f1.0.block.1',
    'pointwise': 'f1.1',
}

# Top-level Flax module -> torch module, per model.
_TOP_MODULES = {
    'bcresnet': {'head_conv': 'cnn_head.0', 'head_bn': 'cnn_head.1',
                 'classifier_dw': 'classifier.0', 'classifier_pw': 'classifier.1',
                 'classifier_bn': 'classifier.2', 'classifier_out': 'classifier.5'},
    'bcresnet_mod': {'head_conv': 'cnn_head.0', 'head_bn': 'cnn_head.1',
                     'classifier_conv': 'classifier.0', 'classifier_bn': 'classifier.1'},
}


class CheckpointMismatchError(ValueError):
    """The torch state_dict does not fit the Flax model: keys missing, unexpected or misshapen."""


def torch_to_flax(state_dict: Mapping[str, Any], model: str, **model_fields) -> dict:
    """Converts a PyTorch state_dict to ``{'params': ..., 'batch_stats': ...}`` for ``model``.

    ``state_dict`` maps the official key names to numpy arrays or torch tensors; ``model`` and
    ``model_fields`` are what ``create_model`` takes (tau, num_classes, sub_bands, classifier_bn,
    ...). Raises ``CheckpointMismatchError`` listing every missing, unexpected or misshapen key.
    """
    if model not in _TOP_MODULES:
        raise ValueError(f'no torch key scheme for model {model!r}; choose from '
                         f'{sorted(_TOP_MODULES)}')
    plan = _plan(model, **model_fields)
    tensors = {key: value for key, value in state_dict.items()
               if key.rsplit('.', 1)[-1] not in IGNORED_TORCH_LEAVES}
    _check_keys_and_shapes(tensors, plan, f'{model} {model_fields}')

    flat = {}
    for torch_key, (flax_key, shape) in plan.items():
        value = _to_numpy(tensors[torch_key])
        flat[flax_key] = _to_flax_layout(flax_key, value, shape)
    variables = traverse_util.unflatten_dict(flat)
    return {collection: variables.get(collection, {}) for collection in COLLECTIONS}


def flax_to_torch(variables: Mapping[str, Any], model: str, **model_fields) -> dict:
    """The inverse of ``torch_to_flax``: ``{'params', 'batch_stats'}`` (or any tree of the same
    layout, e.g. momentum buffers under 'params') -> torch key -> numpy array."""
    plan = _plan(model, **model_fields)
    flat = traverse_util.flatten_dict({k: v for k, v in variables.items() if k in COLLECTIONS})
    out = {}
    for torch_key, (flax_key, shape) in plan.items():
        if flax_key in flat:
            out[torch_key] = _to_torch_layout(flax_key, np.asarray(flat[flax_key]))
    return out


def expected_variables(model: str, **model_fields) -> dict:
    """The model's ``params`` and ``batch_stats`` as ``ShapeDtypeStruct``s (nothing is computed)."""
    module = create_model(model, **model_fields)
    probe = jnp.zeros(_probe_shape(model, module), jnp.float32)
    variables = jax.eval_shape(lambda: module.init(jax.random.key(0), probe, train=False))
    return {collection: variables.get(collection, {}) for collection in COLLECTIONS}


def _probe_shape(model: str, module) -> tuple[int, int, int, int]:
    """A small input on which every SubSpectralNorm divides its frequency axis.

    Variable shapes do not depend on the input size; only its divisibility matters.
    """
    bands = module.sub_bands
    if model == 'bcresnet':
        # Frequency is halved three times (head, stages 2 and 3) and the classifier's 5x5
        # depthwise conv has no frequency padding, so F/8 must be >= 5 and divisible by S.
        return 1, 8 * bands * math.ceil(5 / bands), 8, 1
    (head_f, head_t), (pool_f, pool_t) = module.head_stride, module.pool
    return 1, head_f * pool_f ** 2 * bands, head_t * pool_t ** 2, 1


def _plan(model: str, **model_fields) -> dict[str, tuple[tuple[str, ...], tuple]]:
    """``_conversion_plan`` of the model, computed once per (model, fields): tracing the model
    costs far more than converting its few arrays (the parity tests convert every step)."""
    frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                          for k, v in model_fields.items()))
    try:
        return _cached_plan(model, frozen)
    except TypeError:   # an unhashable field value: plan it without the cache
        return _conversion_plan(model, expected_variables(model, **model_fields))


@functools.lru_cache(maxsize=32)
def _cached_plan(model: str, frozen_fields: tuple) -> dict:
    return _conversion_plan(model, expected_variables(model, **dict(frozen_fields)))


def _conversion_plan(model: str, expected: dict) -> dict[str, tuple[tuple[str, ...], tuple]]:
    """Torch key -> (flattened Flax key, Flax shape), one entry per Flax variable."""
    plan = {}
    for collection in COLLECTIONS:
        for path, leaf in traverse_util.flatten_dict(expected[collection]).items():
            torch_key = f'{_torch_module(model, path[:-1], expected["params"])}.{_torch_leaf(path)}'
            if torch_key in plan:
                raise AssertionError(f'{torch_key} would fill both {plan[torch_key][0]} and '
                                     f'{(collection, *path)}')
            plan[torch_key] = ((collection, *path), tuple(leaf.shape))
    return plan


def _torch_leaf(path: tuple[str, ...]) -> str:
    if path[-1] not in _TORCH_LEAF:
        raise ValueError(f'Flax variable {"/".join(path)} has no known torch counterpart')
    return _TORCH_LEAF[path[-1]]


def _torch_module(model: str, module_path: tuple[str, ...], params: Mapping) -> str:
    """Torch module name of the Flax module at ``module_path``."""
    name = '/'.join(module_path)
    if module_path[0].startswith('stage') and len(module_path) >= 3:
        stage, block, layer = module_path[0], module_path[1], '/'.join(module_path[2:])
        if layer in _BLOCK_MODULES and block.startswith('block'):
            transition = 'transition_conv' in params[stage][block]
            suffix = _BLOCK_MODULES[layer].format(t=int(transition))
            return (f'BCBlocks.{int(stage.removeprefix("stage")) - 1}.'
                    f'{int(block.removeprefix("block")) - 1}.{suffix}')
    elif name in _TOP_MODULES[model]:
        return _TOP_MODULES[model][name]
    raise ValueError(f'Flax module {name} of {model} has no known torch counterpart')


def _torch_shape(flax_key: tuple[str, ...], shape: tuple) -> tuple:
    """The shape the torch tensor for ``flax_key`` must have."""
    if flax_key[-1] == 'kernel':
        kh, kw, fan_in, out = shape
        return out, fan_in, kh, kw
    if _is_sub_spectral(flax_key):
        return (math.prod(shape),)
    return shape


def _to_flax_layout(flax_key: tuple[str, ...], value: np.ndarray, shape: tuple) -> np.ndarray:
    if flax_key[-1] == 'kernel':
        value = value.transpose(2, 3, 1, 0)
    elif _is_sub_spectral(flax_key):
        bands, channels = shape
        value = value.reshape(channels, bands).T  # flat index c*S + s -> [s, c]
    assert value.shape == shape, (flax_key, value.shape, shape)
    # A copy: `tensor.numpy()` shares the torch tensor's memory, and JAX may keep using a numpy
    # buffer without copying it on CPU, so a view would change as torch goes on training.
    return np.array(value, dtype=np.float32, order='C')


def _to_torch_layout(flax_key: tuple[str, ...], value: np.ndarray) -> np.ndarray:
    if flax_key[-1] == 'kernel':
        value = value.transpose(3, 2, 0, 1)
    elif _is_sub_spectral(flax_key):
        value = value.T.reshape(-1)  # [s, c] -> flat index c*S + s
    return np.array(value, dtype=np.float32, order='C')  # a copy, never a view of JAX's buffer


def _is_sub_spectral(flax_key: tuple[str, ...]) -> bool:
    return 'freq_ssn' in flax_key


def _check_keys_and_shapes(tensors: Mapping[str, Any], plan: Mapping, target: str) -> None:
    missing = sorted(set(plan) - set(tensors))
    unexpected = sorted(set(tensors) - set(plan))
    misshapen = []
    for key in sorted(set(plan) & set(tensors)):
        want = _torch_shape(*plan[key])
        got = tuple(np.shape(tensors[key]))
        if got != want:
            misshapen.append(f'{key}: got {got}, expected {want}')
    problems = [f'{title} ({len(keys)}): ' + ', '.join(keys)
                for title, keys in (('missing keys', missing), ('unexpected keys', unexpected),
                                    ('shape mismatches', misshapen)) if keys]
    if problems:
        raise CheckpointMismatchError(f'torch state_dict does not fit the Flax model {target}; '
                                      + '; '.join(problems))


def _to_numpy(value: Any) -> np.ndarray:
    """A torch tensor (any float dtype, any device) or array-like as a numpy array."""
    if hasattr(value, 'detach'):  # torch.Tensor, without importing torch
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()  # numpy has no bfloat16
        return value.numpy()
    return np.asarray(value)


# --- files -----------------------------------------------------------------------------------

def unwrap_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The state_dict inside a training checkpoint.

    Accepts a bare state_dict, or one wrapped under 'state_dict' or 'model' (possibly nested), and
    drops the 'module.' prefix that ``nn.DataParallel`` adds to every key.
    """
    while True:
        inner = next((checkpoint[key] for key in ('state_dict', 'model')
                      if isinstance(checkpoint.get(key), Mapping)), None)
        if inner is None:
            break
        checkpoint = inner
    if checkpoint and all(key.startswith('module.') for key in checkpoint):
        checkpoint = {key.removeprefix('module.'): value for key, value in checkpoint.items()}
    return dict(checkpoint)


def load_torch_state_dict(path: str) -> dict[str, np.ndarray]:
    """Reads a PyTorch checkpoint on the CPU without running pickled code (``weights_only``)."""
    import torch  # only here: the rest of this module works on numpy arrays
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{path} holds a {type(checkpoint).__name__}, not a state_dict')
    return {key: _to_numpy(value) for key, value in unwrap_state_dict(checkpoint).items()}


def convert_checkpoint(state_dict_path: str, out_path: str, model: str, **model_fields) -> dict:
    """Converts the torch checkpoint at ``state_dict_path`` and writes the Flax variables to
    ``out_path`` as ``serialization.to_bytes({'params', 'batch_stats'})``; returns them."""
    variables = torch_to_flax(load_torch_state_dict(state_dict_path), model, **model_fields)
    with open(out_path, 'wb') as f:
        f.write(serialization.to_bytes(variables))
    return variables


def load_flax_variables(path: str) -> dict:
    """Reads what ``convert_checkpoint`` wrote, as nested dicts of numpy arrays."""
    with open(path, 'rb') as f:
        return serialization.msgpack_restore(f.read())


def count(tree) -> int:
    """Number of scalars in a pytree of arrays."""
    return sum(int(np.size(leaf)) for leaf in jax.tree.leaves(tree))
