"""train_and_evaluate(config, workdir): the one training loop of ascjax.

Resume order (explicit, so a preempted run continues exactly): build the abstract state for the
current mesh -> restore the latest checkpoint into it if one exists, else create a fresh state ->
start the data stream at the restored step (the stream is a pure function of seed and step, so
nothing is replayed or skipped) -> train to the last step -> save -> evaluate.
"""

from __future__ import annotations

import json
import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from ascjax import evaluation, features, models
from ascjax.compress import qat
from ascjax.data import datasets, pipeline
from ascjax.train import checkpoint, mesh as mesh_lib, optim, state as state_lib, step as step_lib


def open_data(config):
    """The TFDS builder of config.data, built on first use.

    With `data.features_on == 'device'` the builder stores waveforms and the step computes the
    log-mels in JAX; otherwise the stored examples are the cached log-mels.
    """
    on_device = config.data.get('features_on', 'host') == 'device'
    builder = datasets.prepare(
        config.data.dataset, data_dir=config.data.data_dir or None,
        manual_dir=config.data.manual_dir or None,
        preset=config.data.preset, seed=config.data.seed,
        front_end=features.from_config(config.data),
        store='audio' if on_device else 'logmel', clip_seconds=config.data.clip_seconds)
    return builder


def source(builder, split: str) -> pipeline.TfdsSource:
    return pipeline.TfdsSource.from_builder(builder, split)


def global_freq_stats(source, batch_size: int):
    """Per-mel-bin mean/std of the training split (Global FreqNorm), over every example once."""
    if source.signal != 'spectrogram':
        raise ValueError('global_freqnorm needs cached log-mels: use --config.data.features_on=host')

    def spectra():
        for batch in pipeline.eval_batches(source, global_batch_size=batch_size).as_numpy_iterator():
            yield batch['spectrogram'][batch['mask'] > 0]
    return models.global_freq_stats(spectra())


def predict(state, eval_step, source, config, mesh) -> dict[str, np.ndarray]:
    """Logits [K, N, classes] for every example of `source` (in order) and their metadata."""
    batches = pipeline.eval_batches(source, global_batch_size=config.eval.batch_size,
                                    process_index=jax.process_index(),
                                    process_count=jax.process_count())
    out = {'logits': [], 'label': [], 'device': [], 'index': [], 'mask': []}
    for local in batches.as_numpy_iterator():
        batch = mesh_lib.global_batch(local, mesh)
        logits = eval_step(state, {k: v for k, v in batch.items()
                                   if k in ('spectrogram', 'audio')})
        out['logits'].append(multihost_utils.process_allgather(logits, tiled=True))
        for key in ('label', 'device', 'index', 'mask'):
            out[key].append(multihost_utils.process_allgather(batch[key], tiled=True))
    logits = np.concatenate(out['logits'], axis=1)
    meta = {k: np.concatenate(out[k]) for k in ('label', 'device', 'index', 'mask')}
    keep = meta['mask'] > 0
    return {'logits': logits[:, keep], **{k: v[keep] for k, v in meta.items() if k != 'mask'}}


def evaluate(state, eval_step, source, config, mesh) -> dict:
    p = predict(state, eval_step, source, config, mesh)
    if len(p['index']) != len(source) or sorted(p['index'].tolist()) != list(range(len(source))):
        raise RuntimeError('evaluation did not visit every test example exactly once')
    return evaluation.results(p['logits'], p['label'], p['device'])


class Progress:
    """Logs the *previous* step's metrics, so the host never waits for the step it just issued."""

    def __init__(self, total_steps: int, start_step: int, every: int, writer,
                 jsonl: str | None = None):
        self.total, self.every, self.writer, self.jsonl = total_steps, every, writer, jsonl
        self.start_time, self.start_step = time.time(), start_step
        self.pending = None

    def __call__(self, step: int, metrics) -> None:
        previous, self.pending = self.pending, (step, metrics)
        if previous is not None and previous[0] % self.every == 0:
            self._log(*previous)

    def flush(self) -> None:
        if self.pending is not None:
            self._log(*self.pending)
            self.pending = None

    def _log(self, done: int, metrics) -> None:
        values = jax.device_get(metrics)
        rate = (done - self.start_step) / max(time.time() - self.start_time, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float('nan')
        means = {k: float(np.mean(v)) for k, v in values.items()}
        logging.info('step %d/%d  %s  %.2f steps/s  ETA %.0f s', done, self.total,
                     '  '.join(f'{k} {v:.4g}' for k, v in sorted(means.items())), rate, eta)
        if self.jsonl is not None:   # per-seed values, for sweeps and tests
            with open(self.jsonl, 'a') as f:
                f.write(json.dumps({'step': done, **{k: np.asarray(v).tolist()
                                                     for k, v in values.items()}}) + '\n')
        if self.writer is not None:
            import tensorflow as tf
            with self.writer.as_default(step=done):
                for k, v in means.items():
                    tf.summary.scalar(f'train/{k}', v)
                tf.summary.scalar('train/steps_per_s', rate)


def setup(config, steps_per_epoch: int, mesh):
    """The model (quantisation-aware with config.qat.enabled), its optimizer and the abstract train
    state (shapes + shardings on `mesh`)."""
    model = qat.model_from_config(config)
    shape = features.input_shape(config.data)
    probe = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                              jnp.zeros((1, *shape), jnp.float32)))
    tx = optim.optimizer(config.train, probe['params'], steps_per_epoch)
    return model, tx, state_lib.abstract(model, tx, shape, config.seed, config.num_seeds, mesh)


def restore(workdir: str, step: int | None = None):
    """(config, model, state, mesh) of a training workdir, on this process's devices."""
    config = checkpoint.read_config(workdir)
    mesh = mesh_lib.data_mesh()
    model, _, target = setup(config, 1, mesh)   # the schedule does not change the state's shapes
    mngr = checkpoint.manager(workdir, config.train.keep_checkpoints)
    state = checkpoint.restore(mngr, target, step)
    if state is None:
        raise FileNotFoundError(f'{workdir}/checkpoints: no checkpoint'
                                + ('' if step is None else f' at step {step}'))
    return config, model, state, mesh


def init_or_restore(mngr, target, create):
    """The latest checkpoint laid out like `target`, or `create()` when there is none."""
    state = checkpoint.restore(mngr, target)
    if state is None:
        return create()
    logging.info('resumed from step %d', int(state.step))
    return state


def progress_logger(workdir: str, total_steps: int, start: int, every: int) -> Progress:
    """Progress lines, plus TensorBoard summaries and train_metrics.jsonl on process 0."""
    writer = None
    if jax.process_index() == 0:
        import tensorflow as tf
        writer = tf.summary.create_file_writer(os.path.join(workdir, 'tensorboard'))
    return Progress(total_steps, start, every, writer,
                    os.path.join(workdir, 'train_metrics.jsonl') if writer else None)


def fit(state, train_step, batches, mesh, mngr, progress: Progress, total_steps: int,
        checkpoint_every: int):
    """Runs `train_step` over `batches` (this host's slices) to `total_steps`, checkpointing every
    `checkpoint_every` steps and at the end. Returns the final state (saved)."""
    step = int(jax.device_get(state.step))
    for local in batches.as_numpy_iterator():
        state, metrics = train_step(state, mesh_lib.global_batch(local, mesh))
        step += 1
        progress(step, metrics)
        if step % checkpoint_every == 0 and step != total_steps:
            checkpoint.save(mngr, state)
    progress.flush()
    if mngr.latest_step() != int(jax.device_get(state.step)):
        checkpoint.save(mngr, state)
    mngr.wait_until_finished()
    return state


def _variables_from(init_from: str, state, num_seeds: int):
    """`state` with params, batch_stats and norm_stats of run `init_from`'s last checkpoint (one
    seed is broadcast to all); the optimizer state stays fresh."""
    _, _, source, _ = restore(init_from)
    if source.num_seeds not in (1, num_seeds):
        raise ValueError(f'--config.train.init_from={init_from}: it holds {source.num_seeds} '
                         f'seeds, this run {num_seeds}')
    # replicated: every process holds the whole array (addressable_data(0)).
    take = lambda src, dst: jax.device_put(
        np.broadcast_to(np.asarray(src.addressable_data(0)), dst.shape), dst.sharding)
    parts = {}
    for name in ('params', 'batch_stats', 'norm_stats'):
        src, dst = getattr(source, name), getattr(state, name)
        if jax.tree.structure(src) != jax.tree.structure(dst):
            raise ValueError(f'--config.train.init_from={init_from}: its {name} do not match '
                             'this model')
        parts[name] = jax.tree.map(take, src, dst)
    return state.replace(**parts)


def _create_state(config, model, tx, shape, mesh, train_source, shardings):
    """A fresh state: initialised, or (config.train.init_from) another run's variables with a
    fresh optimizer, for fine-tuning (pruning); else Global FreqNorm statistics from the training
    set."""
    state = state_lib.create(model, tx, shape, config.seed, config.num_seeds, mesh)
    if config.train.get('init_from'):
        return _variables_from(config.train.init_from, state, config.num_seeds)
    if config.model.norm == 'global_freqnorm':
        mean, std = global_freq_stats(train_source, config.eval.batch_size)
        stats = {'norm_input': {'mean': mean, 'std': std}}
        stats = jax.tree.map(lambda a: np.broadcast_to(a, (config.num_seeds, *a.shape)), stats)
        state = state.replace(norm_stats=jax.device_put(stats, shardings.norm_stats))
    return state


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains config's model (config.num_seeds seeds at once) and evaluates it on the test split.
    Returns the results dict also written to workdir/results.json."""
    mesh = mesh_lib.data_mesh()
    mesh_lib.check_batch_size(config.train.batch_size)
    if jax.process_index() == 0:
        checkpoint.write_run_info(workdir, config)
    translate = None
    if config.get('translator') and config.translator.workdir:
        from ascjax.translator import augment as translator_augment
        translate = translator_augment.from_config(config.translator, features.from_config(
            config.data))
    elif config.get('translator') and config.translator.required:
        raise ValueError(f'row {config.row} trains with translated examples: pass '
                         '--config.translator.workdir=DIR of `python -m ascjax.translator.train`')
    if config.train.get('distill', {}).get('required') and not config.train.distill.teacher_logits:
        raise ValueError(f'row {config.row} distils a teacher: pass '
                         '--config.train.distill.teacher_logits=FILE.npz, made from a trained '
                         'teacher (e.g. row mod8_resnorm) by `python -m '
                         'ascjax.distill.teacher_logits --workdir=TEACHER_WORKDIR '
                         '[--workdir=...] --out=FILE.npz`')
    builder = open_data(config)
    train_source, test_source = source(builder, 'train'), source(builder, 'test')
    distill = config.train.get('distill')
    if distill is not None and distill.teacher_logits:
        from ascjax.distill import teacher_logits
        train_source = teacher_logits.TeacherSource.of(train_source, distill.teacher_logits)
    steps_per_epoch = len(train_source) // config.train.batch_size
    total_steps = optim.total_steps(config.train, steps_per_epoch)

    model, tx, target = setup(config, steps_per_epoch, mesh)
    shape = features.input_shape(config.data)
    shardings = jax.tree.map(lambda s: s.sharding, target)
    mngr = checkpoint.manager(workdir, config.train.keep_checkpoints)
    state = init_or_restore(mngr, target, lambda: _create_state(
        config, model, tx, shape, mesh, train_source, shardings))
    start = int(jax.device_get(state.step))

    train_step = step_lib.make_train_step(model, tx, config, optim.schedule(
        config.train, steps_per_epoch), shardings, mesh, translate)
    progress = progress_logger(workdir, total_steps, start, config.train.log_every_steps)
    batches = pipeline.train_batches(
        train_source, global_batch_size=config.train.batch_size, seed=config.seed,
        start_step=start, num_steps=max(total_steps - start, 0),
        process_index=jax.process_index(), process_count=jax.process_count())
    logging.info('training %s for steps %d..%d (%d per epoch), %d seed(s), %d device(s)',
                 config.get('row', config.model.name), start, total_steps, steps_per_epoch,
                 config.num_seeds, jax.device_count())
    state = fit(state, train_step, batches, mesh, mngr, progress, total_steps,
                config.train.checkpoint_every_steps)

    eval_step = step_lib.make_eval_step(model, config, shardings, mesh)
    results = evaluate(state, eval_step, test_source, config, mesh)
    if jax.process_index() == 0:
        params = int(sum(np.prod(p.shape[1:]) for p in jax.tree.leaves(state.params)))
        evaluation.write(results, workdir, config.get('row', config.model.name), params)
        if progress.writer is not None:
            import tensorflow as tf
            with progress.writer.as_default(step=total_steps):
                for device, acc in results['accuracy'].items():
                    tf.summary.scalar(f'test/accuracy/{device}', acc)
            progress.writer.flush()
    return results
