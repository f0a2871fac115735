"""8-bit quantisation-aware training with qwix (the maintained successor of AQT).

    model = qat.model_from_config(config)   # the float model, or its QAT twin when config.qat.enabled

qwix's `OdmlQatProvider` (the provider whose numerics match LiteRT/TFLite int8) rewrites the model's
operations while it is traced: every convolution / einsum / dot weight is fake-quantised to int8,
symmetric, one scale per output channel (absmax / 127.5, straight-through gradients), and, with
`act_qtype`, every activation tensor gets a static int8 range kept in a `quant_stats` collection
(moving averages of min/max, updated by training forward passes like `batch_stats`). The QAT model
has the float model's `params` tree, so a float run's variables (`train.init_from`, pruned or not)
start a QAT fine-tune directly, and the pruning masks keep working in the optimizer state.

Depthwise convolutions: under conv_impl 'shift' qwix sees one multiply per kernel tap and would
quantise each tap with its own per-tensor scale; under 'einsum' (same variables, same numbers) it
sees the whole (taps, C) kernel of one einsum and quantises it per output channel. So the QAT model
uses 'einsum' where the float model says 'shift' or 'auto' ('xla' is exact too, but slow on CPU).
Nothing of BC-ResNet-Mod is left in float by qwix: BN/SSN statistics and affine parameters stay
float32, as the DCASE rule allows (TFLite's converter folds plain BN into the convolution at export).
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from ascjax import models

QTYPES = {'int8': jnp.int8, '': None}


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({
        'enabled': False,
        'weight_qtype': 'int8',      # per output channel, symmetric
        'act_qtype': 'int8',         # static per-tensor ranges; '' keeps activations in float
    })


def provider(cfg):
    import qwix
    for field in ('weight_qtype', 'act_qtype'):
        if cfg[field] not in QTYPES:
            raise ValueError(f'--config.qat.{field}={cfg[field]!r}: expected one of '
                             f'{sorted(QTYPES)}')
    rule = qwix.QuantizationRule(module_path='.*', weight_qtype=QTYPES[cfg.weight_qtype],
                                 act_qtype=QTYPES[cfg.act_qtype])
    return qwix.OdmlQatProvider([rule])


def quantize(model: nn.Module, cfg) -> nn.Module:
    """The QAT twin of `model` (same params tree, plus a `quant_stats` collection)."""
    import qwix
    if models.resolve_conv_impl(getattr(model, 'conv_impl', 'xla')) == 'shift':
        model = model.clone(conv_impl='einsum')
    return qwix.quantize_model(model, provider(cfg))


def model_from_config(config) -> nn.Module:
    """config.model's network; quantisation-aware when config.qat.enabled."""
    model = models.from_config(config.model)
    qat = config.get('qat')
    return quantize(model, qat) if qat is not None and qat.enabled else model
