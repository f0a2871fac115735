"""Sources: random access to the examples of one split, without TensorFlow.

A source's `load(indices)` returns a dict of stacked numpy arrays: the signal (`spectrogram`
[F, T] or `audio` [samples] per example), any `extras` it declares (a pair's target, a teacher's
logits) and the int32 METADATA. `ascjax.data.pipeline` batches them with tf.data; the training
loop can also hold a whole source in device memory (`ascjax.train.feed`).
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ascjax.data import audio, layout

METADATA = ('label', 'device', 'city', 'pair', 'index')


class Source(Protocol):
    """Random access to one split: `load(indices)` returns a dict of stacked numpy arrays.

    A source may declare `extras = {key: per-example shape}`: further float32 arrays that `load`
    returns and the batches carry (a pair's target spectrogram, a teacher's logits).
    """
    signal: str                       # 'spectrogram' ([F, T] per example) or 'audio' ([samples])
    signal_shape: tuple[int, ...]

    def __len__(self) -> int: ...

    def load(self, indices: np.ndarray) -> dict[str, np.ndarray]: ...

    def metadata(self) -> dict[str, np.ndarray]: ...    # METADATA of every example, in order

    def filenames(self) -> list[str]: ...                # the clips' filenames, in order


def pair_id(pair_key: str | bytes) -> int:
    """A stable 31-bit id of a pair key, equal for every device's recording of one segment."""
    if isinstance(pair_key, str):
        pair_key = pair_key.encode()
    return zlib.crc32(pair_key) & 0x7FFFFFFF


def _metadata(index: int, label: int, device: str, city: str, pair: str | bytes) -> dict:
    return dict(label=label, device=layout.device_id(device),
                city=layout.CITIES.index(city) if city in layout.CITIES else layout.UNKNOWN,
                pair=pair_id(pair), index=index)


def _stack(examples: Sequence[dict], signal: str) -> dict[str, np.ndarray]:
    batch = {k: np.asarray([e[k] for e in examples], np.int32) for k in METADATA}
    batch[signal] = np.stack([e[signal] for e in examples]).astype(np.float32, copy=False)
    return batch


@dataclasses.dataclass
class TfdsSource:
    """A split of the TFDS-built dataset (array_record), e.g. `tau.prepare(...)`'s builder."""
    data_source: object   # tfds ArrayRecordDataSource
    signal: str
    signal_shape: tuple[int, ...]

    @classmethod
    def from_builder(cls, builder, split: str) -> TfdsSource:
        signal = 'audio' if builder.builder_config.store == 'audio' else 'spectrogram'
        shape = tuple(builder.info.features[signal].shape)
        return cls(builder.as_data_source(split=split), signal, shape)

    def __len__(self) -> int:
        return len(self.data_source)

    def filenames(self, chunk: int = 256) -> list[str]:
        """The clips' filenames (relative to the dataset root), in order."""
        return [r['filename'].decode() for i in range(0, len(self), chunk)
                for r in self.data_source.__getitems__(list(range(i, min(i + chunk, len(self)))))]

    def metadata(self, chunk: int = 256) -> dict[str, np.ndarray]:
        """label, device, city, pair and index of every example, in order (signals dropped)."""
        parts = [self.load(np.arange(i, min(i + chunk, len(self))))
                 for i in range(0, len(self), chunk)]
        return {k: np.concatenate([p[k] for p in parts]) for k in METADATA}

    def load(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        records = self.data_source.__getitems__([int(i) for i in indices])
        return _stack([{self.signal: r[self.signal],
                        **_metadata(int(i), r['label'], r['device'].decode(), r['city'].decode(),
                                    r['pair'])} for i, r in zip(indices, records)], self.signal)


@dataclasses.dataclass
class WavSource:
    """A split read straight from the wav files of a TAU-layout directory (no cache)."""
    root: str
    clips: list[layout.Clip]
    sample_rate: int
    num_samples: int
    signal: str = 'audio'

    @classmethod
    def open(cls, root: str, split: str, sample_rate: int = layout.SAMPLE_RATE,
             clip_seconds: float = layout.CLIP_SECONDS) -> WavSource:
        clips = layout.read_split(root, split)
        if split != 'train':        # an evaluation split must share nothing with training
            layout.check_disjoint(root, {'train': layout.read_split(root, 'train',
                                                                     check_audio=False),
                                         split: clips})
        return cls(root, clips, sample_rate, int(round(clip_seconds * sample_rate)))

    @property
    def signal_shape(self) -> tuple[int, ...]:
        return (self.num_samples,)

    def __len__(self) -> int:
        return len(self.clips)

    def filenames(self) -> list[str]:
        return [c.filename for c in self.clips]

    def metadata(self) -> dict[str, np.ndarray]:
        """label, device, city, pair and index of every example, in order."""
        rows = [_metadata(i, c.label, c.device, c.city, c.pair) for i, c in enumerate(self.clips)]
        return {k: np.asarray([r[k] for r in rows], np.int32) for k in METADATA}

    def load(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        examples = []
        for i in indices:
            clip = self.clips[int(i)]
            wave = audio.load(os.path.join(self.root, clip.filename), self.sample_rate,
                              self.num_samples)
            examples.append({'audio': wave.samples,
                             **_metadata(int(i), clip.label, clip.device, clip.city, clip.pair)})
        return _stack(examples, 'audio')


def pairs(metadata: dict[str, np.ndarray], source_device: str = 'a') -> np.ndarray:
    """[P, 2] (index of the `source_device` recording, index of device X's recording) for every
    segment of one split recorded by both, sorted by (segment, X).

    Recordings of one segment share the pair key (TAU's filename stem without the device); they are
    grouped by (pair id, scene, city) so that a 31-bit id collision cannot join two segments. Only
    one split is ever looked at, so no pair crosses splits.
    """
    src = layout.device_id(source_device)
    groups: dict[tuple[int, int, int], dict[int, int]] = {}
    for i, key in enumerate(zip(metadata['pair'].tolist(), metadata['label'].tolist(),
                                metadata['city'].tolist())):
        by_device = groups.setdefault(key, {})
        device = int(metadata['device'][i])
        if device in by_device:
            raise ValueError(f'examples {by_device[device]} and {i} are both device '
                             f'{layout.EVAL_DEVICES[device]} recordings of one segment')
        by_device[device] = int(metadata['index'][i])
    out = [(d[src], d[x]) for key, d in sorted(groups.items()) if src in d
           for x in sorted(d) if x != src]
    return np.asarray(out, np.int64).reshape(-1, 2)


@dataclasses.dataclass
class PairSource:
    """Paired recordings of one split as a Source: example i is pairs[i] = (A, X).

    `spectrogram` is the source-device recording, `target` device X's; `device` is X's id (the
    translation target), `index` the pair's position; label, city and pair are the segment's.
    """
    base: Source
    pairs: np.ndarray
    target_devices: np.ndarray     # [P] device id of each pair's X

    def __post_init__(self):
        if self.base.signal != 'spectrogram':
            raise ValueError('paired batches need cached log-mels (data.features_on=host)')
        self.signal, self.signal_shape = self.base.signal, self.base.signal_shape
        self.extras = {'target': self.signal_shape}

    @classmethod
    def of(cls, base: Source, source_device: str = 'a') -> PairSource:
        meta = base.metadata()
        p = pairs(meta, source_device)
        return cls(base, p, meta['device'][p[:, 1]])

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        a = self.base.load(self.pairs[indices, 0])
        x = self.base.load(self.pairs[indices, 1])
        return {self.signal: a[self.signal], 'target': x[self.signal], 'device': x['device'],
                'label': a['label'], 'city': a['city'], 'pair': a['pair'],
                'index': np.asarray(indices, np.int32)}


def ordered_batches(source: Source, global_batch_size: int, process_index: int = 0,
                    process_count: int = 1):
    """This host's slice of every example once, in order, in numpy: the last batch is padded by
    repeating the final example and `mask` (float32) is 0 on the padding. Signals get a channel
    axis. The batches of `pipeline.eval_batches`, without TensorFlow."""
    if global_batch_size % process_count:
        raise ValueError(f'global batch size {global_batch_size} is not divisible by the '
                         f'{process_count} processes')
    local = global_batch_size // process_count
    n = len(source)
    for start in range(0, n, global_batch_size):
        positions = start + process_index * local + np.arange(local)
        batch = source.load(np.minimum(positions, n - 1))
        batch = {k: v[..., None] if k in ('spectrogram', 'target') else v
                 for k, v in batch.items()}
        batch['mask'] = (positions < n).astype(np.float32)
        yield batch
