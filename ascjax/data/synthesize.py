r"""Builds the embedded synthetic multi-device dataset in the exact TAU 2020 Mobile layout.

    python -m ascjax.data.synthesize --out=DIR [--preset=demo|full|tiny] [--seed=0] [--scale=1]

Writes DIR/audio/*.wav (44.1 kHz, 24-bit PCM, mono, 10 s), DIR/meta.csv,
DIR/evaluation_setup/fold1_{train,evaluate,test}.csv, DIR/devices.json (every device's parameters)
and DIR/summary.json (clips per device and split, A–X pair counts, preset, seed).

How the set mirrors TAU (REFERENCE.md §6, SYNTHETIC.md):
  * ten scenes (scenes.py) recorded in several cities, at several locations per scene and city; the
    train and test splits use disjoint locations;
  * every segment is rendered once as a clean source and "recorded simultaneously" by several
    devices (devices.py), so a segment's files are time-aligned and differ only in the device
    suffix;
  * train: device A for every segment, B, C, S1–S3 for a few segments each (paired with A);
    test: every segment recorded by all nine devices; S4–S6 never appear in train.

Output is a function of (preset, scale, seed) only: each segment draws from its own stream seeded by
(seed, segment index), so files are byte-identical whatever the number of worker processes.
`demo` builds in under two minutes on two cores.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import time
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from ascjax import logs
from ascjax.data import audio, devices, layout, scenes

UNSEEN_DEVICES = ('s4', 's5', 's6')      # test only, as in TAU
TRAIN_DEVICES = tuple(d for d in layout.DEVICES if d not in UNSEEN_DEVICES)


@dataclasses.dataclass(frozen=True)
class Preset:
    cities: tuple[str, ...]
    train_locations: int        # per scene and city
    test_locations: int         # per scene and city
    train_segments: int         # per scene, each recorded by A
    paired_segments: int        # per scene, train segments also recorded by B, C, S1, S2, S3
    test_segments: int          # per scene, each recorded by all nine devices

    def scaled(self, scale: float) -> Preset:
        n = lambda k: max(1, int(round(k * scale)))
        return dataclasses.replace(self, train_segments=n(self.train_segments),
                                   paired_segments=n(self.paired_segments),
                                   test_segments=n(self.test_segments))


# Bumped whenever the rendered audio changes for a given (preset, seed): cached builds are keyed by
# it (`datasets.synthetic_dir`), so a checkout never reads a set made by another generator.
# 1: issue #5's scenes; 2: denser signature events, per-scene loudness, ±4 dB part jitter (#16);
# 3: the `demo` preset doubled (600 A + 5 x 60 paired clips; `full` and `tiny` unchanged).
GENERATOR_VERSION = 3

PRESETS = {
    # Tests: 20 segments, 150 files (every train segment paired, to keep it small).
    'tiny': Preset(('barcelona', 'helsinki'), 1, 1, 1, 1, 1),
    # `make demo`: 600 A + 5 x 60 paired train clips, 9 x 40 test clips.
    'demo': Preset(('barcelona', 'helsinki'), 3, 2, 60, 6, 4),
    # About 1/5 of TAU's development set: 2,000 A + 5 x 150 train clips, 9 x 100 test clips.
    'full': Preset(layout.CITIES, 2, 1, 200, 15, 10),
}


@dataclasses.dataclass(frozen=True)
class Segment:
    index: int                  # position in the build: seeds the segment's random stream
    scene: str
    city: str
    location: int               # unique within a city, across scenes and splits
    split: str
    devices: tuple[str, ...]

    def filename(self, device: str) -> str:
        return layout.clip_filename(self.scene, self.city, self.location, self.index, device)


def plan(preset: Preset) -> list[Segment]:
    """All segments in a fixed order. Each scene gets `*_locations` new locations per city and
    split; its segments go round-robin over them, and its paired segments are spread evenly over
    its train segments."""
    segments = []
    next_location = {city: 0 for city in preset.cities}
    for scene_index, scene in enumerate(layout.SCENES):
        for split, per_city, count in (('train', preset.train_locations, preset.train_segments),
                                       ('test', preset.test_locations, preset.test_segments)):
            places = []
            for city in preset.cities:
                places += [(city, next_location[city] + k) for k in range(per_city)]
                next_location[city] += per_city
            paired = set(np.linspace(0, count - 1, preset.paired_segments).round().astype(int))
            for k in range(count):
                # Offset by scene so that even one segment per scene visits every city.
                city, location = places[(k + scene_index) % len(places)]
                if split == 'test':
                    devs = layout.DEVICES
                else:
                    devs = TRAIN_DEVICES if k in paired else ('a',)
                segments.append(Segment(len(segments), scene, city, location, split, devs))
    return segments


def _segment_streams(seed: int, index: int) -> list[np.random.Generator]:
    """One stream for the scene and one per device (fixed count, so a device's noise does not
    depend on which other devices recorded the segment)."""
    children = np.random.SeedSequence([seed, index]).spawn(1 + len(layout.DEVICES))
    return [np.random.default_rng(c) for c in children]


def render_segment(segment: Segment, seed: int, out: str,
                   device_params: dict[str, devices.DeviceParams]) -> list[layout.Clip]:
    """Renders one clean source, records it with each of the segment's devices, writes the wavs."""
    scene_rng, *device_rngs = _segment_streams(seed, segment.index)
    loc = scenes.draw_location(seed, segment.scene, segment.city, segment.location)
    source = scenes.render(segment.scene, loc, scene_rng)
    clips = []
    for device in segment.devices:
        rng = device_rngs[layout.DEVICES.index(device)]
        name = segment.filename(device)
        audio.write(os.path.join(out, name), devices.record(device_params[device], source, rng),
                    layout.SAMPLE_RATE)
        parts = layout.parse_filename(name)
        clips.append(layout.Clip(filename=name, scene=segment.scene, device=device,
                                 city=segment.city, location=parts['location'], pair=parts['pair']))
    return clips


_WORKER_ARGS = None


def _init_worker(seed, out, device_params):
    global _WORKER_ARGS
    _WORKER_ARGS = (seed, out, device_params)


def _render_in_worker(segment: Segment) -> list[layout.Clip]:
    return render_segment(segment, *_WORKER_ARGS)


def _render_all(segments, seed, out, device_params, workers):
    count = lambda groups: list(logs.counted(groups, len(segments), f'{out}: segments'))
    if workers <= 1:
        return count(render_segment(s, seed, out, device_params) for s in segments)
    # spawn, not fork: the parent may already run JAX or TF threads (tests, notebooks).
    ctx = multiprocessing.get_context('spawn')
    with ctx.Pool(workers, _init_worker, (seed, out, device_params)) as pool:
        return count(pool.imap(_render_in_worker, segments, chunksize=4))


def summarize(segments: Sequence[Segment], preset_name: str, seed: int, scale: float) -> dict:
    clips = {split: {d: 0 for d in layout.DEVICES} for split in ('train', 'test')}
    pairs = {split: {d: 0 for d in layout.DEVICES[1:]} for split in ('train', 'test')}
    locations = {'train': set(), 'test': set()}
    for s in segments:
        locations[s.split].add(f'{s.city}-{s.location}')
        for d in s.devices:
            clips[s.split][d] += 1
            if d != 'a' and 'a' in s.devices:
                pairs[s.split][d] += 1
    return {
        'preset': preset_name, 'seed': seed, 'scale': scale,
        'generator_version': GENERATOR_VERSION,
        'clips': clips, 'pairs_with_a': pairs,
        'segments': {split: sum(s.split == split for s in segments) for split in clips},
        'locations': {split: len(v) for split, v in locations.items()},
        'cities': sorted({s.city for s in segments}),
    }


def _write_json(path: str, obj) -> None:
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write('\n')


def _prepare_output(out: str, keep: set[str]) -> None:
    """Creates out/audio; removes wavs left by an earlier synthetic build (never foreign files)."""
    audio_dir = os.path.join(out, 'audio')
    os.makedirs(audio_dir, exist_ok=True)
    stale = [f for f in os.listdir(audio_dir) if f'audio/{f}' not in keep]
    if not stale:
        return
    if not os.path.exists(os.path.join(out, 'summary.json')):
        raise FileExistsError(f'{audio_dir} holds {len(stale)} files from something other than a '
                              'synthetic build; choose an empty --out')
    for f in stale:
        os.remove(os.path.join(audio_dir, f))


def synthesize(out: str, preset: str = 'demo', seed: int = 0, workers: int | None = None,
               scale: float = 1.0) -> dict:
    """Writes the dataset to `out` and returns the summary (also written to out/summary.json)."""
    segments = plan(PRESETS[preset].scaled(scale) if scale != 1.0 else PRESETS[preset])
    device_params = devices.draw_devices(seed)
    _prepare_output(out, {s.filename(d) for s in segments for d in s.devices})
    clips = [c for group in _render_all(segments, seed, out, device_params,
                                        workers or os.cpu_count() or 1) for c in group]
    split_of = {s.filename(d): s.split for s in segments for d in s.devices}
    layout.write_metadata(out, clips, {
        split: [c.filename for c in clips if split_of[c.filename] == split]
        for split in ('train', 'test')})
    _write_json(os.path.join(out, 'devices.json'),
                {name: p.to_json() for name, p in device_params.items()})
    summary = summarize(segments, preset, seed, scale)
    _write_json(os.path.join(out, 'summary.json'), summary)
    return summary


def format_summary(summary: dict) -> str:
    header = 'split  ' + ''.join(f'{d:>6}' for d in layout.DEVICES) + '   total'
    lines = [f"preset={summary['preset']} seed={summary['seed']} scale={summary['scale']}  "
             f"cities={len(summary['cities'])}  locations train/test="
             f"{summary['locations']['train']}/{summary['locations']['test']}", header]
    for split, counts in summary['clips'].items():
        lines.append(f'{split:6} ' + ''.join(f'{counts[d]:6d}' for d in layout.DEVICES)
                     + f'{sum(counts.values()):8d}')
    for split, counts in summary['pairs_with_a'].items():
        lines.append(f'pairs  {split:5}' + ''.join(f'{counts[d]:6d}' for d in layout.DEVICES[1:])
                     + '   (A, X) per device X')
    return '\n'.join(lines)


FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defined when run as a program only, so that importing the library defines no flags."""
    flags.DEFINE_string('out', None, 'Output folder (wavs of an earlier synthetic build there are '
                        'replaced).', required=True)
    flags.DEFINE_enum('preset', 'demo', sorted(PRESETS), 'Dataset size.')
    flags.DEFINE_integer('seed', 0, 'Seed of scenes, locations and device parameters.')
    flags.DEFINE_float('scale', 1.0, "Multiplies the preset's segment counts.")
    flags.DEFINE_integer('workers', None, 'Processes (default: all cores); the output does not '
                         'depend on it.')


def main(argv):
    from ascjax import logs
    logs.quiet()   # orbax/TFDS/JAX INFO lines only with --verbosity=1
    del argv
    start = time.time()
    summary = synthesize(FLAGS.out, FLAGS.preset, FLAGS.seed, FLAGS.workers, FLAGS.scale)
    print(format_summary(summary))
    print(f'wrote {FLAGS.out} in {time.time() - start:.1f} s')


if __name__ == '__main__':
    define_flags()
    app.run(main)
