"""Top-3 scenes per audio file from a trained workdir.

    python -m ascjax.predict --workdir=DIR a.wav b.flac ... [--json] [--step=N]

Any sample rate or channel count is accepted: files are resampled, downmixed, padded or cropped to
the training clip format, and each conversion is said. With several seeds in the workdir the
probabilities are averaged over them (an ensemble).
"""

import json

from absl import app, flags

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training workdir (config.json + checkpoints).')
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON object per file.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
_TOP = flags.DEFINE_integer('top', 3, 'How many scenes to print.')
flags.mark_flag_as_required('workdir')


def predict_files(paths, workdir, step=None):
    """[(path, conversions, [(scene, probability), ...] sorted)] for each file."""
    import jax
    import numpy as np
    from ascjax import features
    from ascjax.data import audio, layout
    from ascjax.train import loop
    config, model, state, _ = loop.restore(workdir, step)
    fe = features.from_config(config.data)
    num_samples = int(round(config.data.clip_seconds * fe.sample_rate))

    @jax.jit
    def probabilities(variables, waveform):
        x = features.logmel_jax(waveform[None], fe)[..., None]
        logits = jax.vmap(lambda v: model.apply(v, x, train=False))(variables)
        return jax.nn.softmax(logits, -1).mean(0)[0]

    out = []
    for path in paths:
        wave = audio.load(path, fe.sample_rate, num_samples)
        p = np.asarray(probabilities(state.variables(), wave.samples))
        ranked = sorted(zip(layout.SCENES, p.tolist()), key=lambda sp: -sp[1])
        out.append((path, wave.conversions, ranked))
    return out


def main(argv):
    paths = argv[1:]
    if not paths:
        raise app.UsageError('give one or more audio files')
    for path, conversions, ranked in predict_files(paths, _WORKDIR.value, _STEP.value):
        top = ranked[:_TOP.value]
        if _JSON.value:
            print(json.dumps({'file': path, 'conversions': list(conversions),
                              'top': [{'scene': s, 'probability': p} for s, p in top]}))
        else:
            note = f'  ({", ".join(conversions)})' if conversions else ''
            print(f'{path}{note}')
            for scene, p in top:
                print(f'  {scene:<18} {p:.3f}')


if __name__ == '__main__':
    app.run(main)
