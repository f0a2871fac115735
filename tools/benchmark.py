"""Benchmarks: `make bench` -> bench/results.json and bench/results.md.

Every record carries the host, backend, device count, versions, dtype, batch size, input shape and
thread count, and min / median / p90 over repeated runs after warm-up (`block_until_ready` on every
timed JAX call). Speed targets live here, never in tests.

Section `models` also times the PyTorch reference model (ascjax/torch_reference/model.py, via
tools/bench_torch.py; on CUDA when available) when torch imports: train steps in NCHW,
channels_last and torch.compile, B = 1 latency with and without the log-mel front end, interleaved
with the JAX variants in rounds so that a noisy machine slows all of them alike; JAX records get
`speedup_vs_torch_best` (best torch median / JAX median). On CPU each torch variant is timed at
torch's default thread count and at 1 thread (--torch_threads), with OMP_WAIT_POLICY=PASSIVE
(--torch_omp_passive): on a CPU shared with other work, spinning OpenMP threads made torch up to
100x slower. Section `compile` times the JAX Mod-8 train-step compilation in fresh processes,
without and with the persistent compilation cache.

    python tools/benchmark.py --out=bench/results.json [--only=pipeline,models] [--repeats=N]
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from absl import app, flags

flags.DEFINE_string('out', 'bench/results.json', 'JSON output; a Markdown table is written beside.')
flags.DEFINE_list('only', ['pipeline', 'models', 'seeds', 'translator', 'qat', 'compile', 'loop',
                           'levers'],
                  'Sections to run (compile_child, loop_child: internal, a section\'s fresh '
                  'process).')
flags.DEFINE_list('train_batch_sizes', ['32'], 'In `models`, the train-step batch sizes (the '
                  'first also gets the xla rows and B = 1 inference; tools/gpu_check.sh: 32,256).')
flags.DEFINE_string('loop_row', 'mod1_resnorm', 'In `loop`, the paper row (experiments/configs/'
                    'paper.py) trained; tools/gpu_check.sh: mod8_resnorm.')
flags.DEFINE_integer('repeats', 3, 'Timed repetitions per measurement (after warm-up).')
flags.DEFINE_string('data_dir', None, 'Dataset cache (default $ASCJAX_DATA).')
flags.DEFINE_bool('slow', False, 'Also time the Mod-8 train step with grouped XLA convolutions '
                  '(minutes per step on CPU), single layers per conv_impl and the width-16 '
                  'translator.')
flags.DEFINE_bool('torch', True, 'In `models`, also time the PyTorch reference model (skipped '
                  'when torch does not import).')
flags.DEFINE_bool('torch_compile', True, 'Also time torch.compile(model) train steps.')
flags.DEFINE_float('torch_compile_limit_s', 300, 'Give up (and record why) when the first '
                   'torch.compile train step takes longer than this; 0: no limit.')
flags.DEFINE_list('torch_threads', ['0'], 'torch intra-op thread counts to time each torch '
                  'setting with (0: torch\'s default); on CUDA only the first. Add 1 on a CPU '
                  'shared with other work, where torch\'s OpenMP barriers can make its default '
                  'several times slower.')
flags.DEFINE_bool('torch_omp_passive', True, 'Set OMP_WAIT_POLICY=PASSIVE (unless already '
                  'set; process-wide) before torch loads: with spinning OpenMP threads, B = 1 '
                  'torch inference on a 2-core CPU busy with other work was ~100x slower (1.5 s '
                  'vs 16 ms, Mod-1).')
flags.DEFINE_integer('latency_runs', 100, 'Timed B = 1 inference runs per variant (NeuroBench '
                     'style: median and p90 latency per 10-s clip).')
flags.DEFINE_bool('hugetlb', True, 'Linux: run with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (as the '
                  'Makefile sets it; re-executes this script with it unless GLIBC_TUNABLES already '
                  'says glibc.malloc.hugetlb): malloc backs large buffers with transparent huge '
                  'pages. Same process, so torch runs with it too.')
flags.DEFINE_string('compile_cache_dir', None, 'compile_child only: the persistent compilation '
                    'cache directory.')
FLAGS = flags.FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SCRATCH = {}

TAU20_TRAIN_CLIPS = 13_962   # TAU Urban Acoustic Scenes 2020 Mobile, development train split


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
            'glibc_tunables': os.environ.get('GLIBC_TUNABLES', ''), 'versions': versions}


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> dict:
    """min / median / p90 seconds of fn() over `repeats` calls after `warmup` calls."""
    return _summary(_times(fn, repeats, warmup))


def _times(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """The seconds of each of `repeats` calls of fn(), after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _summary(times: list[float]) -> dict:
    times = sorted(times)
    return {'min_s': times[0], 'median_s': times[len(times) // 2],
            'p90_s': times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))],
            'repeats': len(times)}


def interleaved(fns: dict[str, Callable[[], object]], repeats: int,
                warmup: int = 1, calls_per_turn: int = 1) -> dict[str, dict]:
    """`timed` of every fn, run in `repeats` rounds that call each fn once (the order rotated
    from round to round), so that a noisy neighbour slows every variant alike. With
    `calls_per_turn` > 1 each turn first makes the other calls untimed: a train step that follows
    another framework's step pays for paging its working set back in (a Mod-8 JAX step right after
    a torch step took 11.7 s instead of 7.5 s), which is no part of either's training speed."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times = {name: [] for name in names}
    for r in range(repeats):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            getattr(fns[name], 'prepare', lambda: None)()    # untimed set-up (torch threads)
            times[name].append(timed(fns[name], 1, warmup=calls_per_turn - 1)['min_s'])
    return {name: _summary(t) for name, t in times.items()}


def _scratch_dir() -> str:
    """A fresh directory under .cache/scratch for this run (removed at exit)."""
    if 'dir' not in _SCRATCH:
        parent = os.path.join(ROOT, '.cache', 'scratch')
        os.makedirs(parent, exist_ok=True)
        _SCRATCH['dir'] = tempfile.mkdtemp(prefix='bench-', dir=parent)
    return _SCRATCH['dir']


def _bench_torch():
    """tools/bench_torch.py, or None when torch (or the reference model) does not import."""
    if not FLAGS.torch:
        return None
    try:
        import bench_torch
    except ImportError as e:
        print(f'benchmark: torch records skipped ({e})', file=sys.stderr)
        return None
    return bench_torch


def bench_pipeline(repeats: int) -> list[dict]:
    """Clips/s of the input pipeline on the synthetic demo set: cold (wav) and cached (TFDS)."""
    import tensorflow as tf
    from ascjax import features
    from ascjax.data import datasets, pipeline, sources as sources_lib
    builder = datasets.prepare('synthetic', data_dir=FLAGS.data_dir, preset='demo')
    root = datasets.manual_dir_for('synthetic', data_dir=FLAGS.data_dir or
                                   datasets.default_data_dir(), preset='demo')
    batch_size = 32
    fe = features.FrontEnd()
    sources = {
        'cached features (TFDS array_record)': (sources_lib.TfdsSource.from_builder(builder, 'train'),
                                                None),
        'cold: wav decode + TF log-mel': (sources_lib.WavSource.open(root, 'train'), fe),
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


def bench_models(repeats: int):
    """Train step (B = 32) and B = 1 inference latency of Mod-1 / Mod-8 + ResNorm per conv_impl,
    the PyTorch reference interleaved with them (when torch imports), then single layers."""
    bt = _bench_torch()
    for tau in (1, 8):
        impls = ['shift', 'xla'] if tau == 1 else ['shift'] + (['xla'] if FLAGS.slow else [])
        for i, batch in enumerate(int(b) for b in FLAGS.train_batch_sizes):
            yield from _bench_model(tau, impls if i == 0 else ['shift'], repeats, bt, batch,
                                    inference=i == 0)
            if bt is not None:
                bt.release()      # the generator's frame (models, closures) is gone by now
    if FLAGS.slow:          # single layers, per conv_impl (~1 minute on 2 CPU cores)
        yield from bench_layers(repeats)


def _speedups(records: list[dict]) -> None:
    """`speedup_vs_torch_best` (best torch median / JAX median) on the JAX records of a group."""
    torch_recs = [r for r in records if r.get('framework') == 'torch' and 'median_s' in r]
    if not torch_recs:
        return
    best = min(torch_recs, key=lambda r: r['median_s'])
    for r in records:
        if r.get('framework') == 'jax' and 'median_s' in r:
            r['speedup_vs_torch_best'] = best['median_s'] / r['median_s']
            r['torch_best'] = best['name']


def _torch_tail(setting: str, threads: int, default: int) -> str:
    """'torch NCHW', or 'torch NCHW 1 thread' for a thread count other than the first."""
    if threads == default:
        return f'torch {setting}'
    return f'torch {setting} {threads} thread{"s" if threads > 1 else ""}'


def _jax_inference(model, variables, x1, audio, fe) -> dict:
    """B = 1 forward passes: {'excluded': log-mel -> logits, 'included': waveform -> log-mel ->
    logits, one jitted function} (no 'included' when fe is None)."""
    import jax
    from ascjax import features
    forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
    fns = {'excluded': lambda: forward(variables, x1).block_until_ready()}
    if fe is not None:
        fused = jax.jit(lambda v, a: model.apply(v, features.logmel_jax(a, fe)[..., None],
                                                 train=False))
        fns['included'] = lambda: fused(variables, audio).block_until_ready()
    return fns


def _bench_model(tau: int, impls: list[str], repeats: int, bt, batch: int = 32,
                 inference: bool = True):
    """Train steps at `batch` (the name says B when it is not 32), then (`inference`) B = 1."""
    import jax
    from ascjax import features, models
    shape = (256, 431, 1)
    label = f'Mod-{tau}+ResNorm' + ('' if batch == 32 else f' B={batch}')
    torch_shape = (shape[2], shape[0], shape[1])                  # C, F, T
    # Train steps: JAX per conv_impl, torch per setting and thread count; first calls (compiles),
    # then interleaved rounds.
    runs, records, jax_models, torch_models = {}, {}, {}, {}
    for impl in impls:
        model = models.create_model('bcresnet_mod', tau=tau, norm='resnorm',
                                    norm_positions=models.POSITIONS, conv_impl=impl)
        step, state, x, y = _train_step_fn(model, batch, shape)
        holder = {'state': state}

        def run(step=step, holder=holder, x=x, y=y):
            holder['state'], loss = step(holder['state'], x, y)
            loss.block_until_ready()
        name = f'train step: {label} conv_impl={impl}'
        records[name] = {'name': name, 'framework': 'jax', 'batch_size': batch,
                         'dtype': 'float32', 'input_shape': list(shape),
                         'first_call_s': timed(run, 1, warmup=0)['min_s']}
        runs[name] = run
        jax_models[impl] = (model, holder, x[:1])
    if bt is not None:
        dev = bt.device()
        bt.setup(dev)
        counts = bt.thread_counts(dev, [int(n) for n in FLAGS.torch_threads])
        for setting in bt.SETTINGS:
            for threads in counts:
                tail = _torch_tail(setting, threads, counts[0])
                name = f'train step: {label} {tail}'
                bt.set_threads(threads)
                rec = records[name] = {'name': name, 'batch_size': batch, 'dtype': 'float32',
                                       'input_shape': list(torch_shape), **bt.info(dev)}
                if setting == 'compile' and not FLAGS.torch_compile:
                    rec['skipped'] = '--notorch_compile'
                    continue
                if setting == 'NCHW' and tau > 1 and dev.type == 'cpu' and not FLAGS.slow:
                    # ~1 min; slower than channels_last on this CPU in every run so far
                    rec['skipped'] = 'CPU Mod-8 NCHW: with --slow'
                    continue
                limit = FLAGS.torch_compile_limit_s if setting == 'compile' else 0
                try:
                    step, torch_model = bt._torch_train_step(tau, batch, torch_shape, dev,
                                                             setting)
                    step = bt.with_threads(step, threads)
                    first, reason = bt.first_call(step, limit)
                except Exception as e:  # noqa: BLE001 -- a torch failure must not stop JAX
                    first, reason = None, f'{type(e).__name__}: {e}'[:300]
                if reason is not None:
                    rec['skipped'] = reason
                    if setting == 'compile':
                        bt.release()
                    continue
                rec['first_call_s'] = first
                if setting == 'compile':
                    rec['compile_s'] = first   # the first call compiles forward and backward
                    rec['torch_compile_backend'] = 'inductor'
                    runs[name] = step
                    continue
                if threads == counts[0]:
                    torch_models[setting] = torch_model
                # eager torch: its calls back to back right after the first (no cost of switching
                # frameworks, so if anything in its favour); interleaving them too took ~1.5 min
                rec.update(timed(step, repeats, warmup=0), protocol='consecutive')
    # each first call above was the warm-up; then each turn is a step after a step of its own
    stats = interleaved(runs, repeats, warmup=0, calls_per_turn=2)
    for name, s in stats.items():
        records[name].update(s, protocol='interleaved, 2 calls per turn')
    for rec in records.values():
        if 'median_s' in rec:
            rec.update(clips_per_s=batch / rec['median_s'], steps_per_s=1 / rec['median_s'])
    _speedups(list(records.values()))
    yield from records.values()
    del runs
    if bt is not None:
        bt.release()
    if not inference:
        return
    label = f'Mod-{tau}+ResNorm'

    # B = 1 latency per 10-s clip, log-mel input (features excluded) and waveform input (included).
    fe, skip_features = features.FrontEnd(), None
    try:
        features.mel_filterbank(fe)
    except ImportError as e:            # librosa: the filterbank constant of both front ends
        fe, skip_features = None, f'log-mel front end unavailable ({e})'
    num_samples = 10 * features.FrontEnd().sample_rate
    audio = 0.1 * jax.random.normal(jax.random.PRNGKey(3), (1, num_samples))
    fns, groups = {}, {'excluded': {}, 'included': {}}
    kinds = {'excluded': ('inference', 'log-mel, features excluded'),
             'included': ('inference + log-mel', f'waveform {num_samples} samples at '
                          f'{features.FrontEnd().sample_rate} Hz, features included')}

    def add(kind, name_tail, fn, **fields):
        prefix, what = kinds[kind]
        name = f'{prefix}: {label} {name_tail}'
        groups[kind][name] = {'name': name, 'batch_size': 1, 'dtype': 'float32',
                              'features': what, **fields}
        if fn is None:
            groups[kind][name]['skipped'] = skip_features
        else:
            fns[name] = fn

    for impl, (model, holder, x1) in jax_models.items():
        params, batch_stats, _ = holder['state']
        jfns = _jax_inference(model, {'params': params, 'batch_stats': batch_stats}, x1, audio,
                              fe)
        for kind in kinds:
            add(kind, f'conv_impl={impl}', jfns.get(kind), framework='jax',
                input_shape=list(shape) if kind == 'excluded' else [num_samples])
    for setting, torch_model in torch_models.items():
        tfns = bt._torch_inference(torch_model, torch_shape, num_samples, dev, setting, fe)
        for threads in counts:
            bt.set_threads(threads)
            for kind in kinds:
                fn = tfns.get(kind)
                add(kind, _torch_tail(setting, threads, counts[0]),
                    fn and bt.with_threads(fn, threads), **bt.info(dev),
                    input_shape=list(torch_shape) if kind == 'excluded' else [num_samples])
    stats = interleaved(fns, FLAGS.latency_runs, warmup=3)
    for group in groups.values():
        for name, rec in group.items():
            if name in stats:
                rec.update(stats[name], clips_per_s=1 / stats[name]['median_s'])
        _speedups(list(group.values()))
        yield from group.values()


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


_PLAIN_STEP = {}   # (k, repeats) -> the plain step's timing, shared by seeds, translator and qat


def _plain_classifier_step(k: int, repeats: int) -> dict:
    """`_time_classifier_step(k, repeats)` measured once per run, however many sections use it."""
    if (k, repeats) not in _PLAIN_STEP:
        _PLAIN_STEP[k, repeats] = _time_classifier_step(k, repeats)
    return dict(_PLAIN_STEP[k, repeats])


def _time_classifier_step(k: int, repeats: int, translate=None, qat: bool = False,
                          at_once: int = 0) -> dict:
    """The real train step of Mod-1 + ResNorm, K seeds (`at_once` of them vmapped together,
    config.seeds_at_once; 0 = the backend's default), B = 32, 256 x 431 (8-bit QAT with `qat`)."""
    run, info = _classifier_step(k, translate, qat, at_once)
    return {**info, **timed(run, repeats, warmup=0)}   # the first call (in info) warmed it


def _classifier_step(k: int, translate=None, qat: bool = False, at_once: int = 0,
                     cost: bool = False) -> tuple[Callable[[], None], dict]:
    """`_time_classifier_step`'s step, built and called once: (run one step, its record), with
    `cost` also XLA's cost analysis of the compiled step (`_cost`)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from experiments.configs import paper
    from ascjax import features
    from ascjax.compress import qat as qat_lib
    from ascjax.tasks import classifier
    from ascjax.train import mesh as mesh_lib, optim, state as state_lib, step as step_lib
    config = paper.get_config('mod1_resnorm')
    config.num_seeds, config.train.batch_size = k, 32
    config.seeds_at_once = at_once
    config.qat.enabled = qat
    mesh = mesh_lib.data_mesh()
    model = qat_lib.model_from_config(config)
    shape = features.input_shape(config.data)
    params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                               jnp.zeros((1, *shape), jnp.float32)))['params']
    tx = optim.optimizer(config.train, params, 100)
    state = state_lib.create(model, tx, shape, config.seed, k, mesh)
    shardings = jax.tree.map(lambda a: a.sharding, state)
    transforms = None if translate is None else [
        classifier.translation(translate), classifier.BATCH_TRANSFORMS['augment'].build(config)]
    step = classifier.make_train_step(model, tx, config, optim.schedule(config.train, 100),
                                      shardings, mesh, transforms)
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
    analysis = _cost(step.lower(holder['state'], batch).compile()) if cost else {}
    return run, {'batch_size': 32, 'dtype': 'float32', 'input_shape': list(shape), 'seeds': k,
                 'backend': jax.default_backend(),
                 'seeds_at_once': step_lib.seeds_at_once(at_once, k), 'first_call_s': first,
                 **analysis}


def bench_seeds(repeats: int) -> list[dict]:
    """Mod-1 + ResNorm train step with K = 1 and K = 8 seeds in one program (B = 32 each): K = 8
    as the backend's default runs it (config.seeds_at_once = 0: one after another on CPU, all
    vmapped on accelerators) and all 8 vmapped together, in interleaved rounds (the ratio is the
    target, and two separate runs of the same step drift apart by up to ~8% on a shared host);
    each timed step after an untimed one of its own. Each record carries XLA's cost analysis of
    its step and, per seed, its GB and GFLOP against one seed's: the account of the ratio when the
    single-seed step is bandwidth-bound."""
    variants = {(1, 0): '', (8, 0): '', (8, 8): ', all vmapped together'}
    built = {v: _classifier_step(v[0], at_once=v[1], cost=True) for v in variants}
    stats = interleaved({v: run for v, (run, _) in built.items()}, repeats, warmup=0,
                        calls_per_turn=2)
    one = built[1, 0][1]
    records = []
    for (k, at_once), label in variants.items():
        r = {'name': f'seed-parallel train step: Mod-1+ResNorm, K={k} seeds{label}',
             **built[k, at_once][1], **stats[k, at_once],
             'protocol': 'interleaved, 2 calls per turn',
             'clips_per_s': k * 32 / stats[k, at_once]['median_s']}
        if one.get('gbytes'):
            r['gbytes_per_seed_vs_one'] = r['gbytes'] / k / one['gbytes']
            r['gflop_per_seed_vs_one'] = r['gflop'] / k / one['gflop']
        records.append(r)
    return records


def bench_translator(repeats: int) -> list[dict]:
    """Mod-1 + ResNorm train step (K = 1, B = 32) without and with translator augmentation
    (p = 0.5; the whole batch is translated, then A examples are picked), for two U-Net widths."""
    import jax
    import numpy as np
    from ascjax.augment import translate as augment
    from ascjax.models import unet as translator_model
    records = [{'name': 'train step: Mod-1+ResNorm, no translator',
                **_plain_classifier_step(1, repeats)}]
    for width in ((8, 16) if FLAGS.slow else (8,)):
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


def _child(section: str, args: list[str]):
    """The result of `section` (a key of CHILDREN) run by this script in a fresh process, beside
    this one (no preallocated device memory), from its CHILD_RESULT line."""
    command = [sys.executable, os.path.abspath(__file__), f'--only={section}', *args]
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE='false')
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
    lines = [l for l in done.stdout.splitlines() if l.startswith('CHILD_RESULT ')]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f'{section} exited {done.returncode}: {done.stderr.strip()[-300:]}')
    return json.loads(lines[-1][len('CHILD_RESULT '):])


def compile_child() -> dict:
    """In this (fresh) process: trace + lower and compile the Mod-8+ResNorm train step
    (conv_impl shift, B = 32) with the persistent compilation cache at --compile_cache_dir."""
    import jax
    jax.config.update('jax_compilation_cache_dir', FLAGS.compile_cache_dir)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
    jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
    from ascjax import models
    model = models.create_model('bcresnet_mod', tau=8, norm='resnorm',
                                norm_positions=models.POSITIONS, conv_impl='shift')
    step, state, x, y = _train_step_fn(model, 32, (256, 431, 1))
    start = time.perf_counter()
    lowered = step.lower(state, x, y)
    lowered_at = time.perf_counter()
    lowered.compile()
    compiled_at = time.perf_counter()
    return {'lower_s': lowered_at - start, 'compile_s': compiled_at - lowered_at,
            'lower_and_compile_s': compiled_at - start}


def bench_compile(repeats: int):
    """Compile time of the JAX Mod-8+ResNorm train step (conv_impl shift), each in a fresh process
    with JAX's persistent compilation cache in a fresh directory: cold (the cache is empty, and
    populated by this compile; writing it costs ~0.3 s), then warm (the same cache, read)."""
    del repeats
    cache = os.path.join(_scratch_dir(), 'jax_compilation_cache')
    for what in ('cold, populating the persistent cache', 'warm, persistent cache'):
        rec = {'name': f'compile: Mod-8+ResNorm train step conv_impl=shift, {what}',
               'framework': 'jax', 'batch_size': 32, 'dtype': 'float32',
               'input_shape': [256, 431, 1], 'persistent_cache': True}
        start = time.perf_counter()
        try:
            result = _child('compile_child', [f'--compile_cache_dir={cache}'])
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
            rec['skipped'] = f'{type(e).__name__}: {e}'[:400]
        else:
            # The table's median column shows trace + lower + compile (one measurement).
            rec.update(result, median_s=result['lower_and_compile_s'],
                       min_s=result['lower_and_compile_s'],
                       p90_s=result['lower_and_compile_s'], repeats=1)
        rec['process_wall_s'] = time.perf_counter() - start
        if os.path.isdir(cache):
            rec['cache_entries'] = len(os.listdir(cache))
        yield rec


def bench_qat(repeats: int) -> list[dict]:
    """Mod-1 + ResNorm train step (K = 1, B = 32) in float and under 8-bit QAT (qwix: int8
    weights per channel, int8 activations; depthwise convolutions as conv_impl 'einsum')."""
    records = [{'name': 'train step: Mod-1+ResNorm, float', **_plain_classifier_step(1, repeats)}]
    r = _time_classifier_step(1, repeats, qat=True)
    records.append({'name': 'train step: Mod-1+ResNorm, 8-bit QAT', **r,
                    'overhead_vs_plain': r['median_s'] / records[0]['median_s']})
    for r in records:
        r['clips_per_s'] = 32 / r['median_s']
    return records


def bench_loop(repeats: int) -> list[dict]:
    """The real training loop against its bare step (paper row --loop_row, B = 32, on the demo
    set at the paper's input, 10-s clips x 256 mels), measured in a fresh process (`loop_child`)
    as `python -m ascjax.train` runs: in this one, after the other sections, the process held
    12.8 GB and the loop's host batches (tf.data -> numpy -> device buffer, new huge pages each
    step) met memory compaction the bare step does not (README, benchmark notes)."""
    return _child('loop_child', [f'--loop_row={FLAGS.loop_row}', f'--repeats={repeats}',
                                 *([f'--data_dir={FLAGS.data_dir}'] if FLAGS.data_dir else [])])


def _wall_estimate(wall: dict[int, list[float]]) -> float:
    """(t(N2) - t(N1)) / (N2 - N1) from {N: run times}, each t the fastest run of N steps."""
    (n1, t1), (n2, t2) = sorted(wall.items())
    return (min(t2) - min(t1)) / (n2 - n1)


def _has_tensorflow() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def _vmstat() -> dict[str, int]:
    """The kernel's counters of memory-compaction stalls and huge-page fallbacks (Linux)."""
    try:
        with open('/proc/vmstat') as f:
            counters = dict(line.split() for line in f)
    except OSError:
        return {}
    return {k: int(counters[k]) for k in ('compact_stall', 'thp_fault_fallback') if k in counters}


def loop_child() -> list[dict]:
    """In this (fresh) process: `ascjax.train`'s code path (the feed, jitted step, progress logs
    every 5 steps, TensorBoard, train_metrics.jsonl, checkpoints) for N1 and for N2 steps in fresh
    workdirs, with the default feed (`config.data.in_memory = None`: on a CPU the split in memory
    where it fits, `ascjax.train.feed.in_memory`) and with tf.data, the feed of a split that does
    not fit; then a block of its bare step; all of it twice, interleaved, so that the machine's
    drift over the section (a Mod-1 step at 1.36 s and 1.56 s ten minutes apart) moves the loop
    and the bare step alike. Where TensorFlow is missing (the device images) the one feed there
    is: the wav files, log-mels computed once, held in device memory.

    The loop's s/step is the median over its own progress windows (5 steps between log lines;
    the run's last 10 windows, so the first steps and compilation are out), the same statistic as
    the bare step's median, so set-up and compile time (8 s apart between two 10-step runs) do not
    move it; every window is kept (`window_s`), with the kernel's compaction stalls during the
    runs (`vmstat`: under memory pressure the windows climb within a run, README). Kept beside it:
    the wall-clock estimate (t(N2) - t(N1)) / (N2 - N1), each t the faster of two runs, which also
    carries everything a run does once per step outside the windows. The bare step is the same
    jitted program on one device-resident batch, its median over both blocks. A loop's s/step times TAU20's 13,962 clips / B
    is the epoch estimate with that feed."""
    repeats = FLAGS.repeats
    import shutil
    import tempfile
    import jax
    import numpy as np
    from experiments.configs import paper
    from ascjax import run as run_lib
    from ascjax.tasks import classifier
    from ascjax.train import feed, loop, mesh as mesh_lib, optim, state as state_lib
    from ascjax import features
    config = paper.get_config(FLAGS.loop_row)   # data: the demo preset, the paper's input
    config.train.batch_size = 32
    config.train.log_every_steps = 5
    if FLAGS.data_dir:
        config.data.data_dir = FLAGS.data_dir
    if not _has_tensorflow():   # a device image: the wav files, held in device memory
        config.data.update(store='wav', in_memory=True)
    builder = run_lib.open_data(config)
    task = classifier.task(config, builder)
    short, long = 10, 10 + 20 * repeats
    feeds = [config.data.in_memory]    # the default (None: auto) ...
    if feeds[0] is None and feed.in_memory(config, task.source):
        feeds.append(False)              # ... and tf.data, the feed of a split that does not fit
    loops = {requested: {'feed': '', 'wall': {short: [], long: []}, 'windows': [],
                         'vmstat': {}} for requested in feeds}
    mesh = mesh_lib.data_mesh()
    shape = features.input_shape(config.data)
    step, bare_times = None, []
    for _ in range(2):   # rounds: each feed's N1- and N2-step runs, then a block of bare steps
        for requested, run in loops.items():
            config.data.in_memory = requested
            run['feed'] = feed.name(config, task.source) + (
                ' (default)' if requested is None else
                ' (wav files: no TensorFlow here)' if requested else '')
            vmstat_start = _vmstat()
            for n in (short, long):
                config.train.num_steps = n
                workdir = tempfile.mkdtemp(prefix='ascjax_bench_loop_')
                try:
                    start = time.perf_counter()
                    trained = loop.train(task, config, workdir)
                    jax.block_until_ready(trained.state)
                    run['wall'][n].append(time.perf_counter() - start)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
            marks = list(trained.progress.marks)   # (time, step) of the N2 run's log lines
            run['windows'] += [(t1 - t0) / (s1 - s0)
                               for (t0, s0), (t1, s1) in zip(marks, marks[1:])]
            for k, v in _vmstat().items():
                run['vmstat'][k] = run['vmstat'].get(k, 0) + v - vmstat_start[k]
        if step is None:
            steps_per_epoch = max(len(task.source) // config.train.batch_size, 1)
            tx = optim.optimizer(config.train, state_lib.param_shapes(task.model, shape),
                                 steps_per_epoch)
            step = classifier.make_train_step(task.model, tx, config,
                                              optim.schedule(config.train, steps_per_epoch),
                                              trained.shardings, mesh)
            batch = next(iter(feed.train_batches(task.source, config, mesh, 0, 1)))
            holder = {'state': trained.state}

            def bare_step():
                holder['state'], metrics = step(holder['state'], batch)
                jax.block_until_ready(metrics)
        bare_times += _times(bare_step, max(5, (5 * repeats + 1) // 2), warmup=1)
    bare = _summary(bare_times)
    common = {'batch_size': config.train.batch_size, 'dtype': 'float32',
              'input_shape': list(shape)}
    records = []
    for run in loops.values():
        median, wall = float(np.median(run['windows'])), _wall_estimate(run['wall'])
        records.append({
            'name': f'training loop: {FLAGS.loop_row}, python -m ascjax.train code path, '
                    f'feed {run["feed"]}', **common, 'row': FLAGS.loop_row, 'feed': run['feed'],
            'median_s': median, 'p90_s': float(np.percentile(run['windows'], 90)),
            'process': 'fresh', 'vmstat': run['vmstat'], 'windows': len(run['windows']),
            'window_s': [round(w, 4) for w in run['windows']], 'steps': [short, long],
            'wall_s': {str(k): v for k, v in run['wall'].items()}, 'wall_estimate_s': wall,
            'wall_vs_bare_step': wall / bare['median_s'],
            'clips_per_s': config.train.batch_size / median,
            'vs_bare_step': median / bare['median_s'],
            'tau20_epoch_s': TAU20_TRAIN_CLIPS / config.train.batch_size * median})
    return records + [{'name': f'training loop: {FLAGS.loop_row}, bare step', **common, **bare,
                       'clips_per_s': config.train.batch_size / bare['median_s']}]


# Section `levers` (issue #17): train-step variants of Mod-8 / Mod-1 + ResNorm (B = 32, 10-s clips)
# against the baseline, interleaved in one process. name -> (model fields over the baseline,
# {module.attribute: replacement} while the step is traced): the levers taken show what they
# moved by putting back what they replaced.
LEVERS = {
    'baseline': ({}, {}),
    # taken: channel_dot's chunked weight gradient for layers of >= 64 output channels
    'before: weight gradients as one dot': (
        {}, {'ascjax.models.layers.CHANNEL_DOT_MIN_FEATURES': 1 << 30}),
    'channel_dot on every layer': ({}, {'ascjax.models.layers.CHANNEL_DOT_MIN_FEATURES': 0}),
    'remat=block': ({'remat': 'block'}, {}),
    'remat=dots': ({'remat': 'dots'}, {}),
    'bfloat16 compute': ({'dtype': 'bfloat16'}, {}),
}


def _cost(compiled) -> dict:
    """XLA's cost analysis of a compiled program: GFLOP, GB accessed, temporaries (GB)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    memory = compiled.memory_analysis()
    return {'gflop': cost.get('flops', 0.0) / 1e9, 'gbytes': cost.get('bytes accessed', 0.0) / 1e9,
            'temp_gb': getattr(memory, 'temp_size_in_bytes', 0) / 1e9}


def machine_floors(repeats: int) -> list[dict]:
    """What this backend sustains, in XLA: streaming bandwidth (x * a + b over 512 MiB of float32:
    one read and one write per element) and the matmul rate at the shape of Mod-8's largest
    convolution (stage 1's transition 1x1, [32 * 128 * 216, 160] x [160, 80])."""
    import jax
    import jax.numpy as jnp
    x = jnp.ones((1 << 27,), jnp.float32)
    stream = jax.jit(lambda a: a * 1.5 + 0.5)
    t = timed(lambda: stream(x).block_until_ready(), max(repeats, 5))
    records = [{'name': 'floor: streaming bandwidth, XLA x * a + b, 512 MiB float32', **t,
                'gb_s': 2 * x.nbytes / 1e9 / t['median_s']}]
    del x
    a = jnp.ones((32 * 128 * 216, 160), jnp.float32)
    w = jnp.ones((160, 80), jnp.float32)
    dot = jax.jit(jnp.dot)
    t = timed(lambda: dot(a, w).block_until_ready(), max(repeats, 5))
    records.append({'name': 'floor: matmul rate, XLA [884736, 160] x [160, 80] float32', **t,
                    'gflop_s': 2 * a.shape[0] * 160 * 80 / 1e9 / t['median_s']})
    return records


def bench_levers(repeats: int):
    """Each lever of LEVERS on Mod-8 and Mod-1 + ResNorm train steps (bf16 on Mod-8 only with
    --slow: ~14 s a step), with XLA's cost analysis and how far each step is from this machine's
    floors (`machine_floors`): bandwidth floor = GB accessed / streaming GB/s, compute floor =
    GFLOP / matmul GFLOP/s."""
    import contextlib
    import unittest.mock
    from ascjax import models
    floors = machine_floors(repeats)
    yield from floors
    gb_s, gflop_s = floors[0]['gb_s'], floors[1]['gflop_s']
    shape = (256, 431, 1)
    for tau in (8, 1):
        fns, records = {}, {}
        for lever, (fields, patches) in LEVERS.items():
            name = f'lever: Mod-{tau}+ResNorm train step, {lever}'
            if 'dtype' in fields and tau == 8 and not FLAGS.slow:
                yield {'name': name, 'skipped': 'bf16 Mod-8 step: with --slow'}
                continue
            model = models.from_config({'name': 'bcresnet_mod', 'tau': tau, 'norm': 'resnorm',
                                        'norm_positions': models.POSITIONS, 'conv_impl': 'shift',
                                        **fields})
            step, state, x, y = _train_step_fn(model, 32, shape)
            start = time.perf_counter()
            with contextlib.ExitStack() as stack:
                for target, replacement in patches.items():
                    stack.enter_context(unittest.mock.patch(target, replacement))
                compiled = step.lower(state, x, y).compile()
            holder = {'state': state}

            def run(compiled=compiled, holder=holder, x=x, y=y):
                holder['state'], loss = compiled(holder['state'], x, y)
                loss.block_until_ready()
            run()
            records[name] = {'name': name, 'framework': 'jax', 'lever': lever,
                             'model_fields': fields, 'batch_size': 32,
                             'dtype': fields.get('dtype', 'float32'), 'input_shape': list(shape),
                             'first_call_s': time.perf_counter() - start, **_cost(compiled)}
            fns[name] = run
        for name, stat in interleaved(fns, repeats, warmup=0, calls_per_turn=2).items():
            r = records[name]
            r.update(stat, clips_per_s=32 / stat['median_s'],
                     achieved_gb_s=r['gbytes'] / stat['median_s'],
                     bandwidth_floor_s=r['gbytes'] / gb_s, compute_floor_s=r['gflop'] / gflop_s)
            r['vs_floor'] = stat['median_s'] / max(r['bandwidth_floor_s'], r['compute_floor_s'])
        base = records.get(f'lever: Mod-{tau}+ResNorm train step, baseline')
        for r in records.values():
            if base and 'median_s' in r:
                r['speedup_vs_baseline'] = base['median_s'] / r['median_s']
        del fns
        yield from records.values()

SECTIONS = {'pipeline': bench_pipeline, 'models': bench_models, 'seeds': bench_seeds,
            'translator': bench_translator, 'qat': bench_qat, 'compile': bench_compile,
            'loop': bench_loop, 'levers': bench_levers}


CHILDREN = {'compile_child': compile_child, 'loop_child': loop_child}   # run by `_child`


def _find(records: list[dict], name: str) -> dict | None:
    return next((r for r in records if r['name'] == name and 'median_s' in r), None)


def targets(records: list[dict]) -> list[dict]:
    """The speed targets (issue #7) with the measured ratio of this run, where both sides ran."""
    out = []

    def add(target, measured, goal, higher_is_better=True, detail=''):
        if measured is not None:
            met = measured >= goal if higher_is_better else measured <= goal
            out.append({'target': target, 'measured': measured, 'goal': goal, 'met': met,
                        'higher_is_better': higher_is_better, 'detail': detail})
    for tau, goal in ((8, 1.5), (1, 1.2)):
        r = _find(records, f'train step: Mod-{tau}+ResNorm conv_impl=shift')
        if r and 'speedup_vs_torch_best' in r:
            add(f'train step Mod-{tau}: torch best / ascjax', r['speedup_vs_torch_best'], goal,
                detail=f'vs {r["torch_best"]}')
    for tau in (1, 8):
        for kind in ('inference', 'inference + log-mel'):
            r = _find(records, f'{kind}: Mod-{tau}+ResNorm conv_impl=shift')
            if r and 'speedup_vs_torch_best' in r:
                add(f'{kind} B=1 Mod-{tau}: torch best / ascjax', r['speedup_vs_torch_best'], 1.3,
                    detail=f'vs {r["torch_best"]}')
    step = _find(records, 'train step: Mod-8+ResNorm conv_impl=shift')
    for r in records:
        if r['name'].startswith('pipeline:') and step and 'clips_per_s' in r:
            add(f'{r["name"]} / Mod-8 train step clips/s', r['clips_per_s'] / step['clips_per_s'],
                2.0)
    one = _find(records, 'seed-parallel train step: Mod-1+ResNorm, K=1 seeds')
    eight = _find(records, 'seed-parallel train step: Mod-1+ResNorm, K=8 seeds')
    together = _find(records, 'seed-parallel train step: Mod-1+ResNorm, K=8 seeds, all vmapped '
                              'together')
    if one and eight:   # issue #17: K seeds in one program >= K programs on CPU, 2x on a GPU
        goal = 1.0 if eight.get('backend', 'cpu') == 'cpu' else 2.0
        add('seed-parallel K=8 / K=1 aggregate clips/s', eight['clips_per_s'] / one['clips_per_s'],
            goal, detail=f'(seeds_at_once {eight.get("seeds_at_once")})')
    if one and together:
        add('seed-parallel K=8 all vmapped / K=1 aggregate clips/s',
            together['clips_per_s'] / one['clips_per_s'],
            1.0 if together.get('backend', 'cpu') == 'cpu' else 2.0)
    for batch in (32, 256):   # issue #17: a 200-epoch Mod-8 TAU20 run (13,962 clips) <= 40 min
        name = 'train step: Mod-8+ResNorm' + ('' if batch == 32 else f' B={batch}')
        r = _find(records, f'{name} conv_impl=shift')
        if r:
            add(f'200 epochs of TAU20 at B={batch}, Mod-8 step alone (min; the pipeline not '
                f'included)', 200 * TAU20_TRAIN_CLIPS / batch * r['median_s'] / 60, 40.0,
                higher_is_better=False)
    for looped in (r for r in records if r['name'].startswith('training loop:')
                   and 'vs_bare_step' in r):   # issue #17: the loop adds < 10% to the bare step
        which = f'{looped["row"]}, feed {looped.get("feed", "tf.data")}'
        add(f'training loop s/step / bare step s/step ({which})', looped['vs_bare_step'],
            1.1, higher_is_better=False)
        if 'wall_vs_bare_step' in looped:   # the same, from whole runs' wall clocks
            add(f'training loop, wall-clock estimate / bare step ({which})',
                looped['wall_vs_bare_step'], 1.1, higher_is_better=False)
        add(f'200 epochs of TAU20, {which} B=32 (min)',
            200 * looped['tau20_epoch_s'] / 60, 40.0, higher_is_better=False)
    cold = _find(records, 'compile: Mod-8+ResNorm train step conv_impl=shift, cold, populating '
                          'the persistent cache')
    if cold:
        add('cold compile of the Mod-8 train step (s)', cold['median_s'], 30.0,
            higher_is_better=False)
    return out


def markdown(env: dict, records: list[dict], section_s: dict | None = None) -> str:
    lines = [f'Host {env["host"]} ({env["machine"]}, {env["cpu_count"]} CPUs), backend '
             f'{env["backend"]} x{env["device_count"]}, ' +
             ', '.join(f'{k} {v}' for k, v in env['versions'].items()), '',
             'vs torch: best PyTorch median / this median (> 1: JAX faster). compile rows: one '
             'trace + lower + compile in a fresh process.', '',
             *(['Wall time per section: ' + ', '.join(f'{k} {v:.0f} s'
                                                      for k, v in section_s.items()), '']
               if section_s else []),
             '| benchmark | batch | median ms | p90 ms | clips/s | vs torch |',
             '|---|---|---|---|---|---|']

    def number(value, fmt):
        return '' if value is None else format(value, fmt)
    for r in records:
        name = r['name']
        if 'skipped' in r:
            name += f' (skipped: {r["skipped"][:80]})'
        if 'speedup_vs_baseline' in r:
            name += (f' ({r["speedup_vs_baseline"]:.2f}x baseline; {r["gbytes"]:.0f} GB, '
                     f'{r["gflop"]:.0f} GFLOP, {r["vs_floor"]:.1f}x its floor)')
        if 'gbytes_per_seed_vs_one' in r:
            name += (f' ({r["gbytes"]:.0f} GB, {r["gflop"]:.0f} GFLOP, {r["temp_gb"]:.1f} GB '
                     f'temporaries; per seed {r["gbytes_per_seed_vs_one"]:.2f}x the bytes of '
                     'one)')
        for key, unit in (('gb_s', 'GB/s'), ('gflop_s', 'GFLOP/s')):
            if key in r:
                name += f': {r[key]:.1f} {unit}'
        ms = {k: None if k not in r else 1e3 * r[k] for k in ('median_s', 'p90_s')}
        speedup = number(r.get('speedup_vs_torch_best'), '.2f')
        lines.append(f'| {name} | {r.get("batch_size", "")} | {number(ms["median_s"], ".1f")} | '
                     f'{number(ms["p90_s"], ".1f")} | {number(r.get("clips_per_s"), ".1f")} | '
                     f'{speedup + "x" if speedup else ""} |')
    goals = targets(records)
    if goals:
        lines += ['', '| target | measured | goal | met |', '|---|---|---|---|']
        for t in goals:
            sign = '>=' if t['higher_is_better'] else '<='
            lines.append(f'| {t["target"]} {t["detail"]} | {t["measured"]:.2f} | {sign} '
                         f'{t["goal"]:g} | {"yes" if t["met"] else "**no**"} |')
    return '\n'.join(lines) + '\n'


def _with_hugetlb() -> None:
    """Re-executes this script with malloc's transparent huge pages on (see --hugetlb)."""
    tunables = os.environ.get('GLIBC_TUNABLES', '')
    if FLAGS.hugetlb and sys.platform == 'linux' and 'glibc.malloc.hugetlb' not in tunables:
        value = ':'.join(filter(None, [tunables, 'glibc.malloc.hugetlb=1']))
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ,
                                                               'GLIBC_TUNABLES': value})


def main(argv):
    del argv
    _with_hugetlb()
    sys.path.insert(0, ROOT)
    if len(FLAGS.only) == 1 and FLAGS.only[0] in CHILDREN:   # a section's fresh process
        print('CHILD_RESULT ' + json.dumps(CHILDREN[FLAGS.only[0]]()), flush=True)
        return
    # torch.compile's caches in this run's scratch directory: its first call is a cold compile.
    os.environ.setdefault('TORCHINDUCTOR_CACHE_DIR', os.path.join(_scratch_dir(), 'inductor'))
    os.environ.setdefault('TRITON_CACHE_DIR', os.path.join(_scratch_dir(), 'triton'))
    if FLAGS.torch_omp_passive:    # read once, when torch's OpenMP runtime loads (environment())
        os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    env = environment()
    records = []
    os.makedirs(os.path.dirname(FLAGS.out) or '.', exist_ok=True)
    section_s, start = {}, time.perf_counter()
    try:
        for section in FLAGS.only:
            section_start = time.perf_counter()
            try:
                for record in SECTIONS[section](FLAGS.repeats):
                    records.append(record)
                    with open(FLAGS.out, 'w') as f:  # after every record: a cut-off run keeps it
                        json.dump({'environment': env, 'records': records}, f, indent=2)
            except Exception as e:  # noqa: BLE001 -- one failed section (e.g. no TensorFlow on a
                # device image: pipeline, loop) is recorded, and the others still run
                records.append({'name': f'section {section}',
                                'skipped': f'failed: {type(e).__name__}: {e}'[:400]})
                print(f'section {section} failed: {type(e).__name__}: {e}', file=sys.stderr)
            section_s[section] = round(time.perf_counter() - section_start, 1)
    finally:
        if 'dir' in _SCRATCH:
            shutil.rmtree(_SCRATCH['dir'], ignore_errors=True)
    section_s['total'] = round(time.perf_counter() - start, 1)
    with open(FLAGS.out, 'w') as f:
        json.dump({'environment': env, 'section_wall_s': section_s, 'records': records,
                   'targets': targets(records)}, f, indent=2)
    table = markdown(env, records, section_s)
    with open(os.path.splitext(FLAGS.out)[0] + '.md', 'w') as f:
        f.write(table)
    print(table)


if __name__ == '__main__':
    app.run(main)
