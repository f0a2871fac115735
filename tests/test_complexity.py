"""Complexity report: every paper row works; params, statistics, MACs and the DCASE sizes of the
paper's compressed model agree with REFERENCE.md."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ascjax import features, models
from ascjax.tasks import complexity
from ascjax.compress import prune
from ascjax.train import optim
from experiments.configs import paper


@pytest.mark.parametrize('row', sorted(paper.ROWS))
def test_every_row_reports(row):
    r = complexity.report(paper.get_config(row))
    expected = {'bcresnet_mod': {1: 8_055, 8: 314_970}, 'bcresnet': {8: 317_610}}
    assert r['params'] == expected[paper.ROWS[row].model][paper.ROWS[row].tau]
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
    out = subprocess.run([sys.executable, '-m', 'ascjax.tasks.complexity',
                          '--config=experiments/configs/paper.py:mod1_resnorm', '--json'],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    assert {'params', 'nonzero_params', 'bn_statistics', 'size_bytes', 'macs_per_clip'} <= set(r)
    assert r['params'] == 8_055


def _trained_like_variables(config, seed=0):
    """Random values for every variable of `config`'s model, BN/SSN scale, bias, mean and var
    included: after training none of them is zero (at init bias and mean are, and count_nonzero
    would skip them)."""
    model = models.from_config(config.model)
    shape = (1, *features.input_shape(config.data))
    abstract = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        value = rng.standard_normal(leaf.shape).astype(np.float32)
        return np.abs(value) + 0.1 if jax.tree_util.keystr(path).endswith("['var']") else value
    return jax.tree_util.tree_map_with_path(fill, dict(abstract))


def test_all8_all16_reproduce_the_papers_61_0_and_121_9_kb():
    """REFERENCE.md §5.2: Mod-8 with its kernels pruned to 89% by global magnitude (the config of
    the compressed row's pruning phase) is 61.0 KB with every non-zero value at 8 bits and
    121.9 KB at 16 bits, BN/SSN statistics included, KB = 1,024 B."""
    config = paper.get_config('mod8_resnorm_kd_compressed,prune')
    variables = _trained_like_variables(config)
    params = variables['params']
    prunable = optim.path_mask(params, config.train.prune.include, config.train.prune.exclude)
    masks = prune.magnitude_masks(params, prunable, config.train.prune.sparsity,
                                  config.train.prune.scope)
    variables['params'] = jax.tree.map(lambda p, m: np.where(m, p, 0), params, masks)
    r = complexity.report(config, variables)
    assert config.train.prune.sparsity == 0.89 and r['params'] == 314_970
    kb = {m: b / 1024 for m, b in r['size_bytes_by_dtype_map'].items()}
    assert kb['all8'] == pytest.approx(61.0, abs=0.3)
    assert kb['all16'] == pytest.approx(121.9, abs=0.6)
    assert r['over_128kb_by_dtype_map'] == {'float32': True, 'float16': False, 'int8': True,
                                            'all8': False, 'all16': False}
    assert r['over_128kb'] and r['limit_bytes'] == 131_072


def test_format_report_shows_every_accounting_with_the_limit():
    r = complexity.report(paper.get_config('mod1'), dtype_map='int8')
    text = complexity.format_report(r)
    for m in complexity.DTYPE_MAPS:
        b = r['size_bytes_by_dtype_map'][m]
        assert f'{b:,} B = {b / 1024:7.1f} KB  within 128 KB' in text, m
    assert 'int8 (selected)' in text and 'int8, BN folded' in text
    assert '128 KB = 131,072 B' in text
    big = complexity.format_report(complexity.report(paper.get_config('mod8')))
    assert 'float32 (selected)' in big and 'OVER the 128 KB limit' in big
