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

import numpy as np
import tensorflow as tf

from ascjax import features
from ascjax.data.sources import METADATA, Source

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


def _finish(ds: tf.data.Dataset, source: Source, front_end: features.FrontEnd | None,
            threads: int = 0):
    """Log-mel on the host if asked (audio sources only), a channel axis, and prefetching;
    `threads` > 0: a private pool of that many threads, one op thread each (0: tf.data's own)."""
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
    if threads:
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def train_batches(source: Source, *, global_batch_size: int, seed: int, start_step: int = 0,
                  num_steps: int | None = None, process_index: int = 0, process_count: int = 1,
                  front_end: features.FrontEnd | None = None,
                  threads: int = 0) -> tf.data.Dataset:
    """This host's training batches for steps start_step, start_step + 1, ... (endless by default).
    `threads`: tf.data's threads (0: its own pool; `_finish`).

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
    return _finish(ds, source, front_end, threads)


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
