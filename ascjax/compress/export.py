"""Int8 export of a trained run to one TFLite (LiteRT) file that runs without JAX or TensorFlow.

    python -m ascjax.compress.export --workdir=RUN [--out=RUN/model_int8.tflite]

Path (../shared/TOOLING.md, "Quantisation"): qwix's own ODML conversion does not produce int8 with
this TF/JAX pair, so the float network carrying the run's (QAT-trained, pruned) weights and BN
statistics goes through `jax2tf` into a `tf.function`, and TFLite's converter quantises it to int8
(per-channel weights, per-tensor activations calibrated on `--calibration_clips` training clips,
BN folded into the convolutions by the converter). The file takes and returns float32 (log-mels
[1, F, T, 1] in, logits out); everything in between is int8.

Check (written to RUN/export.json and printed): the artifact is reloaded with
`ai_edge_litert.interpreter.Interpreter` and run on every test clip; its predicted class is
compared with the JAX model of the run (the QAT model with its activation ranges for a QAT run),
and both accuracies are reported. Scales are TFLite's own (absmax/127 against qwix's absmax/127.5,
its own activation calibration), so agreement, not bit-exactness, is the criterion.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from ascjax import features, models

DEFAULT_NAME = 'model_int8.tflite'


def _float_forward(config, variables):
    """x [1, F, T, 1] -> logits, the float network with `variables` (no quant_stats), as a function
    of x only. Depthwise convolutions as shifted multiply-adds, which the converter maps to int8
    PAD/SLICE/MUL/ADD."""
    model = models.from_config(config.model).clone(conv_impl='shift')
    variables = {k: v for k, v in variables.items() if k != 'quant_stats'}
    return lambda x: model.apply(variables, x, train=False).astype(jnp.float32)


def convert(forward, input_shape: tuple[int, ...], calibration: np.ndarray) -> bytes:
    """The int8 TFLite flatbuffer of `forward` (x [1, *input_shape] -> logits)."""
    import tensorflow as tf
    from jax.experimental import jax2tf
    spec = tf.TensorSpec((1, *input_shape), tf.float32)
    fn = tf.function(jax2tf.convert(forward, with_gradient=False), input_signature=[spec],
                     autograph=False)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function()], tf.Module())
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def run_tflite(model: bytes | str, inputs: np.ndarray) -> np.ndarray:
    """Logits of the TFLite model for every example of `inputs` [N, F, T, 1], one at a time."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = (Interpreter(model_path=model) if isinstance(model, str)
                   else Interpreter(model_content=model))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    logits = []
    for x in inputs:
        interpreter.set_tensor(inp['index'], x[None].astype(np.float32))
        interpreter.invoke()
        logits.append(interpreter.get_tensor(out['index'])[0].copy())
    return np.stack(logits)


def int8_ops(model: bytes) -> dict:
    """{'ops': operator name -> count, 'float_ops': how many operators other than (DE)QUANTIZE
    read or write float32}."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    tensors = {t['index']: t for t in interpreter.get_tensor_details()}
    counts, float_ops = {}, 0
    for op in interpreter._get_ops_details():   # the only public-ish listing of operators
        counts[op['op_name']] = counts.get(op['op_name'], 0) + 1
        io = [tensors[i] for i in (*op['inputs'], *op['outputs']) if i in tensors]
        if op['op_name'] not in ('QUANTIZE', 'DEQUANTIZE') and any(
                t['dtype'] == np.float32 for t in io):
            float_ops += 1
    return {'ops': counts, 'float_ops': float_ops}


def _arrays(source, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log-mels [N, F, T, 1], labels) of a source's examples `indices`."""
    batch = source.load(indices)
    return batch['spectrogram'][..., None], batch['label']


def export(workdir: str, out: str | None = None, calibration_clips: int = 200,
           seed_index: int = 0) -> dict:
    """Exports seed `seed_index` of `workdir` to int8 TFLite and checks it on the test split."""
    from ascjax.data import pipeline
    from ascjax.train import loop, state as state_lib
    config, model, state, _ = loop.restore(workdir)
    if config.data.get('features_on', 'host') != 'host':
        raise ValueError(f'{workdir}: export needs cached log-mels (data.features_on=host)')
    variables = state_lib.seed_slice(state, seed_index)
    builder = loop.open_data(config)
    train = pipeline.TfdsSource.from_builder(builder, 'train')
    test = pipeline.TfdsSource.from_builder(builder, 'test')
    # evenly spread over the split (which is ordered by device, scene, ...)
    calibration, _ = _arrays(train, np.unique(np.linspace(
        0, len(train) - 1, min(calibration_clips, len(train))).astype(int)))
    flatbuffer = convert(_float_forward(config, variables), features.input_shape(config.data),
                         calibration)
    out = out or os.path.join(workdir, DEFAULT_NAME)
    with open(out, 'wb') as f:
        f.write(flatbuffer)

    x, labels = _arrays(test, np.arange(len(test)))
    reference = jax.jit(lambda v, x: model.apply(v, x, train=False))
    jax_logits = np.concatenate([np.asarray(reference(variables, x[i:i + 64]))
                                 for i in range(0, len(x), 64)])
    tflite_logits = run_tflite(out, x)
    agree = float(np.mean(jax_logits.argmax(-1) == tflite_logits.argmax(-1)))
    result = {
        'workdir': workdir, 'tflite': out, 'tflite_bytes': len(flatbuffer),
        'test_clips': int(len(x)), 'calibration_clips': int(len(calibration)),
        'argmax_agreement': agree,
        'accuracy_jax': float(np.mean(jax_logits.argmax(-1) == labels)),
        'accuracy_tflite': float(np.mean(tflite_logits.argmax(-1) == labels)),
        'max_abs_logit_diff': float(np.abs(jax_logits - tflite_logits).max()),
        'qat': bool(config.get('qat') and config.qat.enabled),
        **int8_ops(flatbuffer),
    }
    with open(os.path.join(workdir, 'export.json'), 'w') as f:
        json.dump(result, f, indent=2)
    return result


def main(argv):
    del argv
    r = export(_WORKDIR.value, _OUT.value, _CALIBRATION.value)
    logging.info('wrote %s', r['tflite'])
    print(f'{r["tflite"]}: {r["tflite_bytes"] / 1024:.1f} KB, {r["float_ops"]} float ops; on '
          f'{r["test_clips"]} test clips the predicted class agrees with the JAX model on '
          f'{100 * r["argmax_agreement"]:.1f}% (accuracy JAX {100 * r["accuracy_jax"]:.1f}%, '
          f'TFLite {100 * r["accuracy_tflite"]:.1f}%)')


if __name__ == '__main__':
    _WORKDIR = flags.DEFINE_string('workdir', None, 'Training run to export (latest checkpoint).')
    _OUT = flags.DEFINE_string('out', None, f'Output file (default WORKDIR/{DEFAULT_NAME}).')
    _CALIBRATION = flags.DEFINE_integer('calibration_clips', 200,
                                        'Training clips for the activation ranges.')
    flags.mark_flag_as_required('workdir')
    app.run(main)
