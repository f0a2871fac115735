"""Hyper-parameter sweeps: one `python -m ascjax.train` run per point, then one table of all.

    python -m ascjax.sweep --sweep=experiments/sweeps/mod1_norms.py --root=runs/mod1_norms \
        [--dry_run] [--only=0,2 | --only=mod1,mod1_resnorm] [--collect_only] \
        [--extra=--config.data.data_dir=/cache --extra=...] \
        [--parallel=N | --launcher=slurm --cluster=slurm_partition=gpu --cluster=timeout_min=240]

A sweep file defines `get_sweep()`, a list of points, each a dict:

    {'name': 'resnorm_lambda0.2.s1',                           # workdir ROOT/name
     'config': 'experiments/configs/paper.py:mod1_resnorm',    # the --config value
     'overrides': {'model.norm_lambda': 0.2, 'seed': 1},       # --config.KEY=VALUE flags
     'group': 'resnorm_lambda0.2'}                             # optional: see 4.

The runner

1. checks every point's command line in-process with config_flags (unknown field, wrong type:
   it stops before running anything);
2. writes ROOT/commands.txt, one shell-quoted command per line (run from the repository root),
   for a cluster launcher (xargs -P, a SLURM array job, a TPU-pod job);
3. runs the selected points, each as its own process with its output in ROOT/name/log.txt: here,
   `--parallel` at a time, or as a submitit job array on SLURM (`--launcher=slurm`, submitit's
   parameters as `--cluster=KEY=VALUE`), waiting for every job; a point whose workdir already has
   results.json is skipped, so a rerun resumes (and train itself resumes an interrupted point from
   its last checkpoint). A workdir whose config.json disagrees with the point's overrides is
   reported, never reused;
4. collects every finished point into ROOT/results.csv and ROOT/results.md; a point of a paper
   row gets the paper's numbers under its own (ascjax.evaluation.table), labelled not
   comparable unless it ran on TAU20. Points that share a `group` (a row's seeds run as separate
   processes, say) are also pooled into one row of a second table, mean ± std over all their
   seeds (ascjax.evaluation.pool), printed at the end and written alone to ROOT/groups.md.

Points run side by side (`--parallel` > 1, a cluster launcher) find their data built: the runner
prepares each distinct `config.data` once before it starts them.

A point that fails is reported with its log path; the others still run and are collected, and the
exit status is 1 when any selected point has no results at the end.
"""

from __future__ import annotations

import ast
import concurrent.futures
import csv
import dataclasses
import datetime
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
import types
from collections.abc import Iterable, Sequence

from absl import app, flags

from ascjax import evaluation
from ascjax.data import layout

RESULTS = 'results.json'
GROUPS = 'groups.md'            # the pooled tables of the groups alone (also in results.md)
LOG = 'log.txt'
_NAME = re.compile(r'^[A-Za-z0-9_.+=-]+$')
_KEY = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$')


@dataclasses.dataclass(frozen=True)
class Point:
    name: str
    config: str
    overrides: dict
    group: str | None = None   # points of one group (e.g. a row's seeds) pool into one table row

    @property
    def row(self) -> str | None:
        """The config's argument without options ('paper.py:mod1,runlocal' -> 'mod1'), if any."""
        return self.config.split(':', 1)[1].split(',')[0] if ':' in self.config else None


# --- sweep files and command lines -----------------------------------------------------------

def load_sweep(path: str) -> list[Point]:
    """The points of the sweep file at `path` (its `get_sweep()`), checked for form."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'--sweep={path}: no such file')
    name = '_ascjax_sweep_' + re.sub(r'\W', '_', os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, 'get_sweep', None)):
        raise ValueError(f'{path}: defines no get_sweep()')
    return points_from(module.get_sweep(), source=path)


def points_from(raw: Iterable[dict], source: str = 'sweep') -> list[Point]:
    points, seen = [], set()
    for i, p in enumerate(raw):
        where = f'{source}: point {i}'
        if not isinstance(p, dict) or set(p) - {'name', 'config', 'overrides', 'group'}:
            raise ValueError(f'{where}: expected a dict with name, config, overrides and '
                             f'optionally group, got {p!r}')
        name, config, overrides = p.get('name'), p.get('config'), dict(p.get('overrides') or {})
        group = p.get('group')
        if group is not None and (not isinstance(group, str) or not group):
            raise ValueError(f'{where} ({name}): group {group!r} must be a non-empty string')
        if not isinstance(name, str) or not _NAME.match(name) or name in ('.', '..'):
            raise ValueError(f'{where}: name {name!r} must be a plain folder name '
                             '(letters, digits, _ . + = -)')
        if name in seen:
            raise ValueError(f'{where}: name {name!r} is used twice')
        if not isinstance(config, str) or not config:
            raise ValueError(f'{where} ({name}): config must be a --config value such as '
                             "'experiments/configs/paper.py:mod1_resnorm'")
        for key, value in overrides.items():
            if not isinstance(key, str) or not _KEY.match(key):
                raise ValueError(f'{where} ({name}): override key {key!r} is not a dotted field')
            format_value(value)   # raises on values config_flags cannot take
        seen.add(name)
        points.append(Point(name, config, overrides, group))
    if not points:
        raise ValueError(f'{source}: get_sweep() returned no points')
    return points


def _plain(value):
    """numpy scalars as Python ones (repr(np.float64(0.1)) is 'np.float64(0.1)'), lists as tuples."""
    if type(value).__module__ == 'numpy' and getattr(value, 'shape', None) == ():
        return value.item()
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def format_value(value) -> str:
    """`value` as config_flags parses it back: bools true/false, floats by repr, strings as they
    are, tuples/lists/dicts as Python literals (e.g. "('input', 'stage1')"); numpy scalars as the
    Python numbers they hold."""
    value = _plain(value)
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float, str)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, (tuple, dict)):
        literal = repr(value)
        try:
            ok = ast.literal_eval(literal) == value
        except (ValueError, SyntaxError):
            ok = False
        if ok:
            return literal
    raise ValueError(f'override value {value!r} ({type(value).__name__}) cannot be passed as a '
                     'config flag: use a bool, int, float, str, or a tuple/list/dict of those')


def command(point: Point, root: str, extra: Sequence[str] = ()) -> list[str]:
    """The argv of one point's training run."""
    return [sys.executable, '-m', 'ascjax.train', f'--config={point.config}',
            f'--workdir={os.path.join(root, point.name)}',
            *(f'--config.{k}={format_value(v)}' for k, v in point.overrides.items()), *extra]


def commands(points: Sequence[Point], root: str, extra: Sequence[str] = ()) -> list[list[str]]:
    return [command(p, root, extra) for p in points]


def write_commands(argvs: Sequence[Sequence[str]], root: str) -> str:
    """ROOT/commands.txt: line i (1-based) is point i-1, shell-quoted."""
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, 'commands.txt')
    with open(path, 'w') as f:
        f.writelines(shlex.join(argv) + '\n' for argv in argvs)
    return path


def check(points: Sequence[Point], root: str, extra: Sequence[str] = ()) -> list:
    """Parses every point's --config flags in-process, exactly as ascjax.train will, so a typo in
    the last point stops the sweep before the first one runs; returns the points' configs.
    Extras that are not --config.* flags (e.g. --coordinator) are left to train."""
    from ml_collections import config_flags
    config_extra = [a for a in extra if a.startswith(('--config.', '-config.'))]
    configs = []
    for p in points:
        argv = ['ascjax.train', *(a for a in command(p, root, config_extra)[3:]
                                  if not a.startswith('--workdir='))]
        fv = flags.FlagValues()
        config_flags.DEFINE_config_file('config', None, 'sweep check', flag_values=fv,
                                        sys_argv=argv)
        try:
            fv(argv)
            configs.append(fv.config)   # loads the config and applies the overrides
        except Exception as e:  # noqa: BLE001 -- any failure here is a bad point
            raise ValueError(f'point {p.name!r}: {shlex.join(argv[1:])}: '
                             f'{type(e).__name__}: {e}') from e
    return configs


def prepare_data(configs: Sequence) -> None:
    """Builds the data of every distinct `config.data` once, here, before points run side by
    side: parallel points would otherwise all start building the same dataset on a fresh
    machine."""
    from ascjax import run as run_lib
    seen = set()
    for config in configs:
        key = config.data.to_json(sort_keys=True)
        if key not in seen:
            seen.add(key)
            run_lib.open_data(config)


def select(points: Sequence[Point], only: Sequence[str]) -> list[Point]:
    """The points named in `only` (0-based indices or names), in sweep order; all if empty."""
    if not only:
        return list(points)
    names = [p.name for p in points]
    chosen = set()
    for item in only:
        if item.isdigit() and item not in names:
            if int(item) >= len(points):
                raise ValueError(f'--only={item}: the sweep has {len(points)} points (0-based)')
            chosen.add(names[int(item)])
        elif item in names:
            chosen.add(item)
        else:
            raise ValueError(f'--only={item}: no such point; points are {names}')
    return [p for p in points if p.name in chosen]


# --- state of a point's workdir -------------------------------------------------------------

def _lookup(config: dict, key: str):
    for part in key.split('.'):
        if not isinstance(config, dict) or part not in config:
            raise KeyError(key)
        config = config[part]
    return config


def _same(a, b) -> bool:
    def norm(v):
        return [norm(x) for x in v] if isinstance(v, (list, tuple)) else v
    a, b = norm(a), norm(b)
    return a == b or (isinstance(a, list) and not isinstance(b, list) and a == [b])


def state(point: Point, root: str) -> tuple[str, str]:
    """('done' | 'stale' | 'failed' | 'pending', detail) of a point's workdir.

    stale: its config.json (written when train starts) disagrees with the point's row or
    overrides, so neither its results nor its checkpoints belong to this point. failed: it has a
    log but no results (the log path is the detail). pending: not run here (detail says whether
    it was started, e.g. by a cluster launcher, which keeps its own logs)."""
    workdir = os.path.join(root, point.name)
    config_path = os.path.join(workdir, 'config.json')
    if os.path.exists(config_path):
        with open(config_path) as f:
            config = json.load(f)
        if point.row and 'row' in config and config['row'] != point.row:
            return 'stale', f'{config_path} is row {config["row"]!r}, not {point.row!r}'
        for key, value in point.overrides.items():
            try:
                found = _lookup(config, key)
            except KeyError:
                return 'stale', f'{config_path} has no {key}'
            if not _same(found, _plain(value)):
                return 'stale', f'{config_path} has {key}={found!r}, the point {value!r}'
    if os.path.exists(os.path.join(workdir, RESULTS)):
        return 'done', os.path.join(workdir, RESULTS)
    log = os.path.join(workdir, LOG)
    if os.path.exists(log):
        return 'failed', log
    return 'pending', 'started elsewhere, no results yet' if os.path.exists(config_path) else ''


# --- running --------------------------------------------------------------------------------

def run_logged(argv: Sequence[str], log: str, env: dict | None = None) -> int:
    """Runs one point's command with its output appended to `log`; returns the exit status.
    Module-level, so cluster launchers (submitit) can pickle it by reference."""
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, 'a') as f:
        f.write(f'==== {datetime.datetime.now().isoformat(timespec="seconds")} '
                f'{shlex.join(argv)}\n')
        f.flush()
        return subprocess.run(list(argv), stdout=f, stderr=subprocess.STDOUT, env=env).returncode


LAUNCHERS = ('local', 'slurm', 'submitit_local')


def _say(line: str) -> None:
    """One whole line to stdout: points running side by side report from their own threads, and
    print() writes a line and its newline apart."""
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def run(points: Sequence[Point], root: str, extra: Sequence[str] = (),
        env: dict | None = None, parallel: int = 1, launcher: str = 'local',
        cluster: dict | None = None, make_command=command) -> dict[str, str]:
    """Runs the points, skipping finished ones, each as its own process with output in
    ROOT/name/log.txt: here, `parallel` at a time (`launcher='local'`), or as a submitit job array
    on SLURM (`'slurm'`, with `cluster` options such as slurm_partition, timeout_min,
    gpus_per_node) or on submitit's local executor (`'submitit_local'`), waiting for every job.
    Returns {name: problem} for the points without results afterwards."""
    if launcher not in LAUNCHERS:
        raise ValueError(f'--launcher={launcher!r}: expected one of {LAUNCHERS}')
    problems, todo = {}, []
    for i, p in enumerate(points, 1):
        status, detail = state(p, root)
        head = f'[{i}/{len(points)}] {p.name}'
        if status == 'done':
            print(f'{head}: done, skipped ({detail})', flush=True)
        elif status == 'stale':
            problems[p.name] = f'stale workdir, not run: {detail}; delete it or rename the point'
            print(f'{head}: {problems[p.name]}', flush=True)
        else:
            todo.append((head, p, make_command(p, root, extra), os.path.join(root, p.name, LOG)))
    def report(item, rc: int, took: float) -> None:   # as each point ends
        head, p, _, log = item
        if rc == 0 and os.path.exists(os.path.join(root, p.name, RESULTS)):
            _say(f'{head}: finished in {took:.0f} s')
        else:
            problems[p.name] = f'failed (exit status {rc}) after {took:.0f} s; log {log}'
            _say(f'{head}: {problems[p.name]}')

    if launcher == 'local':
        def one(item):
            head, _, argv, log = item
            _say(f'{head}: running, log {log}')
            start = time.time()
            report(item, run_logged(argv, log, env), time.time() - start)
        with concurrent.futures.ThreadPoolExecutor(max(int(parallel), 1)) as pool:
            list(pool.map(one, todo))
    else:
        for item, rc, took in _submit(todo, root, launcher, cluster or {}, env):
            report(item, rc, took)
    return problems


def _submit(todo, root: str, launcher: str, cluster: dict, env: dict | None):
    """The points as one submitit job array; waits for them. [(item, exit status, seconds)]."""
    try:
        import submitit
    except ImportError as e:
        raise ImportError(f"--launcher={launcher} needs submitit: pip install 'ascjax[cluster]'"
                          ) from e
    if not todo:
        return []
    executor = submitit.AutoExecutor(folder=os.path.join(root, 'submitit', '%j'),
                                     cluster='slurm' if launcher == 'slurm' else 'local')
    executor.update_parameters(**{'name': f'ascjax_sweep_{os.path.basename(root)}', **cluster})
    start = time.time()
    jobs = executor.map_array(run_logged, [argv for _, _, argv, _ in todo],
                              [log for _, _, _, log in todo], [env] * len(todo))
    for (head, _, _, log), job in zip(todo, jobs):
        print(f'{head}: submitted as job {job.job_id}, log {log}', flush=True)
    finished = []
    for item, job in zip(todo, jobs):
        try:
            rc = job.result()
        except Exception as e:        # the job itself failed (node lost, timeout): say so
            print(f'{item[0]}: job {job.job_id} failed: {e}', flush=True)
            rc = -1
        finished.append((item, rc, time.time() - start))
    return finished


# --- collecting -----------------------------------------------------------------------------

def _params(workdir: str, results: dict) -> int | None:
    """The parameter count: results.json's 'params' if train wrote one, else the #Param cell of
    the first row (the run's own; paper rows follow it) of the workdir's results.md, rounded to
    0.1k there."""
    if isinstance(results.get('params'), int):
        return results['params']
    try:
        with open(os.path.join(workdir, 'results.md')) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for i, line in enumerate(lines[:-1]):
        if line.startswith('|---'):
            cells = [c.strip() for c in lines[i + 1].strip().strip('|').split('|')]
            found = len(cells) > 1 and re.fullmatch(r'[\d.]+k', cells[1])
            return round(float(cells[1][:-1]) * 1000) if found else None
    return None


def _devices(results: Iterable[dict]) -> list[str]:
    """A..S6 always (a stable CSV layout), then other devices that occur, in layout order."""
    present = {d for r in results for d in r['accuracy']}
    known = [d.upper() for d in layout.EVAL_DEVICES] + ['unknown']
    base = [d.upper() for d in layout.DEVICES]
    return base + [d for d in known if d in present and d not in base]


def collect(points: Sequence[Point], root: str) -> dict[str, str]:
    """Writes ROOT/results.csv and ROOT/results.md from every finished point; returns
    {name: why} for the points that have no (valid) results."""
    finished, problems = {}, {}
    for p in points:
        status, detail = state(p, root)
        if status == 'done':
            try:
                finished[p.name] = evaluation.load(os.path.dirname(detail))[1]
                continue
            except (OSError, ValueError) as e:
                problems[p.name] = f'unreadable {detail}: {e}'
        elif status == 'stale':
            problems[p.name] = f'stale workdir: {detail}'
        elif status == 'failed':
            problems[p.name] = f'no {RESULTS}; log {detail}'
        else:
            problems[p.name] = (f'no {RESULTS} (started elsewhere, no log here)' if detail
                                else 'not run')
    by_name = {p.name: p for p in points}
    keys = list(dict.fromkeys(k for p in points for k in p.overrides))
    devices = _devices(finished.values())
    params = {n: _params(os.path.join(root, n), r) for n, r in finished.items()}

    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, 'results.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['name', 'config', *keys, *(f'accuracy_{d}' for d in devices),
                         'accuracy_overall', 'log_loss_overall', 'seeds', 'accuracy_std',
                         'log_loss_std', 'params', 'dataset', 'paper_accuracy_overall'])
        for name, r in finished.items():
            p = by_name[name]
            writer.writerow([
                name, p.config,
                *(format_value(p.overrides[k]) if k in p.overrides else '' for k in keys),
                *(f'{r["accuracy"][d]:.4f}' if d in r['accuracy'] else '' for d in devices),
                f'{r["accuracy"]["overall"]:.4f}', f'{r["log_loss"]["overall"]:.6f}',
                r.get('seeds', ''), f'{r["std"]["accuracy"]["overall"]:.4f}',
                f'{r["std"]["log_loss"]["overall"]:.6f}', params[name] or '',
                r.get('dataset') or '', (r.get('paper') or {}).get('overall', '')])

    lines = [f'# Sweep {os.path.basename(os.path.normpath(root))}: '
             f'{len(finished)}/{len(points)} points finished\n']
    if finished:
        lines += ['Accuracy (%)\n', evaluation.table(finished, params),
                  'Log loss\n', evaluation.table(finished, params, 'log_loss')]
    lines += ['Points\n', '| ' + ' | '.join(['Point', 'Config', *keys]) + ' |',
              '|' + '---|' * (2 + len(keys))]
    for p in points:
        cells = [p.name, f'`{p.config}`',
                 *(f'`{format_value(p.overrides[k])}`' if k in p.overrides else '' for k in keys)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
    pooled = group_tables(points, finished, params)
    lines += pooled
    if pooled:
        with open(os.path.join(root, GROUPS), 'w') as f:
            f.write('\n'.join(pooled))
    if problems:
        lines += ['Not finished\n', *(f'- {n}: {why}' for n, why in problems.items()), '']
    with open(os.path.join(root, 'results.md'), 'w') as f:
        f.write('\n'.join(lines))
    return problems


def groups(points: Sequence[Point]) -> dict[str, list[str]]:
    """{group: the names of its points}, in sweep order; points without a group are left out."""
    out = {}
    for p in points:
        if p.group is not None:
            out.setdefault(p.group, []).append(p.name)
    return out


def group_tables(points: Sequence[Point], finished: dict[str, dict],
                 params: dict[str, int | None]) -> list[str]:
    """results.md's pooled tables: every group's finished points as one row, mean ± std over all
    their seeds (`evaluation.pool`), with how many of the group's points it holds."""
    pooled, pooled_params = {}, {}
    for group, names in groups(points).items():
        done = [n for n in names if n in finished]
        if done:
            label = group + ('' if len(done) == len(names) else f' ({len(done)}/{len(names)} points)')
            pooled[label] = evaluation.pool([finished[n] for n in done])
            pooled_params[label] = params[done[0]]
    if not pooled:
        return []
    return ['Groups: each row pools its points (mean ± std over all their seeds)\n',
            'Accuracy (%)\n', evaluation.table(pooled, pooled_params),
            'Log loss\n', evaluation.table(pooled, pooled_params, 'log_loss'),
            evaluation.group_lines(pooled)]


# --- command line ---------------------------------------------------------------------------

def cluster_options(items: Sequence[str]) -> dict:
    """--cluster=KEY=VALUE flags as submitit parameters (values parsed as Python literals when
    they are one: timeout_min=240 is an int, slurm_partition=gpu a string)."""
    out = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not _KEY.match(key):
            raise app.UsageError(f'--cluster={item!r}: expected KEY=VALUE')
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _define_flags():
    """Defined only when run as a program: importing this module (tests, notebooks) adds no global
    absl flags that could clash with other tools' (tools/benchmark.py also has --only)."""
    return types.SimpleNamespace(
        sweep=flags.DEFINE_string('sweep', None, 'Sweep file (a .py defining get_sweep()).',
                                  required=True),
        root=flags.DEFINE_string('root', None, 'Sweep folder: a workdir per point, commands.txt, '
                                 'results.csv, results.md.', required=True),
        dry_run=flags.DEFINE_bool('dry_run', False, 'Write ROOT/commands.txt and list the points '
                                  'and their state; run nothing.'),
        collect_only=flags.DEFINE_bool('collect_only', False, 'Run nothing; collect the finished '
                                       'points (e.g. after a cluster launcher ran commands.txt).'),
        only=flags.DEFINE_list('only', [], 'Run only these points: 0-based indices or names '
                               '(commands.txt and the results still cover all points).'),
        extra=flags.DEFINE_multi_string('extra', [], 'A flag appended to every train command, '
                                        'e.g. --extra=--config.data.data_dir=/cache (repeatable).'),
        parallel=flags.DEFINE_integer('parallel', 1, 'With --launcher=local: points run at once '
                                      '(each its own process; on one machine they share it).'),
        launcher=flags.DEFINE_enum('launcher', 'local', list(LAUNCHERS),
                                   'local: here; slurm: a submitit job array on SLURM; '
                                   'submitit_local: submitit\'s local executor.'),
        cluster=flags.DEFINE_multi_string('cluster', [], 'A submitit parameter KEY=VALUE, e.g. '
                                          '--cluster=slurm_partition=gpu --cluster=timeout_min=240'
                                          ' --cluster=gpus_per_node=1 (repeatable).'))


def main(argv, f):
    from ascjax import logs
    logs.quiet()   # orbax/TFDS/JAX INFO lines only with --verbosity=1
    extra = [*f.extra.value, *argv[1:]]   # also: python -m ascjax.sweep ... -- --config.x=y
    if bad := [a for a in extra if not a.startswith('-')]:
        raise app.UsageError(f'unexpected arguments {bad}; pass flags for train as '
                             '--extra=--flag=value')
    root = f.root.value
    points = load_sweep(f.sweep.value)
    configs = dict(zip((p.name for p in points), check(points, root, extra)))
    path = write_commands(commands(points, root, extra), root)
    selected = select(points, [s for s in f.only.value if s])
    print(f'{len(points)} points, commands in {path}', flush=True)
    if f.dry_run.value:
        for i, p in enumerate(points):
            status, detail = state(p, root)
            mark = '' if p in selected else ' (not selected)'
            print(f'{i}: {p.name} [{status}{": " + detail if detail else ""}]{mark}')
        return 0
    pending = [p for p in selected if state(p, root)[0] in ('pending', 'failed')]
    side_by_side = f.launcher.value != 'local' or f.parallel.value > 1
    if not f.collect_only.value and side_by_side and len(pending) > 1:
        print('preparing the data of the points before they run side by side', flush=True)
        prepare_data([configs[p.name] for p in pending])
    problems = {} if f.collect_only.value else run(
        selected, root, extra, parallel=f.parallel.value, launcher=f.launcher.value,
        cluster=cluster_options(f.cluster.value))
    missing = collect(points, root)
    if os.path.exists(groups := os.path.join(root, GROUPS)):
        print(open(groups).read())
    print(f'results in {os.path.join(root, "results.csv")} and {os.path.join(root, "results.md")}')
    lost = {p.name: problems.get(p.name, missing[p.name]) for p in selected if p.name in missing}
    for name, why in lost.items():
        print(f'NOT FINISHED {name}: {why}', file=sys.stderr)
    return 1 if lost else 0


if __name__ == '__main__':
    _FLAGS = _define_flags()
    app.run(lambda argv: main(argv, _FLAGS))
