"""Training batches as global arrays on the mesh, from either of two feeds with one order.

- tf.data (default): each host loads its slice of every step's batch through
  `ascjax.data.pipeline` (prefetched on the host) and `mesh.global_batch` assembles it.
- device memory (`config.data.in_memory = True`): the whole training split is loaded once,
  replicated on every device, and each step's batch is gathered there by index. No host work per
  step and no TensorFlow: the order comes from `ascjax.data.order`, which reproduces the tf.data
  pipeline's stateless shuffle exactly, so both feeds give the same batches, bit for bit. For small
  models and datasets that fit the accelerator (a sweep of Mod-1 rows on the synthetic set).

`config.data.in_memory = None` (the default) chooses: device memory on a CPU backend when the
split fits (`in_memory`), tf.data otherwise. Either way the run is the same, bit for bit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import jax
import numpy as np

from ascjax import features
from ascjax.data import order, sources
from ascjax.train import mesh as mesh_lib

CHANNEL_KEYS = ('spectrogram', 'target')   # per-example [F, T] signals that get a channel axis


AUTO_MEMORY_FRACTION = 8   # auto: the split (on every local device) takes <= 1/8 of host memory


def in_memory(config, source, backend: str | None = None,
              host_memory: int | None = None) -> bool:
    """Whether the training split is held in device memory (`config.data.in_memory`; None = auto).

    auto: yes on a CPU backend in one process when the split, replicated on every local device,
    takes at most 1/AUTO_MEMORY_FRACTION of host memory: on a CPU the device memory is host
    memory, and the run then does no host work per step and needs no TensorFlow thread. Speed
    does not decide it: on 2 cores both feeds ran within 10% of the bare step (1.08x from memory,
    1.06x with tf.data; `make bench`, section loop, interleaved, bench/loop.json). Otherwise
    tf.data: an accelerator's memory is the model's, and a split held on every host of a
    multi-host run would be loaded once per host.
    """
    requested = config.data.get('in_memory', None)
    if requested is not None:
        return bool(requested)
    if (backend or jax.default_backend()) != 'cpu' or jax.process_count() > 1:
        return False
    host_memory = host_memory or os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    return split_bytes(source, config) * jax.local_device_count() <= \
        host_memory // AUTO_MEMORY_FRACTION


def name(config, source) -> str:
    """The feed a run of `config` on `source` uses: 'device memory' or 'tf.data'."""
    return 'device memory' if in_memory(config, source) else 'tf.data'


def split_bytes(source, config) -> int:
    """Bytes of `source` as `load_on_device` holds it: float32 log-mels (a waveform source's
    computed from `config.data`'s front end), its extras, and the int32 metadata."""
    signal = (math.prod(source.signal_shape) if source.signal == 'spectrogram'
              else math.prod(features.input_shape(config.data)))
    extras = sum(math.prod(shape) for shape in getattr(source, 'extras', {}).values())
    return len(source) * 4 * (signal + extras + len(sources.METADATA))


def host_threads(requested: int, backend: str | None = None,
                 cpus: int | None = None) -> int:
    """tf.data's threads for training batches (config.data.host_threads; 0 = auto).

    auto: one thread on a CPU backend with at most 4 cores, where tf.data's own pool took CPU
    from the train step (the loop ran 1.29x its bare step on 2 cores, 1.08x with one thread;
    `make bench`, section loop); otherwise tf.data's own pool (0).
    """
    if requested < 0:
        raise ValueError(f'--config.data.host_threads={requested}: must be >= 0 (0 = auto)')
    if requested:
        return requested
    cpus = cpus or os.cpu_count() or 1
    return 1 if (backend or jax.default_backend()) == 'cpu' and cpus <= 4 else 0


def train_batches(source, config, mesh, start_step: int, num_steps: int) -> Iterator[dict]:
    """Global training batches for steps start_step .. start_step + num_steps - 1."""
    if in_memory(config, source):
        return device_batches(load_on_device(source, config, mesh), len(source),
                              config.train.batch_size, config.seed, start_step, num_steps, mesh)
    from ascjax.data import pipeline
    batches = pipeline.train_batches(
        source, global_batch_size=config.train.batch_size, seed=config.seed,
        start_step=start_step, num_steps=num_steps, process_index=jax.process_index(),
        process_count=jax.process_count(),
        threads=host_threads(config.data.get('host_threads', 0)))
    return (mesh_lib.global_batch(local, mesh) for local in batches.as_numpy_iterator())


def load_on_device(source, config, mesh, chunk: int = 64) -> dict[str, jax.Array]:
    """Every example of `source`, as the tf.data pipeline would batch it, replicated on `mesh`.

    A source of waveforms becomes log-mels here (once, on the device, `features.logmel_jax`)."""
    if len(source) < config.train.batch_size:
        raise ValueError(f'the split has {len(source)} examples, fewer than one global batch '
                         f'of {config.train.batch_size}')
    logmel = jax.jit(lambda a: features.logmel_jax(a, features.from_config(config.data)))
    parts = []
    for i in range(0, len(source), chunk):
        part = source.load(np.arange(i, min(i + chunk, len(source))))
        if 'audio' in part:
            part['spectrogram'] = np.asarray(logmel(part.pop('audio')))
        parts.append({k: v[..., None] if k in CHANNEL_KEYS else v for k, v in part.items()})
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    sharding = mesh_lib.replicated(mesh)
    return {k: jax.make_array_from_callback(v.shape, sharding, lambda index, v=v: v[index])
            for k, v in arrays.items()}


def device_batches(data: dict[str, jax.Array], num_examples: int, global_batch_size: int,
                   seed: int, start_step: int, num_steps: int, mesh) -> Iterator[dict]:
    """The batches of `pipeline.train_batches` (same seed, same steps), gathered on the device."""
    gather = jax.jit(lambda d, idx: jax.tree.map(lambda a: a[idx], d),
                     out_shardings=mesh_lib.batch_sharding(mesh))
    replicated = mesh_lib.replicated(mesh)
    for step in range(start_step, start_step + num_steps):
        indices = order.train_indices(step, num_examples, global_batch_size, seed, 0,
                                      global_batch_size)
        indices = indices.astype(np.int32)
        yield gather(data, jax.make_array_from_callback(indices.shape, replicated,
                                                        lambda index, i=indices: i[index]))
