"""Complexity report: every paper row works; params, statistics and MACs agree with REFERENCE.md."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ascjax import complexity, features, models
from experiments.configs import paper


@pytest.mark.parametrize('row', sorted(paper.ROWS))
def test_every_row_reports(row):
    r = complexity.report(paper.get_config(row))
    expected = {'bcresnet_mod': {1: 8_055, 8: 314_970}, 'bcresnet': {8: 317_610}}
    name, tau = paper.ROWS[row][:2]
    assert r['params'] == expected[name][tau]
    assert r['nonzero_params'] == r['params']          # a config alone is a dense model
    assert r['size_bytes'] == 4 * (r['params'] + r['bn_statistics'])


@pytest.mark.parametrize('row, conv_mmacs, bn_stats', [
    ('mod1', 25.4, 1_830), ('mod8', 661, 14_640), ('bcresnet8_ssn4', 2_302, 16_384)])
def test_macs_and_statistics_match_reference(row, conv_mmacs, bn_stats):
    r = complexity.report(paper.get_config(row))
    assert abs(r['conv_macs_per_clip'] / 1e6 - conv_mmacs) < 0.05 * conv_mmacs / 100 + 0.05
    assert r['bn_statistics'] == bn_stats
    assert r['macs_per_second'] == r['macs_per_clip'] / 10.0


def test_size_counts_only_nonzero_values_by_dtype():
    config = paper.get_config('mod1')
    model = models.from_config(config.model)
    import jax
    import jax.numpy as jnp
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, *features.input_shape(config.data))))
    pruned = jax.tree.map(np.asarray, dict(variables))
    kernel = pruned['params']['stage4']['block1']['pointwise']['kernel']
    pruned['params']['stage4']['block1']['pointwise']['kernel'] = np.zeros_like(kernel)
    dense = complexity.report(config, variables)
    sparse = complexity.report(config, pruned, dtype_map='int8')
    assert dense['nonzero_params'] - sparse['nonzero_params'] == kernel.size
    assert (sparse['size_bytes_by_dtype_map']['int8']
            == dense['size_bytes_by_dtype_map']['int8'] - kernel.size)


def test_cli_json():
    out = subprocess.run([sys.executable, '-m', 'ascjax.complexity',
                          '--config=experiments/configs/paper.py:mod1_resnorm', '--json'],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    assert {'params', 'nonzero_params', 'bn_statistics', 'size_bytes', 'macs_per_clip'} <= set(r)
    assert r['params'] == 8_055
