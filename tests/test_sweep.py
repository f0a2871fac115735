"""Sweeps: sweep files, command lines, --dry_run, collecting results, and one real 2-point sweep."""

import csv
import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

from ascjax import sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sweep_file(tmp_path, points, name='s.py'):
    path = tmp_path / name
    path.write_text(f'def get_sweep():\n    return {points!r}\n')
    return str(path)


def _sweep(*args, timeout=600):
    env = dict(os.environ, JAX_PLATFORMS='cpu',
               XLA_FLAGS='--xla_force_host_platform_device_count=1')
    return subprocess.run([sys.executable, '-m', 'ascjax.sweep', *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_repository_sweeps_load_and_check():
    points = sweep.load_sweep(os.path.join(REPO, 'experiments/sweeps/mod1_norms.py'))
    assert [p.name for p in points] == ['mod1', 'mod1_globalfreqnorm', 'mod1_freqin',
                                        'mod1_preresnorm', 'mod1_resnorm']
    assert all(p.overrides == {'data.preset': 'full', 'num_seeds': 3} for p in points)
    lam = sweep.load_sweep(os.path.join(REPO, 'experiments/sweeps/resnorm_lambda.py'))
    assert [p.overrides['model.norm_lambda'] for p in lam] == [0.05, 0.1, 0.2, 0.5]
    assert {p.config for p in lam} == {'experiments/configs/paper.py:mod1_resnorm'}
    demo = sweep.load_sweep(os.path.join(REPO, 'experiments/sweeps/demo.py'))
    assert [(p.name, p.group) for p in demo] == [('mod1.s0', 'mod1'), ('mod1.s1', 'mod1'),
                                                 ('mod1_resnorm.s0', 'mod1_resnorm'),
                                                 ('mod1_resnorm.s1', 'mod1_resnorm')]
    ablation = sweep.load_sweep(os.path.join(REPO, 'experiments/sweeps/synthetic_ablation.py'))
    assert len(ablation) == 30 and len({p.group for p in ablation}) == 10
    converge = sweep.load_sweep(os.path.join(REPO, 'experiments/sweeps/synthetic_convergence.py'))
    cwd = os.getcwd()
    os.chdir(REPO)   # config paths are relative to the repository root
    try:
        configs = sweep.check(points + lam + demo + ablation + converge, '/tmp/root')
        first = len(points + lam + demo)
        assert [c.seed for c in configs[first:first + 3]] == [0, 1, 2]
        assert all(c.num_seeds == 1 and c.data.preset == 'demo' for c in configs[9:13])
        translated = [c for c, p in zip(configs[first:], ablation) if 'translator' in p.name]
        assert len(translated) == 3 and all(c.translator.workdir and c.translator.required
                                            and not c.paper for c in translated)
        # the paper's five Mod-1 rows at 96 epochs (80% of 120), those and the two
        # Freq-MixStyle rows at 120 (none and ResNorm with 5 seeds), none and ResNorm at 240
        assert len(converge) == 48
        budgets = [(c.train.num_epochs, c.train.checkpoint_every_steps) for c in configs[-48:]]
        assert budgets == ([(96, 6528)] * 19 + [(120, 8160)] * 23   # kept: 80% of the steps
                           + [(240, 16320)] * 6)
        assert [p.name for p in converge[:5]] == [f'mod1.e96.s{seed}' for seed in range(5)]
        assert [p.name for p in converge[42:45]] == ['mod1.e240.s0', 'mod1.e240.s1',
                                                     'mod1.e240.s2']
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize('value, text', [
    ('full', 'full'), ('', ''), (0.05, '0.05'), (1e-5, '1e-05'), (3, '3'), (True, 'true'),
    (False, 'false'), (('input',), "('input',)"), (('input', 'stage1'), "('input', 'stage1')"),
    ([2, 2], '(2, 2)'), ((), '()'), ({'a': 1}, "{'a': 1}"), (np.float64(0.1), '0.1'),
    (np.int64(3), '3'), (np.bool_(False), 'false'), ((np.float64(0.2), 'x'), "(0.2, 'x')")])
def test_format_value(value, text):
    assert sweep.format_value(value) == text


@pytest.mark.parametrize('value', [None, object(), (object(),), {1, 2}, np.zeros(2)])
def test_format_value_rejects_what_config_flags_cannot_parse(value):
    with pytest.raises(ValueError, match='cannot be passed'):
        sweep.format_value(value)


def test_commands_quote_and_round_trip_through_config_flags(tmp_path):
    points = sweep.load_sweep(_sweep_file(tmp_path, [
        {'name': 'a', 'config': 'experiments/configs/paper.py:mod1_resnorm,runlocal',
         'overrides': {'model.norm_lambda': 0.2, 'model.norm_positions': ('input', 'stage1'),
                       'data.preset': 'full', 'train.batch_size': 8,
                       'model.classifier_bn': True, 'model.pool': [1, 2]}},
        {'name': 'b', 'config': 'experiments/configs/paper.py:mod1'}]))
    root = str(tmp_path / 'my root')
    argvs = sweep.commands(points, root, ['--config.data.data_dir=/c d'])
    assert argvs[0] == [
        sys.executable, '-m', 'ascjax.train',
        '--config=experiments/configs/paper.py:mod1_resnorm,runlocal',
        f'--workdir={root}/a', '--config.model.norm_lambda=0.2',
        "--config.model.norm_positions=('input', 'stage1')", '--config.data.preset=full',
        '--config.train.batch_size=8', '--config.model.classifier_bn=true',
        '--config.model.pool=(1, 2)', '--config.data.data_dir=/c d']
    assert argvs[1][3:] == ['--config=experiments/configs/paper.py:mod1', f'--workdir={root}/b',
                            '--config.data.data_dir=/c d']
    path = sweep.write_commands(argvs, root)
    assert [shlex.split(line) for line in open(path)] == argvs
    # What config_flags makes of these flags is what the sweep asked for.
    from absl import flags
    from ml_collections import config_flags
    argv = ['train', *argvs[0][3:]]
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file('config', None, '', flag_values=fv, sys_argv=argv)
    flags.DEFINE_string('workdir', None, '', flag_values=fv)
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        fv(argv)
        c = fv.config
    finally:
        os.chdir(cwd)
    assert c.model.norm_lambda == 0.2 and c.model.norm_positions == ('input', 'stage1')
    assert c.data.preset == 'full' and c.train.batch_size == 8 and c.model.classifier_bn is True
    assert c.model.pool == (1, 2) and c.data.data_dir == '/c d'
    assert c.train.num_epochs == 1   # the ,runlocal option survived


def test_bad_sweeps_fail_before_running(tmp_path):
    with pytest.raises(ValueError, match='used twice'):
        sweep.points_from([{'name': 'a', 'config': 'x.py'}, {'name': 'a', 'config': 'y.py'}])
    with pytest.raises(ValueError, match='plain folder name'):
        sweep.points_from([{'name': 'a/b', 'config': 'x.py'}])
    with pytest.raises(ValueError, match='dotted field'):
        sweep.points_from([{'name': 'a', 'config': 'x.py', 'overrides': {'--model.x': 1}}])
    points = sweep.points_from([
        {'name': 'ok', 'config': 'experiments/configs/paper.py:mod1_resnorm'},
        {'name': 'typo', 'config': 'experiments/configs/paper.py:mod1_resnorm',
         'overrides': {'model.norm_lambd': 0.2}}])
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        with pytest.raises(ValueError, match="point 'typo'.*norm_lambda"):
            sweep.check(points, str(tmp_path))
        with pytest.raises(ValueError, match="point 'ok'.*int"):   # num_steps is an int
            sweep.check(points[:1], str(tmp_path), ['--config.train.num_steps=2.5'])
    finally:
        os.chdir(cwd)
    assert sweep.select(points, ['1']) == points[1:]
    assert sweep.select(points, ['typo', '0']) == points
    with pytest.raises(ValueError, match='no such point'):
        sweep.select(points, ['nope'])


def test_dry_run_writes_commands_and_runs_nothing(tmp_path):
    root = tmp_path / 'root'
    proc = _sweep(f'--sweep={REPO}/experiments/sweeps/resnorm_lambda.py', f'--root={root}',
                  '--dry_run', '--only=1', '--extra=--config.data.data_dir=/cache')
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (root / 'commands.txt').read_text().splitlines()
    assert len(lines) == 4
    assert shlex.split(lines[2])[3:] == [
        '--config=experiments/configs/paper.py:mod1_resnorm',
        f'--workdir={root}/resnorm_lambda0.2', '--config.model.norm_lambda=0.2',
        '--config.data.preset=full', '--config.num_seeds=3', '--config.data.data_dir=/cache']
    assert '1: resnorm_lambda0.1 [pending]\n' in proc.stdout
    assert '0: resnorm_lambda0.05 [pending] (not selected)' in proc.stdout
    assert sorted(os.listdir(root)) == ['commands.txt']


def _results(overall, seeds=3, devices=('A', 'B', 'C', 'S1', 'S2', 'S3', 'S4', 'S5', 'S6')):
    acc = {d: overall + i for i, d in enumerate(devices)} | {'overall': overall}
    loss = {d: 1.0 + i / 10 for i, d in enumerate(devices)} | {'overall': 1.5}
    return {'accuracy': acc, 'log_loss': loss, 'seeds': seeds,
            'std': {'accuracy': {'overall': 0.5}, 'log_loss': {'overall': 0.01}}}


def _fake_workdir(root, name, config=None, results=None, log=None, md_params=None):
    d = root / name
    d.mkdir(parents=True)
    if config is not None:
        (d / 'config.json').write_text(json.dumps(config))
    if results is not None:
        (d / 'results.json').write_text(json.dumps(results))
    if log is not None:
        (d / 'log.txt').write_text(log)
    if md_params is not None:
        (d / 'results.md').write_text(   # as evaluation.write makes it
            'Accuracy (%)\n\n| Method | #Param | A | Overall | Std. Dev |\n'
            f'|---|---|---|---|---|\n| x | {md_params} | 1 | 1 | 0 |\n')


def test_collect_writes_csv_and_md_and_flags_missing(tmp_path, capsys):
    cfg = 'experiments/configs/paper.py:mod1_resnorm'
    points = sweep.points_from([
        {'name': f'lam{v}', 'config': cfg,
         'overrides': {'model.norm_lambda': v, 'model.norm_positions': ('input',)}}
        for v in (0.05, 0.1, 0.2, 0.5)] + [{'name': 'plain', 'config': cfg},
                                           {'name': 'elsewhere', 'config': cfg}])
    root = tmp_path / 'root'

    def config(lam):
        return {'row': 'mod1_resnorm', 'model': {'norm_lambda': lam, 'norm_positions': ['input']}}
    _fake_workdir(root, 'lam0.05', config(0.05), _results(60.0), md_params='8.1k')
    _fake_workdir(root, 'lam0.1', config(0.1), {**_results(70.0, seeds=1, devices=('A', 'B')),
                                                'params': 8123})
    _fake_workdir(root, 'lam0.2', config(0.2), log='Traceback: boom\n')        # crashed
    _fake_workdir(root, 'lam0.5', config(0.9), _results(99.0))                 # stale workdir
    # 'plain' has no workdir at all; 'elsewhere' was started by a launcher (config.json only)
    _fake_workdir(root, 'elsewhere', {'row': 'mod1_resnorm'})
    problems = sweep.collect(points, str(root))

    assert set(problems) == {'lam0.2', 'lam0.5', 'plain', 'elsewhere'}
    assert 'started elsewhere' in problems['elsewhere']
    assert str(root / 'lam0.2' / 'log.txt') in problems['lam0.2']
    assert 'norm_lambda=0.9' in problems['lam0.5'] and problems['plain'] == 'not run'
    rows = list(csv.DictReader(open(root / 'results.csv')))
    assert [r['name'] for r in rows] == ['lam0.05', 'lam0.1']
    assert list(rows[0])[:4] == ['name', 'config', 'model.norm_lambda', 'model.norm_positions']
    assert rows[0]['model.norm_lambda'] == '0.05'
    assert rows[0]['model.norm_positions'] == "('input',)"
    assert float(rows[0]['accuracy_S6']) == 68.0 and float(rows[0]['accuracy_overall']) == 60.0
    assert float(rows[0]['log_loss_overall']) == 1.5 and rows[0]['seeds'] == '3'
    assert float(rows[0]['accuracy_std']) == 0.5 and float(rows[0]['log_loss_std']) == 0.01
    assert rows[0]['params'] == '8100' and rows[1]['params'] == '8123'
    assert rows[1]['accuracy_S6'] == '' and float(rows[1]['accuracy_B']) == 71.0
    md = (root / 'results.md').read_text()
    assert '2/6 points finished' in md
    assert ('| Method | #Param | A | B | C | S1 | S2 | S3 | S4 | S5 | S6 | Overall | Std. Dev |'
            in md)
    assert '| lam0.05 | 8.1k | 60.0 | 61.0 |' in md and '| lam0.1 | 8.1k | 70.0 | 71.0 |' in md
    assert '| lam0.05 | 8.1k | 1.000 |' in md   # the log-loss table
    assert "| lam0.2 | `experiments/configs/paper.py:mod1_resnorm` | `0.2` | `('input',)` |" in md
    assert '- lam0.2: no results.json; log ' in md and '- plain: not run' in md

    # The runner never reruns a finished point nor trains on top of a stale workdir.
    problems = sweep.run([points[0], points[3]], str(root))
    assert list(problems) == ['lam0.5'] and problems['lam0.5'].startswith('stale workdir, not run')
    assert '[1/2] lam0.05: done, skipped' in capsys.readouterr().out


def test_collect_puts_the_paper_row_under_each_point_of_a_paper_row(tmp_path):
    """A point's config.json (written by train) carries its row's paper numbers and dataset: the
    results table shows the paper's row and ours - paper under it, not comparable off TAU20."""
    from experiments.configs import paper
    points = sweep.points_from([
        {'name': 'on_tau', 'config': 'experiments/configs/paper.py:mod8_resnorm'},
        {'name': 'on_synth', 'config': 'experiments/configs/paper.py:mod1'}])
    root = tmp_path / 'root'

    def config(row, dataset):
        return {'row': row, 'paper': paper.paper_config(row).to_dict(),
                'data': {'dataset': dataset}}
    _fake_workdir(root, 'on_tau', config('mod8_resnorm', 'tau2020mobile'),
                  {**_results(75.0), 'params': 314_970})
    # results.json of an older train, without paper numbers; its #Param only in results.md,
    # as the first row (paper rows follow it)
    _fake_workdir(root, 'on_synth', config('mod1', 'synthetic'), _results(60.0))
    (root / 'on_synth' / 'results.md').write_text(
        'Note\n\n| Method | #Param | A |\n|---|---|---|\n| on_synth | 8.1k | 60 |\n'
        '| paper: BC-ResNet-Mod-1 (TAU20) | 9.9k | 73.1 |\n')
    assert sweep.collect(points, str(root)) == {}
    md = (root / 'results.md').read_text()
    assert 'NOT COMPARABLE: on_synth ran on synthetic data, not TAU20:' in md
    assert '| paper: BC-ResNet-Mod-8 + ResNorm (TAU20) | 315k | 81.3 |' in md
    assert '| ours - paper |  | -6.3 | +1.6 |' in md                   # 75.0 - 81.3, 76.0 - 74.4
    assert '| paper: BC-ResNet-Mod-1 (TAU20; ours on synthetic data, not comparable) |' in md
    assert '| ours - paper (not comparable) |  | -13.1 |' in md
    rows = {r['name']: r for r in csv.DictReader(open(root / 'results.csv'))}
    assert (rows['on_tau']['dataset'], rows['on_tau']['paper_accuracy_overall']) == (
        'tau2020mobile', '75.2')
    assert rows['on_synth']['dataset'] == 'synthetic' and rows['on_synth']['params'] == '8100'


@pytest.fixture(scope='module')
def data_dir(train_data_dir):
    return train_data_dir


@pytest.mark.slow   # two full training subprocesses (make test-slow)
def test_two_point_sweep_end_to_end(tau_dir, data_dir, tmp_path):
    """Two real tiny runs and one that fails fast: the failure is reported with its log, the
    others are collected, the exit status is 1; a rerun skips the finished points."""
    path = _sweep_file(tmp_path, [
        {'name': 'mod1', 'config': 'tests/tiny_config.py:mod1',
         'overrides': {'train.num_steps': 2}},
        {'name': 'resnorm', 'config': 'tests/tiny_config.py:mod1_resnorm',
         'overrides': {'train.num_steps': 2, 'model.norm_lambda': 0.2}},
        {'name': 'broken', 'config': 'tests/tiny_config.py:mod1',
         'overrides': {'data.dataset': 'no_such_dataset'}}])
    root = tmp_path / 'root'
    extra = [f'--extra=--config.data.manual_dir={tau_dir}',
             f'--extra=--config.data.data_dir={data_dir}']
    proc = _sweep(f'--sweep={path}', f'--root={root}', *extra)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    log = root / 'broken' / 'log.txt'
    assert 'NOT FINISHED broken: failed (exit status 1)' in proc.stderr
    assert str(log) in proc.stderr and 'no_such_dataset' in log.read_text()
    for name in ('mod1', 'resnorm'):
        log_text = (root / name / 'log.txt').read_text()
        assert (root / name / 'results.json').exists(), log_text[-3000:]
    assert len((root / 'commands.txt').read_text().splitlines()) == 3
    rows = list(csv.DictReader(open(root / 'results.csv')))
    assert [(r['name'], r['train.num_steps'], r['model.norm_lambda']) for r in rows] == [
        ('mod1', '2', ''), ('resnorm', '2', '0.2')]
    r = json.load(open(root / 'resnorm' / 'results.json'))
    assert float(rows[1]['accuracy_overall']) == pytest.approx(r['accuracy']['overall'], abs=1e-4)
    assert json.load(open(root / 'resnorm' / 'config.json'))['model']['norm_lambda'] == 0.2
    md = (root / 'results.md').read_text()
    assert '2/3 points finished' in md and '| resnorm |' in md and '- broken: no results.json' in md

    proc = _sweep(f'--sweep={path}', f'--root={root}', '--only=mod1,resnorm', *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.count('done, skipped') == 2 and 'running' not in proc.stdout


def _fake_command(seconds: float):
    """A stand-in for a training run: records its start/end times and writes results.json."""
    def make(point, root, extra=()):
        workdir = os.path.join(root, point.name)
        code = ('import json, os, sys, time; w = sys.argv[1]; os.makedirs(w, exist_ok=True); '
                f't = time.time(); time.sleep({seconds}); '
                'json.dump({"accuracy": {}, "span": [t, time.time()]}, '
                'open(os.path.join(w, "results.json"), "w")); print("trained", w)')
        return [sys.executable, '-c', code, workdir]
    return make


def _points(n):
    return sweep.points_from([{'name': f'p{i}', 'config': 'experiments/configs/paper.py:mod1'}
                              for i in range(n)])


def test_parallel_local_points_overlap(tmp_path):
    root = str(tmp_path / 'root')
    assert sweep.run(_points(3), root, parallel=3, make_command=_fake_command(1.5)) == {}
    spans = [json.load(open(os.path.join(root, f'p{i}', 'results.json')))['span']
             for i in range(3)]
    assert max(s for s, _ in spans) < min(e for _, e in spans)      # all three ran at once
    assert 'trained' in open(os.path.join(root, 'p0', 'log.txt')).read()


def test_submitit_local_launcher_runs_every_point(tmp_path):
    """Through submitit's local executor, in a subprocess (its job watcher outlives pytest's
    captured streams)."""
    pytest.importorskip('submitit')
    root = str(tmp_path / 'root')
    code = ('import sys; from tests.test_sweep import _points, _fake_command; '
            'from ascjax import sweep; '
            f'sys.exit(len(sweep.run(_points(2), {root!r}, launcher="submitit_local", '
            'cluster={"timeout_min": 5}, make_command=_fake_command(0.1))))')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert proc.stdout.count('submitted as job') == 2 and proc.stdout.count('finished in') == 2
    assert all(os.path.exists(os.path.join(root, f'p{i}', 'results.json')) for i in range(2))


def test_cluster_options_parse_literals():
    assert sweep.cluster_options(['timeout_min=240', 'slurm_partition=gpu']) == {
        'timeout_min': 240, 'slurm_partition': 'gpu'}
    with pytest.raises(Exception, match='KEY=VALUE'):
        sweep.cluster_options(['oops'])


def test_collect_pools_the_points_of_a_group_into_one_row(tmp_path):
    """A row's seeds as separate points (the ablation's layout): results.md has each point, and
    one pooled row per group, mean ± std over all its seeds, marked when a point is missing."""
    from tests.test_evaluation import _results as device_results
    cfg = 'experiments/configs/paper.py:mod1'
    points = sweep.points_from(
        [{'name': f'mod1.s{s}', 'group': 'mod1', 'config': cfg, 'overrides': {'seed': s}}
         for s in range(2)]
        + [{'name': f'freqin.s{s}', 'group': 'freqin', 'config': cfg, 'overrides': {'seed': s}}
           for s in range(3)])
    root = tmp_path / 'root'
    correct = {'mod1.s0': (8,) * 9, 'mod1.s1': (6,) * 9, 'freqin.s0': (7,) * 9,
               'freqin.s1': (9,) * 9}                                  # freqin.s2 not run
    for name, right in correct.items():
        _fake_workdir(root, name, {'row': 'mod1', 'seed': int(name[-1])},
                      device_results(right))
    assert set(sweep.collect(points, str(root))) == {'freqin.s2'}
    md = (root / 'results.md').read_text()
    groups = md[md.index('Groups:'):]
    assert f'| mod1 |  | 70.0 ± {np.std([80, 60], ddof=1):.1f} |' in groups
    assert f'| freqin (2/3 points) |  | 80.0 ± {np.std([70, 90], ddof=1):.1f} |' in groups
    assert '- mod1 (2 seed(s)): seen 70.0 ± 14.1, unseen 70.0 ± 14.1' in groups
    assert (root / 'groups.md').read_text().strip() == groups.split('Not finished')[0].strip()


def test_points_run_side_by_side_find_their_data_prepared_once_per_data_config(monkeypatch):
    from ascjax import run as run_lib
    opened = []
    monkeypatch.setattr(run_lib, 'open_data', lambda config: opened.append(config.data.preset))
    points = sweep.points_from(
        [{'name': f'p{i}', 'config': 'experiments/configs/paper.py:mod1',
          'overrides': {'seed': i, 'data.preset': preset}}
         for i, preset in enumerate(('demo', 'demo', 'full'))])
    sweep.prepare_data(sweep.check(points, 'root'))
    assert opened == ['demo', 'full']


def test_a_group_must_be_a_non_empty_string():
    with pytest.raises(ValueError, match='group'):
        sweep.points_from([{'name': 'a', 'config': 'x.py:mod1', 'group': ''}])
