"""Int8 export of a trained run to one TFLite (LiteRT) file that runs without JAX or TensorFlow.

    python -m ascjax.tasks.export --workdir=RUN [--out=RUN/model_int8.tflite]

Path: qwix's ODML conversion. The run's QAT model is rebuilt with `OdmlConversionProvider`
(`qat.conversion_model`): the same fake-quantised network, with each quantisation point marked as a
`quant.fake_quant` composite carrying its scale (per output channel for weights, the QAT-trained
static range for activations). `jax2tf` wraps it in a `tf.function`, and TFLite's converter in
strict QDQ mode lowers every composite to QUANTIZE/DEQUANTIZE with exactly those scales: int8
kernels and int8 activation tensors wherever the QAT model has them, float32 where it computes in
float (normalisations, BN/SSN affine, the classifier; see `qat`). The file takes float32 log-mels
[1, F, T, 1] and returns float32 logits. A run trained without QAT is calibrated first: its
activation ranges come from `--calibration_clips` training clips through the same qwix model.

Check (written to RUN/export.json and printed): the artifact is reloaded with
`ai_edge_litert.interpreter.Interpreter` and run on every test clip; its predicted class is
compared with the JAX QAT model's, and both accuracies and the largest logit difference are
reported, with the top-two margins of the clips that disagree.
"""

from __future__ import annotations

import contextlib
import json
import os
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from ascjax import features, logs, models
from ascjax import run as run_lib

DEFAULT_NAME = 'model_int8.tflite'


@contextlib.contextmanager
def _stablehlo_readable_by_tf():
    """jax serialises StableHLO for consumers at most 4 weeks old (1.15 for jax 0.10), in which
    qwix's composites are `vhlo.composite_v2`; TF 2.21's converter reads StableHLO up to 1.13.7 and
    fails on them. Inside this context jax serialises for the 12-week window instead (jax has no
    public setting for it)."""
    from jax._src.export import _export
    hlo = _export.hlo
    week_12 = hlo.get_version_from_compatibility_requirement(
        hlo.StablehloCompatibilityRequirement.WEEK_12)
    with mock.patch.object(hlo, 'get_version_from_compatibility_requirement',
                           lambda requirement: week_12):
        yield


def convert(forward, input_shape: tuple[int, ...]) -> bytes:
    """The TFLite flatbuffer of `forward` (x [1, *input_shape] -> logits), a function built from
    qwix's conversion model, with its fake-quantisations as int8 QUANTIZE/DEQUANTIZE."""
    import tensorflow as tf
    from jax.experimental import jax2tf
    spec = tf.TensorSpec((1, *input_shape), tf.float32)
    with _stablehlo_readable_by_tf():
        fn = tf.function(jax2tf.convert(forward, with_gradient=False), input_signature=[spec],
                         autograph=False).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], tf.Module())
    # Lower the quant.fake_quant composites with their own scales (TFLite's LowerQuantAnnotations
    # pass) instead of quantising by its own calibration; private, but the only switch for it.
    converter._experimental_qdq_conversion_mode = 'STRICT'
    converter._experimental_strict_qdq = True
    return converter.convert()


def run_tflite(model: bytes | str, inputs: np.ndarray) -> np.ndarray:
    """Logits of the TFLite model for every example of `inputs` [N, F, T, 1], one at a time."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = (Interpreter(model_path=model) if isinstance(model, str)
                   else Interpreter(model_content=model))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    logits = []
    for x in logs.counted(inputs, len(inputs), 'tflite: clips', every_s=30.0):
        interpreter.set_tensor(inp['index'], x[None].astype(np.float32))
        interpreter.invoke()
        logits.append(interpreter.get_tensor(out['index'])[0].copy())
    return np.stack(logits)


def op_summary(model: bytes) -> dict:
    """{'ops': operator name -> count, 'int8_ops': operators that read and write integers only,
    'float_ops': the others but (DE)QUANTIZE}."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    tensors = {t['index']: t for t in interpreter.get_tensor_details()}
    counts, int8_ops, float_ops = {}, 0, 0
    for op in interpreter._get_ops_details():   # the only public-ish listing of operators
        if op['op_name'] == 'DELEGATE':
            continue
        counts[op['op_name']] = counts.get(op['op_name'], 0) + 1
        io = [tensors[i] for i in (*op['inputs'], *op['outputs']) if i in tensors]
        if op['op_name'] in ('QUANTIZE', 'DEQUANTIZE'):
            continue
        if any(t['dtype'] == np.float32 for t in io):
            float_ops += 1
        else:
            int8_ops += 1
    return {'ops': counts, 'int8_ops': int8_ops, 'float_ops': float_ops}


def _arrays(source, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log-mels [N, F, T, 1], labels) of a source's examples `indices`."""
    batch = source.load(indices)
    return batch['spectrogram'][..., None], batch['label']


def _logits(model, variables, x: np.ndarray, batch: int = 64) -> np.ndarray:
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
    return np.concatenate([np.asarray(apply(variables, jnp.asarray(x[i:i + batch])))
                           for i in range(0, len(x), batch)])


def agreement(reference: np.ndarray, logits: np.ndarray) -> dict:
    """Predicted-class agreement of two [N, classes] logit arrays, the largest logit difference,
    and how clear-cut the disagreeing clips were (the reference's top-two margin)."""
    top2 = np.sort(reference, -1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    differ = reference.argmax(-1) != logits.argmax(-1)
    return {'argmax_agreement': float(1 - differ.mean()),
            'max_abs_logit_diff': float(np.abs(reference - logits).max()),
            'disagreeing_clips': int(differ.sum()),
            'largest_disagreeing_margin': float(margin[differ].max()) if differ.any() else None,
            'reference_margin_quantiles': dict(zip(
                ('p01', 'p05', 'p10', 'p50'), np.quantile(margin, [.01, .05, .1, .5]).tolist()))}


def export(workdir: str, out: str | None = None, calibration_clips: int = 200,
           seed_index: int = 0) -> dict:
    """Exports seed `seed_index` of `workdir` to int8 TFLite and checks it on the test split."""
    from ascjax.compress import qat
    run = run_lib.open(workdir)
    config, model = run.config, run.model
    if config.data.get('features_on', 'host') != 'host':
        raise ValueError(f'{workdir}: export needs cached log-mels (data.features_on=host)')
    variables = run.variables(seed_index)
    test = run.source('test')
    trained_qat = bool(config.get('qat') and config.qat.enabled)
    qat_cfg = config.qat if trained_qat else qat.default_config()
    float_model = models.from_config(config.model)
    if not trained_qat:   # post-training: the float weights, ranges calibrated by qwix
        model = qat.quantize(float_model, qat_cfg)
        train = run.source('train')
        calibration, _ = _arrays(train, np.unique(np.linspace(   # spread over devices, scenes
            0, len(train) - 1, min(calibration_clips, len(train))).astype(int)))
        variables = {**variables, 'quant_stats': qat.calibrate(
            model, variables, np.array_split(calibration, -(-len(calibration) // 32)))}
    frozen = qat.conversion_model(float_model, qat_cfg, variables)
    float_variables = {k: v for k, v in variables.items() if k != 'quant_stats'}
    flatbuffer = convert(lambda x: frozen.apply(float_variables, x, train=False),
                         features.input_shape(config.data))
    out = out or os.path.join(workdir, DEFAULT_NAME)
    with open(out, 'wb') as f:
        f.write(flatbuffer)

    x, labels = _arrays(test, np.arange(len(test)))
    jax_logits = _logits(model, variables, x)
    tflite_logits = run_tflite(out, x)
    result = {
        'workdir': workdir, 'tflite': out, 'tflite_bytes': len(flatbuffer),
        'test_clips': int(len(x)), 'qat': trained_qat,
        'calibration_clips': 0 if trained_qat else int(len(calibration)),
        **agreement(jax_logits, tflite_logits),
        'accuracy_jax': float(np.mean(jax_logits.argmax(-1) == labels)),
        'accuracy_tflite': float(np.mean(tflite_logits.argmax(-1) == labels)),
        **op_summary(flatbuffer),
    }
    with open(os.path.join(workdir, 'export.json'), 'w') as f:
        json.dump(result, f, indent=2)
    return result


def main(argv):
    from ascjax import logs
    logs.quiet()   # orbax/TFDS/JAX INFO lines only with --verbosity=1
    del argv
    r = export(_WORKDIR.value, _OUT.value, _CALIBRATION.value)
    logging.info('wrote %s', r['tflite'])
    print(f'{r["tflite"]}: {r["tflite_bytes"] / 1024:.1f} KB, {r["int8_ops"]} int8 and '
          f'{r["float_ops"]} float operators; on {r["test_clips"]} test clips the predicted class '
          f'agrees with the JAX QAT model on {100 * r["argmax_agreement"]:.1f}% (max logit '
          f'difference {r["max_abs_logit_diff"]:.3f}; accuracy JAX {100 * r["accuracy_jax"]:.1f}%, '
          f'TFLite {100 * r["accuracy_tflite"]:.1f}%)')


if __name__ == '__main__':
    _WORKDIR = flags.DEFINE_string('workdir', None, 'Training run to export (latest checkpoint).')
    _OUT = flags.DEFINE_string('out', None, f'Output file (default WORKDIR/{DEFAULT_NAME}).')
    _CALIBRATION = flags.DEFINE_integer('calibration_clips', 200,
                                        'Training clips that calibrate the activation ranges '
                                        'of a run trained without QAT.')
    flags.mark_flag_as_required('workdir')
    app.run(main)
