"""Scene probabilities for audio files from a trained workdir, and DCASE submission files.

    python -m ascjax.predict --workdir=DIR a.wav more/ 'rec/*.flac' [--output=submission.csv]
        [--hop_seconds=10] [--seed=K] [--json] [--top=3] [--step=N]

Arguments are files, folders (searched recursively for audio files) or globs; one that matches
nothing is an error. Any sample rate or channel count is accepted (resampled, downmixed; each
conversion is said). A recording longer than the training clip (10 s) is cut into clip-long windows
every `--hop_seconds` (the last window ends at the end of the recording) and its probabilities are
the mean over the windows; `--json` prints every window's probabilities too. A shorter one is
zero-padded. With several seeds in the workdir the probabilities are averaged over them (an
ensemble) unless `--seed=K` picks one.

`--output=FILE` writes the DCASE submission format: tab-separated, a header
`filename  scene_label  airport  bus  ...` (the ten scenes), one row per file with the predicted
scene and the ten probabilities. Filenames are as given, except that files found in a folder are
named relative to that folder's parent (`.../evaluation/audio` gives `audio/0.wav`, as in
DCASE's evaluation CSVs).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os

import numpy as np

AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.mp3', '.aiff', '.aif')
WINDOW_BATCH = 8        # windows per jitted call: one compilation whatever the recording's length


@dataclasses.dataclass(frozen=True)
class Prediction:
    path: str                        # the file read
    name: str                        # its name in a submission file
    conversions: tuple[str, ...]
    windows: np.ndarray              # [W, scenes] probabilities of each window
    probabilities: np.ndarray        # [scenes], mean over the windows

    def ranked(self) -> list[tuple[str, float]]:
        from ascjax.data import layout
        return sorted(zip(layout.SCENES, self.probabilities.tolist()), key=lambda sp: -sp[1])


def expand(arguments) -> list[tuple[str, str]]:
    """(path, submission name) of every audio file named by files, folders or globs, in argument
    order then sorted within a folder or glob, each file once."""
    out, seen = [], set()
    for arg in arguments:
        if os.path.isdir(arg):
            parent = os.path.dirname(os.path.normpath(arg))
            found = sorted(os.path.join(d, f) for d, _, fs in os.walk(arg) for f in fs
                           if f.lower().endswith(AUDIO_EXTENSIONS))
            named = [(p, os.path.relpath(p, parent)) for p in found]
        elif os.path.isfile(arg):
            named = [(arg, arg)]
        else:
            named = [(p, p) for p in sorted(glob.glob(arg, recursive=True)) if os.path.isfile(p)]
        if not named:
            raise FileNotFoundError(f'{arg!r}: no such file, and no audio file in it or matching it')
        for path, name in named:
            if os.path.abspath(path) not in seen:
                seen.add(os.path.abspath(path))
                out.append((path, name))
    return out


def windows(samples: np.ndarray, length: int, hop: int) -> np.ndarray:
    """[W, length] windows of `samples` every `hop` samples; the last one ends at the end (a
    recording shorter than `length` gives one zero-padded window)."""
    if len(samples) <= length:
        return np.pad(samples, (0, length - len(samples)))[None]
    starts = list(range(0, len(samples) - length + 1, hop))
    if starts[-1] != len(samples) - length:
        starts.append(len(samples) - length)
    return np.stack([samples[s:s + length] for s in starts])


def predict_files(arguments, workdir: str, step: int | None = None, seed: int | None = None,
                  hop_seconds: float | None = None) -> list[Prediction]:
    """A `Prediction` for every audio file of `arguments` (see `expand`)."""
    import jax
    from ascjax import features
    from ascjax import logs
    from ascjax import run as run_lib
    from ascjax.data import audio
    files = expand(arguments)
    run = run_lib.open(workdir, step)
    if seed is not None and not 0 <= seed < run.num_seeds:
        raise ValueError(f'--seed={seed}: {workdir} has seeds 0..{run.num_seeds - 1}')
    fe = features.from_config(run.config.data)
    length = int(round(run.config.data.clip_seconds * fe.sample_rate))
    hop = int(round((hop_seconds or run.config.data.clip_seconds) * fe.sample_rate))
    if hop <= 0:
        raise ValueError(f'--hop_seconds={hop_seconds}: must be positive')
    variables = run.state.variables()
    if seed is not None:
        variables = jax.tree.map(lambda v: v[seed:seed + 1], variables)

    @jax.jit
    def probabilities(variables, waveforms):            # [WINDOW_BATCH, length] -> [B, scenes]
        x = features.logmel_jax(waveforms, fe)[..., None]
        logits = jax.vmap(lambda v: run.model.apply(v, x, train=False))(variables)
        return jax.nn.softmax(logits.astype(np.float32), -1).mean(0)

    out = []
    for path, name in logs.counted(files, len(files), 'predict: files', every_s=30.0):
        wave = audio.load(path, fe.sample_rate, None)
        w = windows(wave.samples, length, hop)
        padded = np.pad(w, ((0, -len(w) % WINDOW_BATCH), (0, 0)))
        p = np.concatenate([np.asarray(probabilities(variables, padded[i:i + WINDOW_BATCH]))
                            for i in range(0, len(padded), WINDOW_BATCH)])[:len(w)]
        conversions = wave.conversions + (('padded',) if len(wave.samples) < length else ())
        out.append(Prediction(path, name, conversions, p, p.mean(0)))
    return out


def write_submission(predictions, path: str) -> None:
    """The DCASE submission file: filename, scene_label and one probability column per scene."""
    from ascjax.data import layout
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f, delimiter='\t', lineterminator='\n')
        writer.writerow(['filename', 'scene_label', *layout.SCENES])
        for p in predictions:
            writer.writerow([p.name, p.ranked()[0][0], *(f'{v:.6f}' for v in p.probabilities)])


def main(argv):
    from ascjax import logs
    logs.quiet()   # orbax/TFDS/JAX INFO lines only with --verbosity=1
    from absl import app, flags
    f = flags.FLAGS
    if not argv[1:]:
        raise app.UsageError('give one or more audio files, folders or globs')
    predictions = predict_files(argv[1:], f.workdir, f.step, f.seed, f.hop_seconds)
    for p in predictions:
        top = p.ranked()[:f.top]
        if f.json:
            print(json.dumps({'file': p.path, 'conversions': list(p.conversions),
                              'top': [{'scene': s, 'probability': v} for s, v in top],
                              'windows': np.round(p.windows, 6).tolist()}))
        else:
            note = f'  ({", ".join(p.conversions)})' if p.conversions else ''
            print(f'{p.path}{note}' + (f'  [{len(p.windows)} windows]' if len(p.windows) > 1
                                       else ''))
            for scene, v in top:
                print(f'  {scene:<18} {v:.3f}')
    if f.output:
        write_submission(predictions, f.output)
        print(f'wrote {f.output} ({len(predictions)} files)')


if __name__ == '__main__':
    from absl import app, flags
    flags.DEFINE_string('workdir', None, 'A training workdir (config.json + checkpoints).')
    flags.DEFINE_bool('json', False, 'Print one JSON object per file (with per-window scores).')
    flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
    flags.DEFINE_integer('top', 3, 'How many scenes to print.')
    flags.DEFINE_integer('seed', None, 'Use this seed only (default: average over every seed).')
    flags.DEFINE_float('hop_seconds', None, 'Hop between windows of a long recording (default: '
                       'the clip length, i.e. non-overlapping windows).')
    flags.DEFINE_string('output', None, 'Write a DCASE submission file (tab-separated) here.')
    flags.mark_flag_as_required('workdir')
    app.run(main)
