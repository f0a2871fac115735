"""Models of ascjax: BC-ResNet (official KWS layout) and BC-ResNet-Mod (QTI DCASE2021 T1A).

The training loop knows models only through ``create_model(name, **fields)``.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from ascjax.models.bcresnet import BCResBlock, BCResNet, BCResNetMod, BCResStage
from ascjax.models.layers import (CONV_IMPLS, INITS, MatmulConv, PatchConv, ShiftDepthwiseConv,
                                  SubSpectralNorm, batch_norm, dense_conv, depthwise_conv,
                                  pointwise_conv, resolve_conv_impl)
from ascjax.models.norms import (NORMS, POSITIONS, RESNORM_POSITIONS, FeatureNorm,
                                 global_freq_stats, with_global_freq_stats)

MODELS = {'bcresnet': BCResNet, 'bcresnet_mod': BCResNetMod}


def create_model(name: str, **kwargs) -> nn.Module:
    """Builds the model registered as ``name`` with the given module fields (tau, norm, ...)."""
    if name not in MODELS:
        raise ValueError(f'unknown model {name!r}; choose from {sorted(MODELS)}')
    return MODELS[name](**kwargs)


def from_config(model_config) -> nn.Module:
    """``create_model`` from a config section ``{'name': ..., **fields}`` (lists become tuples,
    as configs read back from JSON hold lists)."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(model_config).items()}
    if 'init' in fields:    # Module.init is Flax's method, so the field is named weight_init
        fields['weight_init'] = fields.pop('init')
    if isinstance(fields.get('dtype'), str):     # 'float32' | 'bfloat16': the compute dtype
        fields['dtype'] = jnp.dtype(fields['dtype'])
    return create_model(fields.pop('name'), **fields)


__all__ = [
    'BCResBlock', 'BCResNet', 'BCResNetMod', 'BCResStage', 'CONV_IMPLS', 'FeatureNorm', 'INITS',
    'MODELS',
    'MatmulConv', 'NORMS', 'POSITIONS', 'PatchConv', 'RESNORM_POSITIONS', 'ShiftDepthwiseConv',
    'SubSpectralNorm', 'batch_norm', 'create_model', 'dense_conv', 'from_config', 'depthwise_conv',
    'global_freq_stats',
    'pointwise_conv', 'resolve_conv_impl', 'with_global_freq_stats',
]
