"""Top-3 scenes per audio file from a trained workdir.

    python -m ascjax.predict --workdir=DIR a.wav b.flac ... [--json] [--step=N]

Any sample rate or channel count is accepted: files are resampled, downmixed, padded or cropped to
the training clip format, and each conversion is said. With several seeds in the workdir the
probabilities are averaged over them (an ensemble).
"""

from __future__ import annotations

import json


def predict_files(paths, workdir, step=None):
    """[(path, conversions, [(scene, probability), ...] sorted)] for each file."""
    import jax
    import numpy as np
    from ascjax import features
    from ascjax.data import audio, layout
    from ascjax import run as run_lib
    run = run_lib.open(workdir, step)
    config, model, state = run.config, run.model, run.state
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
    from ascjax import logs
    logs.quiet()   # orbax/TFDS/JAX INFO lines only with --verbosity=1
    from absl import app, flags
    f = flags.FLAGS
    paths = argv[1:]
    if not paths:
        raise app.UsageError('give one or more audio files')
    for path, conversions, ranked in predict_files(paths, f.workdir, f.step):
        top = ranked[:f.top]
        if f.json:
            print(json.dumps({'file': path, 'conversions': list(conversions),
                              'top': [{'scene': s, 'probability': p} for s, p in top]}))
        else:
            note = f'  ({", ".join(conversions)})' if conversions else ''
            print(f'{path}{note}')
            for scene, p in top:
                print(f'  {scene:<18} {p:.3f}')


if __name__ == '__main__':
    from absl import app, flags
    flags.DEFINE_string('workdir', None, 'A training workdir (config.json + checkpoints).')
    flags.DEFINE_bool('json', False, 'Print one JSON object per file.')
    flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
    flags.DEFINE_integer('top', 3, 'How many scenes to print.')
    flags.mark_flag_as_required('workdir')
    app.run(main)
