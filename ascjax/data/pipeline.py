"""tf.data input pipeline: per-host batches of log-mel spectrograms (or waveforms) with labels.

    step -> global example indices (stateless shuffle) -> this host's slice -> load (random access:
    feature cache built once by the TFDS builder, or wav files decoded with soundfile) -> log-mel on
    the host (TF) when the source holds audio and features are not computed on the device -> prefetch

The order of examples is a pure function of (seed, step): epoch e is the permutation
`tf.random.experimental.index_shuffle(., seed=(seed, e))` of the split, cut into
`len // global_batch` batches (the remainder of each epoch is dropped for training). Starting at any
step therefore needs no replay, and every host computes the same global batch and takes its own
contiguous slice, which `jax.make_array_from_process_local_data` reassembles. A tf.data shuffle
buffer cannot offer that: its state after N steps can only be rebuilt by replaying N steps.

Evaluation batches visit every example exactly once, in order; the last batch is padded by repeating
the final example and carries `mask` = 0 on the padding, so no example is dropped or double-counted.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import tensorflow as tf

from ascjax import features
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
        return cls(root, layout.read_split(root, split), sample_rate,
                   int(round(clip_seconds * sample_rate)))

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


# ------------------------------------------------------------------------------------------------
# Index streams: which examples make up global step `step`, and which of them this host loads.

def host_slice(global_batch_size: int, process_index: int, process_count: int) -> tuple[int, int]:
    if global_batch_size % process_count:
        raise ValueError(f'global batch size {global_batch_size} is not divisible by the '
                         f'{process_count} processes')
    local = global_batch_size // process_count
    return process_index * local, (process_index + 1) * local


def train_indices(step, num_examples: int, global_batch_size: int, seed: int, lo: int, hi: int):
    """Indices of this host's slice [lo, hi) of global training batch `step` (a TF function)."""
    steps_per_epoch = num_examples // global_batch_size
    step = tf.cast(step, tf.int64)
    epoch, within = step // steps_per_epoch, step % steps_per_epoch
    positions = within * global_batch_size + tf.range(lo, hi, dtype=tf.int64)
    key = tf.stack([tf.constant(seed, tf.int64), epoch])
    return tf.random.experimental.index_shuffle(positions, key, tf.constant(num_examples - 1,
                                                                            tf.int64))


def _load_fn(source: Source, batch_size: int):
    """A tf.data map from an index vector to a batch dict, through `source.load` on the host."""
    shapes = {source.signal: tuple(source.signal_shape), **getattr(source, 'extras', {})}
    keys = tuple(shapes) + METADATA
    dtypes = (tf.float32,) * len(shapes) + (tf.int32,) * len(METADATA)

    def load(indices):
        batch = source.load(indices)
        return tuple(batch[k] for k in keys)

    def fn(indices):
        values = tf.numpy_function(load, [indices], dtypes, stateful=False)
        batch = dict(zip(keys, values))
        for k, shape in shapes.items():
            batch[k].set_shape((batch_size,) + tuple(shape))
        for k in METADATA:
            batch[k].set_shape((batch_size,))
        return batch
    return fn


def _finish(ds: tf.data.Dataset, source: Source, front_end: features.FrontEnd | None):
    """Log-mel on the host if asked (audio sources only), a channel axis, and prefetching."""
    if front_end is not None and source.signal == 'audio':
        def to_logmel(batch):
            batch = dict(batch)
            batch['spectrogram'] = features.logmel_tf(batch.pop('audio'), front_end)
            return batch
        ds = ds.map(to_logmel, num_parallel_calls=tf.data.AUTOTUNE)

    def add_channel(batch):
        return {k: v[..., None] if k in ('spectrogram', 'target') else v for k, v in batch.items()}
    ds = ds.map(add_channel)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def train_batches(source: Source, *, global_batch_size: int, seed: int, start_step: int = 0,
                  num_steps: int | None = None, process_index: int = 0, process_count: int = 1,
                  front_end: features.FrontEnd | None = None) -> tf.data.Dataset:
    """This host's training batches for steps start_step, start_step + 1, ... (endless by default).

    Each batch: `spectrogram` [b, F, T, 1] float32 (or `audio` [b, samples] when front_end is None
    and the source holds audio: features then run on the device), and int32 `label`, `device`,
    `city`, `pair`, `index` (position in the split), where b = global_batch_size / process_count.
    """
    if len(source) < global_batch_size:
        raise ValueError(f'the split has {len(source)} examples, fewer than one global batch '
                         f'of {global_batch_size}')
    lo, hi = host_slice(global_batch_size, process_index, process_count)
    stop = None if num_steps is None else start_step + num_steps
    steps = tf.data.Dataset.range(start_step, stop if stop is not None else np.iinfo(np.int64).max)
    ds = steps.map(lambda s: train_indices(s, len(source), global_batch_size, seed, lo, hi))
    ds = ds.map(_load_fn(source, hi - lo), num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(ds, source, front_end)


def eval_batches(source: Source, *, global_batch_size: int, process_index: int = 0,
                 process_count: int = 1,
                 front_end: features.FrontEnd | None = None) -> tf.data.Dataset:
    """Every example once, in order; the last batch is padded and `mask` marks real examples."""
    n = len(source)
    lo, hi = host_slice(global_batch_size, process_index, process_count)
    num_batches = -(-n // global_batch_size)
    positions = tf.data.Dataset.range(num_batches).map(
        lambda b: b * global_batch_size + tf.range(lo, hi, dtype=tf.int64))
    load = _load_fn(source, hi - lo)

    def load_masked(pos):
        batch = load(tf.minimum(pos, n - 1))
        batch['mask'] = tf.cast(pos < n, tf.float32)
        return batch
    ds = positions.map(load_masked, num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(ds, source, front_end)
