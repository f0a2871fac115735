"""Where a train step's time goes: a per-op profile of the benchmark's Mod-tau + ResNorm step.

    python tools/profile_step.py --tau=8 [--batch=32] [--json=bench/profile_mod8.json]

Runs `tools/benchmark.py`'s train step (B = --batch, 10-s clips, 256 mels, conv_impl shift) under
`jax.profiler.trace`, reads the trace's XPlane (TensorFlow's protobuf module; TensorBoard is not
needed) and joins every executed op (XLA:CPU runs one thunk per fusion, dot or custom call) with
its line in the optimised HLO: shape and the JAX op it came from (`op_name` metadata, e.g.
`transpose(jvp(BCResNetMod))/stage1/block1/transition_bn` = backward pass, stage 1, block 1).
Prints the step's op time by kind (matmuls, elementwise fusions, layout copies, reduce-windows,
scatters), by layer, and the top ops; writes them to --out. The op times are what the machine
did while profiling: compare within one profile, not across machines.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark  # noqa: E402  (tools/ is not a package; its train step and flags)

ROOT = benchmark.ROOT
flags.DEFINE_integer('tau', 8, 'BC-ResNet-Mod width.')
flags.DEFINE_integer('batch', 32, 'Batch size.')
flags.DEFINE_integer('steps', 2, 'Profiled steps (after two warm-up steps); times are per step.')
flags.DEFINE_integer('top', 30, 'Ops listed one by one.')
flags.DEFINE_string('json', None, 'JSON output (default: print only).')
FLAGS = flags.FLAGS

# Host-side events of the runtime, not ops of the program.
RUNTIME_EVENTS = ('ThunkExecutor', '$', 'Pjit', 'Slinky', 'Common', 'Parse')


def op_kind(name: str) -> str:
    """The kind of an executed XLA:CPU op, from its thunk name."""
    if 'scatter' in name:
        return 'scatter'
    if 'reduce-window' in name or 'reduce_window' in name:
        return 'reduce-window'
    if name.startswith(('ynn_fusion', 'dot', 'custom-call')):
        return 'matmul / YNNPACK fusion'
    if 'copy' in name or 'transpose' in name:
        return 'layout copy / transpose fusion'
    return 'elementwise / reduction fusion'


def layer_of(op_name: str) -> str:
    """'backward stage1/block1/transition_bn' from a JAX op_name (block and stage kept)."""
    direction = 'backward' if 'transpose(' in op_name else 'forward'
    path = re.sub(r'^jit\(step\)/', '', op_name)
    path = re.sub(r'(transpose|jvp|jit)\(|\)', '', path)
    parts = [p for p in path.split('/') if p and p != 'BCResNetMod']
    return f'{direction} {"/".join(parts[:3])}' if parts else direction


def hlo_ops(hlo_text: str) -> dict[str, tuple[str, str]]:
    """{instruction name: (result shape, op_name)} of an optimised HLO module's instructions."""
    ops = {}
    for m in re.finditer(r'^\s*(?:ROOT )?%(\S+) = (\S+) ([^\n]*)$', hlo_text, re.M):
        op_name = re.search(r'op_name="([^"]*)"', m.group(3))
        ops.setdefault(m.group(1), (m.group(2), op_name.group(1) if op_name else ''))
    return ops


def op_times(trace_dir: str, steps: int) -> collections.Counter:
    """Seconds per step of every event name in the trace's host plane(s)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    path = glob.glob(os.path.join(trace_dir, '**', '*.xplane.pb'), recursive=True)[0]
    space = xplane_pb2.XSpace()
    with open(path, 'rb') as f:
        space.ParseFromString(f.read())
    times = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                times[names.get(event.metadata_id, '?')] += event.duration_ps / 1e12 / steps
    return times


def profile(tau: int, batch: int, steps: int) -> dict:
    import jax
    from ascjax import models
    model = models.create_model('bcresnet_mod', tau=tau, norm='resnorm',
                                norm_positions=models.POSITIONS, conv_impl='shift')
    step, state, x, y = benchmark._train_step_fn(model, batch, (256, 431, 1))
    compiled = step.lower(state, x, y).compile()
    ops = hlo_ops(compiled.as_text())
    for _ in range(2):
        state, loss = compiled(state, x, y)
        loss.block_until_ready()
    with tempfile.TemporaryDirectory() as trace_dir:
        start = time.perf_counter()
        with jax.profiler.trace(trace_dir):
            for _ in range(steps):
                state, loss = compiled(state, x, y)
                loss.block_until_ready()
        wall = (time.perf_counter() - start) / steps
        times = op_times(trace_dir, steps)
    rows = []
    for name, seconds in times.items():
        if name.startswith(RUNTIME_EVENTS):
            continue
        shape, op_name = ops.get(name, ('', ''))
        rows.append({'op': name, 'seconds': seconds, 'kind': op_kind(name), 'shape': shape,
                     'op_name': op_name, 'layer': layer_of(op_name) if op_name else '?'})
    rows.sort(key=lambda r: -r['seconds'])
    total = sum(r['seconds'] for r in rows)

    def by(key):
        sums = collections.Counter()
        for r in rows:
            sums[r[key]] += r['seconds']
        return [{key: k, 'seconds': v, 'share': v / total} for k, v in sums.most_common()]
    return {'model': f'Mod-{tau}+ResNorm', 'batch_size': batch, 'input_shape': [256, 431, 1],
            'backend': jax.default_backend(), 'wall_s_per_step': wall, 'op_s_per_step': total,
            'by_kind': by('kind'), 'by_layer': by('layer'), 'ops': rows}


def main(argv):
    del argv
    benchmark._with_hugetlb()   # as `make bench` measures (malloc's huge pages; --nohugetlb)
    sys.path.insert(0, ROOT)
    result = profile(FLAGS.tau, FLAGS.batch, FLAGS.steps)
    print(f'{result["model"]} train step, B = {result["batch_size"]}: wall '
          f'{result["wall_s_per_step"]:.3f} s/step, ops {result["op_s_per_step"]:.3f} s/step')
    for key in ('by_kind', 'by_layer'):
        print(f'\n{key.replace("_", " ")}:')
        for r in result[key][:15]:
            print(f'  {r["seconds"]:7.3f} s {100 * r["share"]:5.1f}%  {r[key[3:]]}')
    print('\ntop ops:')
    for r in result['ops'][:FLAGS.top]:
        print(f'  {r["seconds"]:7.3f} s  {r["op"][:28]:28s} {r["shape"][:36]:36s} {r["layer"]}')
    if FLAGS.json:
        os.makedirs(os.path.dirname(FLAGS.json) or '.', exist_ok=True)
        with open(FLAGS.json, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    app.run(main)
