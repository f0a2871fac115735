"""Benchmarks: `make bench` -> bench/results.json and bench/results.md.

Every record carries the host, backend, device count, versions, dtype, batch size, input shape and
thread count, and min / median / p90 over repeated runs after warm-up (`block_until_ready` on every
timed JAX call). Speed targets live here, never in tests.

    python tools/benchmark.py --out=bench/results.json [--only=pipeline,models] [--repeats=N]
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from collections.abc import Callable

from absl import app, flags

flags.DEFINE_string('out', 'bench/results.json', 'JSON output; a Markdown table is written beside.')
flags.DEFINE_list('only', ['pipeline', 'models'], 'Sections to run.')
flags.DEFINE_integer('repeats', 5, 'Timed repetitions per measurement (after warm-up).')
flags.DEFINE_string('data_dir', None, 'Dataset cache (default $ASCJAX_DATA).')
FLAGS = flags.FLAGS


def environment() -> dict:
    import jax
    import tensorflow as tf
    versions = {'python': platform.python_version(), 'jax': jax.__version__,
                'tensorflow': tf.__version__}
    for name in ('flax', 'optax', 'torch'):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return {'host': socket.gethostname(), 'machine': platform.machine(),
            'cpu_count': os.cpu_count(), 'backend': jax.default_backend(),
            'device_count': jax.device_count(), 'devices': str(jax.devices()[0].device_kind),
            'versions': versions}


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> dict:
    """min / median / p90 seconds of fn() over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return {'min_s': times[0], 'median_s': times[len(times) // 2],
            'p90_s': times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))],
            'repeats': repeats}


def bench_pipeline(repeats: int) -> list[dict]:
    """Clips/s of the input pipeline on the synthetic demo set: cold (wav) and cached (TFDS)."""
    import tensorflow as tf
    from ascjax import features
    from ascjax.data import datasets, pipeline
    builder = datasets.prepare('synthetic', data_dir=FLAGS.data_dir, preset='demo')
    root = datasets.manual_dir_for('synthetic', data_dir=FLAGS.data_dir or
                                   datasets.default_data_dir(), preset='demo')
    batch_size = 32
    fe = features.FrontEnd()
    sources = {
        'cached features (TFDS array_record)': (pipeline.TfdsSource.from_builder(builder, 'train'),
                                                None),
        'cold: wav decode + TF log-mel': (pipeline.WavSource.open(root, 'train'), fe),
    }
    records = []
    for name, (source, front_end) in sources.items():
        it = iter(pipeline.train_batches(source, global_batch_size=batch_size, seed=0,
                                         front_end=front_end).as_numpy_iterator())
        stats = timed(lambda: next(it), repeats, warmup=2)
        records.append({
            'name': f'pipeline: {name}', 'batch_size': batch_size, 'dtype': 'float32',
            'input_shape': [fe.n_mels, fe.num_frames(441_000), 1],
            'threads': tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count(),
            **stats, 'clips_per_s': batch_size / stats['median_s']})
    return records


SECTIONS = {'pipeline': bench_pipeline}


def markdown(env: dict, records: list[dict]) -> str:
    lines = [f'Host {env["host"]} ({env["machine"]}, {env["cpu_count"]} CPUs), backend '
             f'{env["backend"]} x{env["device_count"]}, ' +
             ', '.join(f'{k} {v}' for k, v in env['versions'].items()), '',
             '| benchmark | batch | median ms | p90 ms | clips/s |', '|---|---|---|---|---|']
    for r in records:
        clips = r.get('clips_per_s')
        lines.append(f'| {r["name"]} | {r.get("batch_size", "")} | {1e3 * r["median_s"]:.1f} | '
                     f'{1e3 * r["p90_s"]:.1f} | {"" if clips is None else f"{clips:.1f}"} |')
    return '\n'.join(lines) + '\n'


def main(argv):
    del argv
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = environment()
    records = []
    for section in FLAGS.only:
        records += SECTIONS[section](FLAGS.repeats)
    os.makedirs(os.path.dirname(FLAGS.out) or '.', exist_ok=True)
    with open(FLAGS.out, 'w') as f:
        json.dump({'environment': env, 'records': records}, f, indent=2)
    table = markdown(env, records)
    with open(os.path.splitext(FLAGS.out)[0] + '.md', 'w') as f:
        f.write(table)
    print(table)


if __name__ == '__main__':
    app.run(main)
