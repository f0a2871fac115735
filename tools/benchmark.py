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
flags.DEFINE_list('only', ['pipeline', 'models', 'seeds', 'translator'], 'Sections to run.')
flags.DEFINE_integer('repeats', 3, 'Timed repetitions per measurement (after warm-up).')
flags.DEFINE_string('data_dir', None, 'Dataset cache (default $ASCJAX_DATA).')
flags.DEFINE_bool('slow', False, 'Also time the Mod-8 train step with grouped XLA convolutions '
                  '(minutes per step on CPU).')
FLAGS = flags.FLAGS


def environment() -> dict:
    import jax
    versions = {'python': platform.python_version(), 'jax': jax.__version__}
    for name in ('flax', 'optax', 'tensorflow', 'torch'):
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
        stats = timed(lambda: next(it), max(repeats, 10), warmup=2)
        records.append({
            'name': f'pipeline: {name}', 'batch_size': batch_size, 'dtype': 'float32',
            'input_shape': [fe.n_mels, fe.num_frames(441_000), 1],
            'threads': tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count(),
            **stats, 'clips_per_s': batch_size / stats['median_s']})
    return records


def _train_step_fn(model, batch_size: int, shape: tuple[int, ...]):
    """A jitted SGD step of `model` (cross-entropy, BN statistics updated, dropout on)."""
    import jax
    import jax.numpy as jnp
    import optax
    x = jax.random.normal(jax.random.PRNGKey(1), (batch_size, *shape), jnp.float32)
    y = jnp.arange(batch_size) % model.num_classes
    variables = jax.jit(lambda: model.init(jax.random.PRNGKey(0), x[:1]))()
    tx = optax.sgd(0.01, momentum=0.9)
    state = (variables['params'], variables['batch_stats'], tx.init(variables['params']))

    def step(state, x, y):
        params, stats, opt = state

        def loss_fn(p):
            logits, updates = model.apply({'params': p, 'batch_stats': stats}, x, train=True,
                                          mutable=['batch_stats'],
                                          rngs={'dropout': jax.random.PRNGKey(2)})
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates
        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        delta, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, delta), updates['batch_stats'], opt), loss
    return jax.jit(step, donate_argnums=(0,)), state, x, y


def bench_models(repeats: int) -> list[dict]:
    """Train step (B=32) and inference (B=1) of Mod-1 / Mod-8, and single layers, per conv_impl."""
    import jax
    from ascjax import models
    shape = (256, 431, 1)
    records = []
    cases = [('bcresnet_mod', 1, 'shift'), ('bcresnet_mod', 1, 'xla'), ('bcresnet_mod', 8, 'shift')]
    if FLAGS.slow:
        cases.append(('bcresnet_mod', 8, 'xla'))
    for name, tau, impl in cases:
        model = models.create_model(name, tau=tau, norm='resnorm', norm_positions=models.POSITIONS,
                                    conv_impl=impl)
        label = f'Mod-{tau}+ResNorm conv_impl={impl}'
        step, state, x, y = _train_step_fn(model, 32, shape)
        holder = {'state': state}

        def run():
            holder['state'], loss = step(holder['state'], x, y)
            loss.block_until_ready()
        start = time.perf_counter()
        run()
        compile_s = time.perf_counter() - start
        stats = timed(run, repeats, warmup=1)
        records.append({'name': f'train step: {label}', 'batch_size': 32, 'dtype': 'float32',
                        'input_shape': list(shape), 'first_call_s': compile_s, **stats,
                        'clips_per_s': 32 / stats['median_s'],
                        'steps_per_s': 1 / stats['median_s']})
        params, batch_stats, _ = holder['state']
        forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
        x1 = x[:1]
        variables = {'params': params, 'batch_stats': batch_stats}
        stats = timed(lambda: forward(variables, x1).block_until_ready(), max(repeats, 20), 2)
        records.append({'name': f'inference: {label}', 'batch_size': 1, 'dtype': 'float32',
                        'input_shape': list(shape), **stats, 'clips_per_s': 1 / stats['median_s']})
    records += bench_layers(repeats)
    return records


def bench_layers(repeats: int) -> list[dict]:
    """Forward+backward of single depthwise / 1x1 layers at Mod-8 stage-1 shapes, per impl."""
    import jax
    import jax.numpy as jnp
    from flax import linen as nn
    from ascjax.models import layers as L
    x = jax.random.normal(jax.random.PRNGKey(0), (32, 128, 216, 80))
    cases = {
        'frequency depthwise 3x1': lambda impl: L.depthwise_conv(
            80, (3, 1), padding=((1, 1), (0, 0)), conv_impl=impl),
        'temporal depthwise 1x3 (dilation 2)': lambda impl: L.depthwise_conv(
            80, (1, 3), padding=((0, 0), (2, 2)), dilation=(1, 2), conv_impl=impl),
        'pointwise 1x1': lambda impl: L.pointwise_conv(80, conv_impl=impl),
    }
    records = []
    for name, make in cases.items():
        for impl in ('shift', 'xla'):
            class Layer(nn.Module):
                @nn.compact
                def __call__(self, x):
                    return make(impl)(x)
            layer = Layer()
            params = layer.init(jax.random.PRNGKey(0), x[:1])
            grad = jax.jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, x) ** 2)))
            stats = timed(lambda: jax.block_until_ready(grad(params, x)), repeats, warmup=1)
            records.append({'name': f'layer fwd+bwd: {name} conv_impl={impl}', 'batch_size': 32,
                            'dtype': 'float32', 'input_shape': list(x.shape[1:]), **stats})
    return records


def _time_classifier_step(k: int, repeats: int, translate=None) -> dict:
    """The real train step of Mod-1 + ResNorm, K seeds vmapped, B = 32, 256 x 431."""
    import jax
    import numpy as np
    from experiments.configs import paper
    from ascjax import features, models
    from ascjax.train import mesh as mesh_lib, optim, state as state_lib, step as step_lib
    config = paper.get_config('mod1_resnorm')
    config.num_seeds, config.train.batch_size = k, 32
    mesh = mesh_lib.data_mesh()
    model = models.from_config(config.model)
    shape = features.input_shape(config.data)
    params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                               np.zeros((1, *shape), np.float32)))['params']
    tx = optim.optimizer(config.train, params, 100)
    state = state_lib.create(model, tx, shape, config.seed, k, mesh)
    shardings = jax.tree.map(lambda a: a.sharding, state)
    step = step_lib.make_train_step(model, tx, config, optim.schedule(config.train, 100),
                                    shardings, mesh, translate)
    rng = np.random.default_rng(0)
    batch = mesh_lib.global_batch({
        'spectrogram': rng.standard_normal((32, *shape)).astype(np.float32),
        'label': (np.arange(32) % 10).astype(np.int32),
        'device': (np.arange(32) % 3).astype(np.int32)}, mesh)
    holder = {'state': state}

    def run():
        holder['state'], metrics = step(holder['state'], batch)
        jax.block_until_ready(metrics)
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    return {'batch_size': 32, 'dtype': 'float32', 'input_shape': list(shape), 'seeds': k,
            'first_call_s': first, **timed(run, repeats, warmup=1)}


def bench_seeds(repeats: int) -> list[dict]:
    """Mod-1 + ResNorm train step with K = 1 and K = 8 seeds vmapped (B = 32 each)."""
    records = []
    for k in (1, 8):
        r = _time_classifier_step(k, repeats)
        records.append({'name': f'seed-parallel train step: Mod-1+ResNorm, K={k} seeds', **r,
                        'clips_per_s': k * 32 / r['median_s']})
    return records


def bench_translator(repeats: int) -> list[dict]:
    """Mod-1 + ResNorm train step (K = 1, B = 32) without and with translator augmentation
    (p = 0.5; the whole batch is translated, then A examples are picked), for two U-Net widths."""
    import jax
    import numpy as np
    from ascjax.translator import augment, model as translator_model
    records = [{'name': 'train step: Mod-1+ResNorm, no translator',
                **_time_classifier_step(1, repeats)}]
    for width in (8, 16):
        unet = translator_model.UNet(features=width, depth=3)
        variables = jax.jit(lambda: unet.init(jax.random.PRNGKey(0), np.zeros((1, 256, 431, 1)),
                                              np.zeros((1,), np.int32), train=False))()
        apply = lambda x, target, batch, v=variables, u=unet: u.apply(v, x, target, train=False)
        translate = augment.make_translate(apply, [1, 2, 3, 4, 5], 0.5)
        r = _time_classifier_step(1, repeats, translate)
        records.append({'name': f'train step: Mod-1+ResNorm + translator (U-Net width {width})',
                        **r, 'overhead_vs_plain': r['median_s'] / records[0]['median_s']})
    for r in records:
        r['clips_per_s'] = 32 / r['median_s']
    return records


SECTIONS = {'pipeline': bench_pipeline, 'models': bench_models, 'seeds': bench_seeds,
            'translator': bench_translator}


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
    os.makedirs(os.path.dirname(FLAGS.out) or '.', exist_ok=True)
    for section in FLAGS.only:
        records += SECTIONS[section](FLAGS.repeats)
        with open(FLAGS.out, 'w') as f:      # after every section: a cut-off run keeps its part
            json.dump({'environment': env, 'records': records}, f, indent=2)
    table = markdown(env, records)
    with open(os.path.splitext(FLAGS.out)[0] + '.md', 'w') as f:
        f.write(table)
    print(table)


if __name__ == '__main__':
    app.run(main)
