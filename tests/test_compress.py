"""Knowledge distillation and pruned fine-tuning end to end on the tiny fixture."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ascjax import models
from ascjax.compress import prune
from ascjax.distill import teacher_logits
from ascjax.train import optim, state as state_lib, step as step_lib
from tests import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _update(alpha, temperature, teacher):
    config = tiny_config.get_config('mod1')
    config.train.augment.update(mixup_alpha=0.0, time_roll=0, freq_masks=0, time_masks=0)
    config.train.distill.update(alpha=alpha, temperature=temperature)
    config.model.dropout = 0.0
    model = models.from_config(config.model)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 32, 16, 1))
    v = model.init(jax.random.PRNGKey(0), x[:1])
    tx = optax.sgd(0.0)
    batch = {'spectrogram': x, 'label': jnp.arange(4)}
    if teacher is not None:
        batch['teacher'] = teacher
    out = step_lib.classifier_update(model, tx, config.train, 10, None, v['params'],
                                     v['batch_stats'], tx.init(v['params']), {},
                                     jax.random.PRNGKey(3), 0, batch)
    logits, _ = model.apply(v, x, train=True, mutable=['batch_stats'])
    return float(out[3]['loss']), logits


def test_distillation_loss_is_the_weighted_ce_plus_t2_kl():
    teacher = jax.random.normal(jax.random.PRNGKey(5), (4, 10)) * 3
    ce, logits = _update(0.5, 2.0, None)
    kd, _ = _update(0.5, 2.0, teacher)
    t = 2.0
    p = jax.nn.softmax(teacher / t)
    kl = float(jnp.mean(jnp.sum(p * (jnp.log(p) - jax.nn.log_softmax(logits / t)), -1)))
    assert kd == pytest.approx(0.5 * ce + 0.5 * t * t * kl, rel=1e-5)
    only_ce, _ = _update(0.0, 2.0, teacher)
    assert only_ce == pytest.approx(ce, rel=1e-6)


def _train(workdir, tau_dir, data_dir, *extra):
    cmd = [sys.executable, '-m', 'ascjax.train', '--config=tests/tiny_config.py:mod1_resnorm',
           f'--workdir={workdir}', f'--config.data.manual_dir={tau_dir}',
           f'--config.data.data_dir={data_dir}', *extra]
    proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, JAX_PLATFORMS='cpu'),
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_teacher_logits_distillation_then_pruned_fine_tuning(tau_dir, train_data_dir, tmp_path):
    teacher, student, pruned = (str(tmp_path / n) for n in ('teacher', 'student', 'pruned'))
    _train(teacher, tau_dir, train_data_dir, '--config.num_seeds=2')
    out = str(tmp_path / 'teacher.npz')
    proc = subprocess.run([sys.executable, '-m', 'ascjax.distill.teacher_logits',
                           f'--workdir={teacher}', f'--out={out}'], cwd=REPO,
                          capture_output=True, text=True, timeout=400,
                          env=dict(os.environ, JAX_PLATFORMS='cpu'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as f:
        names, logits = list(f['filenames']), f['logits']
    assert len(names) == 8 and logits.shape == (8, 10) and len(set(names)) == 8
    # the ensemble of the teacher's two seeds: the mean of their logits
    from ascjax.train import loop
    config, model, state, mesh = loop.restore(teacher)
    source = loop.source(loop.open_data(config), 'train')
    ev = step_lib.make_eval_step(model, config, jax.tree.map(lambda a: a.sharding, state), mesh)
    p = loop.predict(state, ev, source, config, mesh)
    np.testing.assert_allclose(logits, p['logits'][:, np.argsort(p['index'])].mean(0), atol=1e-6)

    _train(student, tau_dir, train_data_dir, f'--config.train.distill.teacher_logits={out}')
    _train(pruned, tau_dir, train_data_dir, f'--config.train.init_from={student}',
           '--config.train.prune.sparsity=0.75')
    _, _, final, _ = loop.restore(pruned)
    params = jax.tree.map(lambda a: np.asarray(a)[0], final.params)
    prunable = optim.path_mask(params, [r'kernel$'])
    n = sum(p.size for p, f in zip(jax.tree.leaves(params),
                                   jax.tree.structure(params).flatten_up_to(prunable)) if f)
    assert prune.sparsity(params, prunable) == round(0.75 * n) / n
    assert json.load(open(os.path.join(pruned, 'results.json')))['seeds'] == 1


def test_teacher_logits_must_cover_every_training_clip(tau_builder, tmp_path):
    from ascjax.data import pipeline
    base = pipeline.TfdsSource.from_builder(tau_builder, 'train')
    names = base.filenames()
    path = str(tmp_path / 't.npz')
    np.savez(path, filenames=np.asarray(names[:-1]), logits=np.zeros((len(names) - 1, 10)))
    with pytest.raises(ValueError, match='no teacher logits for 1 of the 8'):
        teacher_logits.TeacherSource.of(base, path)
    np.savez(path, filenames=np.asarray(names[::-1]),
             logits=np.arange(len(names))[::-1, None] * np.ones((1, 10)))
    source = teacher_logits.TeacherSource.of(base, path)
    batch = source.load(np.arange(len(names)))
    np.testing.assert_array_equal(batch['teacher'][:, 0], np.arange(len(names)))
