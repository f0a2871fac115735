"""Datasets by name: the embedded synthetic set (made on first use) or a real TAU 2020 Mobile copy.

    python -m ascjax.data.datasets --dataset=synthetic --preset=demo     # build, then summarise
    python -m ascjax.data.datasets --dataset=tau2020mobile --manual_dir=/data/TAU-...-development

Both go through the same TFDS builder (`ascjax.data.tau`); each gets its own TFDS data folder under
`data_dir` (default $ASCJAX_DATA, else ~/.cache/ascjax) because the builder name is shared.
"""

from __future__ import annotations

import collections
import os
import shutil

from absl import app, flags

from ascjax import features
from ascjax.data import layout

NAMES = ('synthetic', 'tau2020mobile')


def default_data_dir() -> str:
    return os.environ.get('ASCJAX_DATA', os.path.expanduser('~/.cache/ascjax'))


def synthetic_dir(data_dir: str, preset: str, seed: int) -> str:
    """Generates the synthetic set into data_dir on first use (atomically) and returns its root,
    a folder named by preset, seed and generator version."""
    from ascjax.data import synthesize
    root = os.path.join(data_dir,
                        f'synthetic_{preset}_seed{seed}_v{synthesize.GENERATOR_VERSION}')
    if not os.path.exists(os.path.join(root, 'meta.csv')):
        partial = root + '.partial'
        shutil.rmtree(partial, ignore_errors=True)   # left by a run that was killed
        synthesize.synthesize(partial, preset=preset, seed=seed)
        os.replace(partial, root)
    return root


def manual_dir_for(dataset: str, *, data_dir: str, manual_dir: str | None = None,
                   preset: str = 'demo', seed: int = 0) -> str:
    if dataset == 'synthetic':
        return manual_dir or synthetic_dir(data_dir, preset, seed)
    if dataset == 'tau2020mobile':
        if not manual_dir or not os.path.isdir(manual_dir):
            raise ValueError(f'--manual_dir={manual_dir!r}: tau2020mobile needs the folder of an '
                             'unpacked TAU-urban-acoustic-scenes-2020-mobile-development '
                             '(audio/, meta.csv, evaluation_setup/); nothing is downloaded')
        return manual_dir
    raise ValueError(f'unknown dataset {dataset!r}; expected one of {NAMES}')


def prepare(dataset: str, *, data_dir: str | None = None, manual_dir: str | None = None,
            preset: str = 'demo', seed: int = 0,
            front_end: features.FrontEnd = features.FrontEnd(), store: str = 'logmel',
            clip_seconds: float = layout.CLIP_SECONDS):
    """The built TFDS dataset (`tau.Tau2020Mobile`, features computed once and cached) for
    `dataset`."""
    from ascjax.data import tau   # TFDS: only for the cached dataset, not for `manual_dir_for`
    data_dir = data_dir or default_data_dir()
    root = manual_dir_for(dataset, data_dir=data_dir, manual_dir=manual_dir, preset=preset,
                          seed=seed)
    name = 'tau2020mobile' if dataset == 'tau2020mobile' else os.path.basename(root)
    return tau.prepare(root, os.path.join(data_dir, 'tfds', name), front_end=front_end,
                       store=store, clip_seconds=clip_seconds)


def describe(root: str) -> dict:
    """Clips per split and device, and the number of (A, X) pairs per device X, from the CSVs."""
    summary = {}
    for split in ('train', 'test'):
        clips = layout.read_split(root, split, check_audio=False)
        devices = collections.Counter(c.device for c in clips)
        recorded_by = collections.defaultdict(set)
        for c in clips:
            recorded_by[c.pair].add(c.device)
        pairs = collections.Counter(d for ds in recorded_by.values() if 'a' in ds
                                    for d in ds if d != 'a')
        summary[split] = {'clips': len(clips), 'devices': dict(sorted(devices.items())),
                          'pairs_with_a': dict(sorted(pairs.items())),
                          'locations': len({c.location for c in clips})}
    return summary


def _print_summary(root: str, builder) -> None:
    from ascjax.data import pipeline, sources
    print(f'dataset: {root}\nfeatures: {builder.data_dir}')
    for split, s in describe(root).items():
        print(f'{split:>5}: {s["clips"]} clips at {s["locations"]} locations')
        print(f'       per device: {s["devices"]}')
        print(f'       (A, X) pairs: {s["pairs_with_a"]}')
    print('conversions:', builder.info.metadata.get('conversions'))
    for finding, what in (('constant', 'silent or constant'), ('truncated', 'too short')):
        for split, names in (builder.info.metadata.get(f'{finding}_clips') or {}).items():
            if names:
                print(f'{split}: {len(names)} {what} clip(s): {names}')
    source = sources.TfdsSource.from_builder(builder, 'train')
    size = min(32, len(source))          # a split smaller than a batch is a fine (small) build
    batch = next(pipeline.train_batches(source, global_batch_size=size, seed=0).as_numpy_iterator())
    print('one training batch:', {k: (v.shape, str(v.dtype)) for k, v in batch.items()})


def main(argv):
    from ascjax import logs
    logs.quiet()   # orbax/TFDS/JAX INFO lines only with --verbosity=1
    del argv
    f = flags.FLAGS
    root = manual_dir_for(f.dataset, data_dir=f.data_dir or default_data_dir(),
                          manual_dir=f.manual_dir, preset=f.preset, seed=f.seed)
    builder = prepare(f.dataset, data_dir=f.data_dir, manual_dir=root, preset=f.preset,
                      seed=f.seed)
    _print_summary(root, builder)


if __name__ == '__main__':
    flags.DEFINE_enum('dataset', 'synthetic', NAMES, 'Which dataset to build and describe.')
    flags.DEFINE_string('data_dir', None, 'Cache folder (default $ASCJAX_DATA or ~/.cache/ascjax).')
    flags.DEFINE_string('manual_dir', None, 'Unpacked TAU 2020 Mobile development set.')
    flags.DEFINE_enum('preset', 'demo', ['demo', 'full'], 'Synthetic preset.')
    flags.DEFINE_integer('seed', 0, 'Synthetic generator seed.')
    app.run(main)
