"""8-bit quantisation-aware training with qwix (the maintained successor of AQT).

    model = qat.model_from_config(config)   # the float model, or its QAT twin when config.qat.enabled

qwix's `OdmlQatProvider` (the provider whose numerics match LiteRT/TFLite int8) rewrites the model's
operations while it is traced: every convolution / einsum / dot weight is fake-quantised to int8,
symmetric, one scale per output channel (straight-through gradients), and, with `act_qtype`, the
input of every operation but those kept in float (below) gets a static int8 range kept in a
`quant_stats` collection (moving averages of min/max, updated by training forward passes like
`batch_stats`). The QAT model has the float model's `params` tree, so a float run's variables
(`train.init_from`, pruned or not) start a QAT fine-tune directly, and the pruning masks keep
working in the optimizer state.

Weights use LiteRT's int8 spec, [-127, 127] with scale absmax / 127 (`WEIGHT_CALIBRATION`).
qwix's own symmetric range is [-127.5, 127.5] (scale absmax / 127.5), which rounds each channel's
largest negative weight to -128, while LiteRT's converter stores the narrow range and makes it
-127: that one weight per channel then differed between the QAT model and the export. On the
full-preset Mod-8 this alone moved the logits by 0.02 on average (0.09 at most) from one
frequency depthwise layer; with LiteRT's scale a weight-only export matches to 5e-7.

Depthwise convolutions: under conv_impl 'shift' qwix sees one multiply per kernel tap and would
quantise each tap with its own per-tensor scale; under 'einsum' (same variables, same numbers) it
sees the whole (taps, C) kernel of one einsum and quantises it per output channel. So the QAT model
uses 'einsum' where the float model says 'shift' or 'auto' ('xla' is exact too, but slow on CPU).

Where activations are int8 (`float_modules` lists the rest): at the input of every 2-D
convolution, i.e. the head conv, the transition 1x1 convs and the frequency depthwise convs, which
carry 97% of the Mod-8's convolution MACs. They stay float32 in
- the blocks' 1-D temporal branch (frequency mean, temporal depthwise, BN, SiLU, 1x1 conv: 2.3% of
  the MACs) and their residual sums and ReLUs (`stageN/blockM` itself). A value of the 1-D branch
  is broadcast over all frequency bins, so one rounding step there moves a whole column of the
  block's output. Two runtimes round a value at a step boundary differently (float summation
  order alone does), and with these activations int8 the compressed Mod-8's logits moved by 0.012
  on average when its input moved by 1e-6 of its spread; with them float, by 0.0025.
- the normalisations (ResNorm, FreqIN, RFN: `norm_*`). An instance norm over int8 input amplifies
  one-step rounding differences: a frequency bin that is constant but for one quantisation step
  (the log floor of a band-limited device) has a variance of ~scale^2/T, so that one step comes
  out as ~sqrt(T) standard deviations.
- the classifier and the top level's average pool and output. Int8 logits tie: on a 256-step grid
  the top two classes share a value on >10% of the full preset's test clips. LiteRT's converter
  cannot give an int8 1x1 convolution a float output, so the classifier computes in float on its
  int8 kernel.
Weights stay int8 everywhere; BN/SSN statistics and affine parameters stay float32, as the DCASE
rule allows.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from ascjax import models

QTYPES = {'int8': jnp.int8, '': None}
FLOAT_MODULES = (r'norm_.*|classifier_conv|classifier_out'
                 r'|stage\d+/block\d+(/(temporal_.*|pointwise))?')   # a block's ops, its 1-D branch
FLOAT_TOP_LEVEL_OPS = ('mean', 'final_output')   # the global average pool and the logits
# LiteRT's weight grid: scale absmax / 127 (qwix's absmax / 127.5 widened by 127.5 / 127)
WEIGHT_CALIBRATION = f'absmax,{127.5 / 127!r}'


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
    rule = functools.partial(qwix.QuantizationRule, weight_qtype=weights,
                             weight_calibration_method=WEIGHT_CALIBRATION)
    keep_float = [rule(module_path='', op_names=FLOAT_TOP_LEVEL_OPS)]
    float_modules = cfg.get('float_modules', FLOAT_MODULES)   # runs saved before the field
    if float_modules:
        keep_float.append(rule(module_path=float_modules))
    return keep_float + [rule(module_path='.*', act_qtype=QTYPES[cfg.act_qtype])]


def _with_torch_batch_norm(provider):
    """`provider` handling ascjax's TorchBatchNorm as the flax BatchNorm it subclasses.

    qwix intercepts BatchNorm by the name of its __call__ ('flax.linen.BatchNorm.__call__', an op
    folded into the previous one); a subclass that overrides __call__ would otherwise have each
    jnp op inside it quantised, differently in training and inference.
    """
    from ascjax.models import layers
    name = f'{layers.TorchBatchNorm.__module__}.{layers.TorchBatchNorm.__qualname__}.__call__'
    provider._ops[name] = provider._ops['flax.linen.BatchNorm.__call__']
    return provider


def provider(cfg):
    import qwix
    return _with_torch_batch_norm(qwix.OdmlQatProvider(rules(cfg)))


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
    return qwix.quantize_model(_einsum_depthwise(model), _with_torch_batch_norm(
        qwix.OdmlConversionProvider(rules(cfg), variables['params'], variables['quant_stats'])))


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
