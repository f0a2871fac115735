"""Converts a PyTorch BC-ResNet / BC-ResNet-Mod state_dict (official key scheme) to Flax variables.

    python tools/convert_torch_checkpoint.py --state_dict=bcresnet8.pt --model=bcresnet \
        --tau=8 --num_classes=12 --sub_bands=5 --out=bcresnet8.msgpack

The output is ``flax.serialization.to_bytes({'params': ..., 'batch_stats': ...})``; read it back
with ``ascjax.models.convert.load_flax_variables`` or ``flax.serialization.from_bytes``. Unset
model flags take the model's defaults. All logic lives in ``ascjax.models.convert``.
"""

from __future__ import annotations

from absl import app, flags

from ascjax.models import convert

flags.DEFINE_string('state_dict', None, 'PyTorch checkpoint: a state_dict, or a dict holding one '
                    "under 'state_dict' or 'model'.", required=True)
flags.DEFINE_enum('model', None, ['bcresnet', 'bcresnet_mod'], 'Flax model to convert to.',
                  required=True)
flags.DEFINE_string('out', None, 'Output file (Flax msgpack bytes).', required=True)
flags.DEFINE_float('tau', None, 'Width multiplier tau (default: the model default, 8).')
flags.DEFINE_integer('num_classes', None, 'Number of classes (default: the model default).')
flags.DEFINE_integer('sub_bands', None, 'SubSpectralNorm sub-bands (default: 5 for bcresnet, '
                     '4 for bcresnet_mod).')
flags.DEFINE_bool('classifier_bn', None, 'bcresnet_mod only: BN after the classifier conv.')
FLAGS = flags.FLAGS

MODEL_FLAGS = ('tau', 'num_classes', 'sub_bands', 'classifier_bn')


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    fields = {name: FLAGS[name].value for name in MODEL_FLAGS if FLAGS[name].value is not None}
    variables = convert.convert_checkpoint(FLAGS.state_dict, FLAGS.out, FLAGS.model, **fields)
    print(f'{FLAGS.model} {fields}: {convert.count(variables["params"]):,} params and '
          f'{convert.count(variables["batch_stats"]):,} batch_stats -> {FLAGS.out}')


if __name__ == '__main__':
    app.run(main)
