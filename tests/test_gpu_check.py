"""tools/gpu_check.sh runs on a CPU machine too (its CPU settings) and writes its records."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_and_writes_every_section(tmp_path):
    env = {**os.environ, 'OUT': str(tmp_path), 'GPU_CHECK_QUICK': '1', 'JAX_PLATFORMS': 'cpu',
           'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH']}
    done = subprocess.run(['sh', 'tools/gpu_check.sh', '1500'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert 'CPU settings' in done.stdout
    with open(tmp_path / 'gpu_results.json') as f:
        results = json.load(f)
    names = [r['name'] for r in results['records']]
    for prefix in ('train step: Mod-1+ResNorm', 'train step: Mod-8+ResNorm',
                   'inference: Mod-1+ResNorm', 'seed-parallel train step: Mod-1+ResNorm, K=8',
                   'compile:', 'translator', 'training loop: mod1_resnorm'):
        assert any(prefix in n for n in names), (prefix, names)
    assert results['section_wall_s']['total'] > 0 and results['targets']
