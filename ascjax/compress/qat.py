"""8-bit quantisation-aware training with qwix (the maintained successor of AQT).

    model = qat.model_from_config(config)   # the float model, or its QAT twin when config.qat.enabled

qwix's `OdmlQatProvider` (the provider whose numerics match LiteRT/TFLite int8) rewrites the model's
operations while it is traced: every convolution / einsum / dot weight is fake-quantised to int8,
symmetric, one scale per output channel (absmax / 127.5, straight-through gradients), and, with
`act_qtype`, every activation tensor but those kept in float (below) gets a static int8 range kept
in a `quant_stats` collection (moving averages of min/max, updated by training forward passes
like `batch_stats`). The QAT model has the float model's `params` tree, so a float run's variables
(`train.init_from`, pruned or not) start a QAT fine-tune directly, and the pruning masks keep
working in the optimizer state.

Depthwise convolutions: under conv_impl 'shift' qwix sees one multiply per kernel tap and would
quantise each tap with its own per-tensor scale; under 'einsum' (same variables, same numbers) it
sees the whole (taps, C) kernel of one einsum and quantises it per output channel. So the QAT model
uses 'einsum' where the float model says 'shift' or 'auto' ('xla' is exact too, but slow on CPU).

Activations kept in float32 (`float_modules`, and the top level's average pool and output): the
normalisations (ResNorm, FreqIN, RFN: `norm_*`) and the classifier that makes the logits.
- An instance norm over int8 input amplifies one-step rounding differences: a frequency bin that is
  constant but for one quantisation step (the log floor of a band-limited device) has a variance
  of ~scale^2/T, so that one step comes out as ~sqrt(T) standard deviations. Two int8 runtimes
  that round one value differently then disagree by several units at the norm's output. With the
  norms in float, the compressed Mod-8's JAX and LiteRT logits differ 3x less.
- Int8 logits tie: on a 256-step grid the top two classes share a value on >10% of the full
  preset's test clips, which leaves the predicted class to the tie-break. LiteRT's converter
  cannot give an int8 1x1 convolution a float output, so the classifier computes in float on its
  int8 kernel.
Weights stay int8 everywhere; BN/SSN statistics and affine parameters stay float32, as the DCASE
rule allows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from ascjax import models

QTYPES = {'int8': jnp.int8, '': None}
FLOAT_MODULES = r'norm_.*|classifier_conv|classifier_out'
FLOAT_TOP_LEVEL_OPS = ('mean', 'final_output')   # the global average pool and the logits


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({
        'enabled': False,
        'weight_qtype': 'int8',      # per output channel, symmetric
        'act_qtype': 'int8',         # static per-tensor ranges; '' keeps activations in float
        # modules (path regex) whose activations stay float32; '' quantises them too
        'float_modules': FLOAT_MODULES,
    })


def rules(cfg) -> list:
    """qwix's rules, first match wins: float activations for `cfg.float_modules` and the top
    level's pool and output, then int8 weights and activations everywhere."""
    import qwix
    for field in ('weight_qtype', 'act_qtype'):
        if cfg[field] not in QTYPES:
            raise ValueError(f'--config.qat.{field}={cfg[field]!r}: expected one of '
                             f'{sorted(QTYPES)}')
    weights = QTYPES[cfg.weight_qtype]
    keep_float = [qwix.QuantizationRule(module_path='', op_names=FLOAT_TOP_LEVEL_OPS,
                                        weight_qtype=weights)]
    float_modules = cfg.get('float_modules', FLOAT_MODULES)   # runs saved before the field
    if float_modules:
        keep_float.append(qwix.QuantizationRule(module_path=float_modules, weight_qtype=weights))
    return keep_float + [qwix.QuantizationRule(module_path='.*', weight_qtype=weights,
                                               act_qtype=QTYPES[cfg.act_qtype])]


def provider(cfg):
    import qwix
    return qwix.OdmlQatProvider(rules(cfg))


def _einsum_depthwise(model: nn.Module) -> nn.Module:
    if models.resolve_conv_impl(getattr(model, 'conv_impl', 'xla')) == 'shift':
        return model.clone(conv_impl='einsum')
    return model


def quantize(model: nn.Module, cfg) -> nn.Module:
    """The QAT twin of `model` (same params tree, plus a `quant_stats` collection)."""
    import qwix
    return qwix.quantize_model(_einsum_depthwise(model), provider(cfg))


def conversion_model(model: nn.Module, cfg, variables) -> nn.Module:
    """The QAT twin of `model` frozen for export (qwix's `OdmlConversionProvider`): the same
    numbers, with every fake-quantisation a `quant.fake_quant` composite whose scales are constants
    (weights: their per-channel scales; activations: the ranges in variables['quant_stats'])."""
    import qwix
    return qwix.quantize_model(_einsum_depthwise(model), qwix.OdmlConversionProvider(
        rules(cfg), variables['params'], variables['quant_stats']))


def calibrate(qat_model: nn.Module, variables, batches) -> dict:
    """Activation ranges (`quant_stats`) of `qat_model` from forward passes in inference mode over
    `batches` (arrays [B, F, T, 1]): qwix's moving averages, as QAT keeps them, with no training."""
    variables = {k: v for k, v in variables.items() if k != 'quant_stats'}
    stats = qat_model.init(jax.random.PRNGKey(0), jnp.asarray(batches[0]),
                           train=False)['quant_stats']
    update = jax.jit(lambda stats, x: qat_model.apply(
        {**variables, 'quant_stats': stats}, x, train=False, mutable=['quant_stats'])[1])
    for x in batches:
        stats = update(stats, jnp.asarray(x))['quant_stats']
    return stats


def model_from_config(config) -> nn.Module:
    """config.model's network; quantisation-aware when config.qat.enabled."""
    model = models.from_config(config.model)
    qat = config.get('qat')
    return quantize(model, qat) if qat is not None and qat.enabled else model
