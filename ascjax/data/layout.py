"""The on-disk layout of TAU Urban Acoustic Scenes 2020 Mobile (development set).

One definition of the layout, used by the TFDS builder, the input pipeline, the synthetic generator
(which writes the same layout) and the test fixtures. See REFERENCE.md §6:

  audio/[scene]-[city]-[location]-[segment]-[device].wav   44.1 kHz, 24-bit, mono, 10 s
  meta.csv                          filename  scene_label  identifier  source_label   (TAB, header)
  evaluation_setup/fold1_train.csv      filename  scene_label                        (TAB, header)
  evaluation_setup/fold1_evaluate.csv   filename  scene_label                        (TAB, header)
  evaluation_setup/fold1_test.csv       filename                                     (TAB, header)

Dataset sizes are never hard-coded: they are the CSV row counts.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterable, Sequence

# Fixed alphabetical class order (SP4ASC/CPJKU), so label ids agree with the PyTorch references.
SCENES = (
    'airport', 'bus', 'metro', 'metro_station', 'park', 'public_square', 'shopping_mall',
    'street_pedestrian', 'street_traffic', 'tram',
)
# Devices of the development set; the 2021 evaluation set adds 'd' and 's7'..'s11', and anything
# else is accepted as an unknown device (id -1 in batches).
DEVICES = ('a', 'b', 'c', 's1', 's2', 's3', 's4', 's5', 's6')
EVAL_DEVICES = DEVICES + ('d', 's7', 's8', 's9', 's10', 's11')
# The ten cities of the development set; other cities (the 2021 evaluation set) get id UNKNOWN.
CITIES = ('barcelona', 'helsinki', 'lisbon', 'london', 'lyon', 'milan', 'paris', 'prague',
          'stockholm', 'vienna')
UNKNOWN = -1

SAMPLE_RATE = 44_100
CLIP_SECONDS = 10.0

META_COLUMNS = ('filename', 'scene_label', 'identifier', 'source_label')
SPLIT_FILES = {
    'train': ('fold1_train.csv', ('filename', 'scene_label')),
    'test': ('fold1_evaluate.csv', ('filename', 'scene_label')),
    'test_unlabelled': ('fold1_test.csv', ('filename',)),
}


class LayoutError(ValueError):
    """A dataset directory that does not follow the TAU layout; the message names the file."""


@dataclasses.dataclass(frozen=True)
class Clip:
    """One row of a split, joined with meta.csv."""
    filename: str      # relative to the dataset root, e.g. 'audio/airport-barcelona-0-0-a.wav'
    scene: str
    device: str
    city: str
    location: str      # 'city-locationid', TAU's `identifier`
    pair: str          # filename stem without the device suffix: joins recordings of one segment

    @property
    def label(self) -> int:
        return SCENES.index(self.scene)

    @property
    def device_id(self) -> int:
        return device_id(self.device)

    @property
    def city_id(self) -> int:
        return CITIES.index(self.city) if self.city in CITIES else UNKNOWN


def device_id(device: str) -> int:
    """Index in EVAL_DEVICES (a=0 .. s6=8, then the evaluation-only devices), else UNKNOWN."""
    return EVAL_DEVICES.index(device) if device in EVAL_DEVICES else UNKNOWN


def parse_filename(filename: str) -> dict[str, str]:
    """Splits `audio/scene-city-location-segment-device.wav` into its parts."""
    stem = os.path.splitext(os.path.basename(filename))[0]
    parts = stem.split('-')
    if len(parts) != 5:
        raise LayoutError(f'{filename!r}: expected [scene]-[city]-[location]-[segment]-[device].wav')
    scene, city, location, _, device = parts
    return dict(scene=scene, city=city, location=f'{city}-{location}', device=device,
                pair=stem[: -len(device) - 1])


def read_tsv(path: str, columns: Sequence[str]) -> list[dict[str, str]]:
    """Reads a TAB-separated file with a header row; checks its columns and row widths."""
    if not os.path.exists(path):
        raise LayoutError(f'{path}: missing (expected TAB-separated columns {list(columns)})')
    with open(path, newline='') as f:
        reader = csv.reader(f, delimiter='\t')
        header = next(reader, None)
        if header is None or tuple(header[: len(columns)]) != tuple(columns):
            raise LayoutError(f'{path}: header {header} does not start with {list(columns)}')
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < len(columns):
                raise LayoutError(f'{path}:{line}: {len(row)} columns, expected {len(columns)}')
            rows.append(dict(zip(header, row)))
    return rows


def check_disjoint(root: str, splits: dict[str, Sequence[Clip]]) -> None:
    """Raises LayoutError, naming both CSVs, if a clip or a recorded segment (pair id: the same
    10-s segment by other devices) is in the train split and in an evaluation split: a leak that
    inflates every result."""
    train = splits.get('train', ())
    files = {c.filename for c in train}
    segments = {c.pair for c in train}
    csv_path = lambda split: os.path.join(root, 'evaluation_setup', SPLIT_FILES[split][0])
    for split, clips in splits.items():
        if split == 'train':
            continue
        both = sorted(c.filename for c in clips if c.filename in files)
        shared = sorted(c.filename for c in clips if c.pair in segments)
        if both or shared:
            what = (f'{len(both)} clip(s) listed in both' if both else
                    f'{len(shared)} clip(s) recording a segment that is also in')
            raise LayoutError(f'{csv_path("train")} and {csv_path(split)}: {what} train and '
                              f'{split}, e.g. {(both or shared)[:3]}')


def read_split(root: str, split: str, *, check_audio: bool = True) -> list[Clip]:
    """Rows of one split (train, test or test_unlabelled) joined with meta.csv, in CSV order.

    Every inconsistency raises LayoutError naming the file: a row missing from meta.csv, a label
    that disagrees with meta.csv, an unknown scene, or (with check_audio) a listed wav that is absent.
    """
    if split not in SPLIT_FILES:
        raise LayoutError(f'unknown split {split!r}; expected one of {sorted(SPLIT_FILES)}')
    csv_name, columns = SPLIT_FILES[split]
    split_path = os.path.join(root, 'evaluation_setup', csv_name)
    meta_path = os.path.join(root, 'meta.csv')
    meta = {row['filename']: row for row in read_tsv(meta_path, META_COLUMNS)}
    clips, first_line = [], {}
    for line, row in enumerate(read_tsv(split_path, columns), start=2):
        name = row['filename']
        if name in first_line:
            raise LayoutError(f'{split_path}:{line}: {name!r} is listed again (first on line '
                              f'{first_line[name]}); each clip must appear once')
        first_line[name] = line
        if name not in meta:
            raise LayoutError(f'{split_path}: {name!r} has no row in {meta_path}')
        m = meta[name]
        scene = row.get('scene_label', m['scene_label'])
        if scene not in SCENES:
            raise LayoutError(f'{split_path}: {name!r} has unknown scene label {scene!r}; '
                              f'expected one of {SCENES}')
        if scene != m['scene_label']:
            raise LayoutError(f'{split_path}: {name!r} is {scene!r} but {meta_path} says '
                              f'{m["scene_label"]!r}')
        if check_audio and not os.path.exists(os.path.join(root, name)):
            raise LayoutError(f'{split_path}: {name!r} is listed but {os.path.join(root, name)} '
                              'does not exist')
        parts = parse_filename(name)
        clips.append(Clip(filename=name, scene=scene, device=m['source_label'],
                          city=parts['city'], location=m['identifier'], pair=parts['pair']))
    return clips


def clip_filename(scene: str, city: str, location: int, segment: int, device: str) -> str:
    return f'audio/{scene}-{city}-{location}-{segment}-{device}.wav'


def _write_tsv(path: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f, delimiter='\t', lineterminator='\n')
        writer.writerow(header)
        writer.writerows(rows)


def write_metadata(root: str, clips: Sequence[Clip], splits: dict[str, Sequence[str]]) -> None:
    """Writes meta.csv and evaluation_setup/fold1_*.csv for clips whose wavs are in root/audio.

    `splits` maps 'train' and 'test' to filenames; the unlabelled test list mirrors 'test'.
    """
    by_name = {c.filename: c for c in clips}
    _write_tsv(os.path.join(root, 'meta.csv'), META_COLUMNS,
               [(c.filename, c.scene, c.location, c.device) for c in clips])
    setup = os.path.join(root, 'evaluation_setup')
    _write_tsv(os.path.join(setup, 'fold1_train.csv'), SPLIT_FILES['train'][1],
               [(n, by_name[n].scene) for n in splits['train']])
    _write_tsv(os.path.join(setup, 'fold1_evaluate.csv'), SPLIT_FILES['test'][1],
               [(n, by_name[n].scene) for n in splits['test']])
    _write_tsv(os.path.join(setup, 'fold1_test.csv'), SPLIT_FILES['test_unlabelled'][1],
               [(n,) for n in splits['test']])
