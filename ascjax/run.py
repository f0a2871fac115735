"""The run layer: a training workdir opened as one object, for tasks, CLIs and notebooks.

    run = ascjax.load('/tmp/mod1')          # = run.open(workdir, step=None)
    run.config, run.model, run.state        # the config.json, the model, every seed's state
    run.variables(0)                        # seed 0's variables, for model.apply
    p = run.predict('test')                 # logits [K, N, classes], label, device, index
    r = run.evaluate('test')                # per-device accuracy / log loss (ascjax.evaluation)

It also holds what every task needs to open data and build models from a config: `open_data`,
`source`, `build_model` (the classifier, quantisation-aware with config.qat.enabled, or the
device translator's U-Net, by `config.task`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from ascjax import evaluation, features, logs
from ascjax.compress import prune, qat
from ascjax.data import sources
from ascjax.models import unet
from ascjax.train import checkpoint, mesh as mesh_lib, optim, state as state_lib
from ascjax.train import step as step_lib

TASKS = ('classifier', 'translator')
TRANSLATOR_INPUTS = (((), jnp.int32),)     # the U-Net's second input: the target device id


def task_of(config) -> str:
    task = config.get('task', 'classifier')
    if task not in TASKS:
        raise ValueError(f'config.task={task!r}: expected one of {TASKS}')
    return task


def build_model(config):
    """(model, its inputs after the spectrogram as (shape, dtype) pairs) of `config.task`."""
    if task_of(config) == 'translator':
        return unet.from_config(config.model), TRANSLATOR_INPUTS
    return qat.model_from_config(config), ()


@dataclasses.dataclass(frozen=True)
class WavData:
    """A TAU-layout folder read from its wav files, without TFDS or TensorFlow
    (`data.store = 'wav'`): the examples are waveforms, log-mels are computed on the device."""
    root: str
    sample_rate: int
    clip_seconds: float


def open_data(config):
    """The data of config.data: the TFDS builder (`data.store = 'tfds'`, built on first use), or
    the wav files themselves (`'wav'`, `WavData`).

    With the TFDS builder and `data.features_on == 'device'` the builder stores waveforms and the
    step computes the log-mels in JAX; otherwise the stored examples are the cached log-mels.
    """
    from ascjax.data import datasets
    store = config.data.get('store', 'tfds')
    if store == 'wav':
        root = datasets.manual_dir_for(
            config.data.dataset, data_dir=config.data.data_dir or datasets.default_data_dir(),
            manual_dir=config.data.manual_dir or None, preset=config.data.preset,
            seed=config.data.seed)
        return WavData(root, features.from_config(config.data).sample_rate,
                       config.data.clip_seconds)
    if store != 'tfds':
        raise ValueError(f"--config.data.store={store!r}: expected 'tfds' or 'wav'")
    on_device = config.data.get('features_on', 'host') == 'device'
    return datasets.prepare(
        config.data.dataset, data_dir=config.data.data_dir or None,
        manual_dir=config.data.manual_dir or None,
        preset=config.data.preset, seed=config.data.seed,
        front_end=features.from_config(config.data),
        store='audio' if on_device else 'logmel', clip_seconds=config.data.clip_seconds)


def source(data, split: str) -> sources.Source:
    """Split `split` of `open_data`'s result."""
    if isinstance(data, WavData):
        return sources.WavSource.open(data.root, split, data.sample_rate, data.clip_seconds)
    return sources.TfdsSource.from_builder(data, split)


def optimizer_wrap(config):
    """One-shot magnitude pruning (config.train.prune.sparsity > 0): `(tx, params) -> tx` with
    the masks kept in the optimizer state; None without pruning."""
    cfg = config.train.get('prune')
    if cfg is None or cfg.sparsity <= 0:
        return None
    return lambda tx, params: prune.wrap(tx, optim.path_mask(params, cfg.include, cfg.exclude),
                                         cfg.sparsity, cfg.at_step, cfg.scope)


def classifier_eval_step(model, config, state_shardings, mesh):
    """state, batch -> logits [K, B, classes] (float32), still sharded along the batch."""
    apply = lambda v, batch: model.apply(v, batch['spectrogram'], train=False).astype(jnp.float32)
    return step_lib.make_eval_step(apply, state_shardings, mesh,
                                   step_lib.with_spectrogram(features.from_config(config.data)))


def predict(state, eval_step, source, config, mesh) -> dict[str, np.ndarray]:
    """Logits [K, N, classes] for every example of `source` (in order) and their metadata."""
    batches = sources.ordered_batches(source, config.eval.batch_size, jax.process_index(),
                                      jax.process_count())
    out = {'logits': [], 'label': [], 'device': [], 'index': [], 'mask': []}
    num_batches = -(-len(source) // (config.eval.batch_size * jax.process_count()))
    for local in logs.counted(batches, num_batches, 'predict: batches', every_s=30.0):
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
    """`ascjax.evaluation.results` of every example of `source`, checked to be visited once."""
    p = predict(state, eval_step, source, config, mesh)
    if len(p['index']) != len(source) or sorted(p['index'].tolist()) != list(range(len(source))):
        raise RuntimeError('evaluation did not visit every test example exactly once')
    return evaluation.results(p['logits'], p['label'], p['device'])


def restore_state(workdir: str, config, model, inputs=(), step: int | None = None, mesh=None):
    """The checkpoint at `step` (default latest) of `workdir`, on `mesh` (default every device)."""
    mesh = mesh if mesh is not None else mesh_lib.data_mesh()
    params = state_lib.param_shapes(model, features.input_shape(config.data), inputs)
    tx = optim.optimizer(config.train, params, 1)   # the schedule does not change the shapes
    if (wrap := optimizer_wrap(config)) is not None:
        tx = wrap(tx, params)
    target = state_lib.abstract(model, tx, features.input_shape(config.data), config.seed,
                                config.num_seeds, mesh, inputs)
    state = checkpoint.restore(checkpoint.reader(workdir),
                               target, step)
    if state is None:
        raise FileNotFoundError(f'{workdir}/checkpoints: no checkpoint'
                                + ('' if step is None else f' at step {step}'))
    return state, mesh


@dataclasses.dataclass
class Run:
    """A training workdir: its config, model and state (every seed), on this process's devices."""
    workdir: str
    config: Any
    model: Any
    state: state_lib.TrainState
    mesh: Any

    @property
    def num_seeds(self) -> int:
        return self.state.num_seeds

    @property
    def step(self) -> int:
        return int(jax.device_get(self.state.step))

    @property
    def num_params(self) -> int:
        return state_lib.param_count(self.state.params)

    def variables(self, seed: int = 0) -> dict:
        """Seed `seed`'s variables without the seed axis, for `self.model.apply`."""
        return state_lib.seed_slice(self.state, seed)

    @functools.cached_property
    def builder(self):
        return open_data(self.config)

    def source(self, split: str) -> sources.TfdsSource:
        return source(self.builder, split)

    @functools.cached_property
    def eval_step(self):
        if task_of(self.config) != 'classifier':
            raise ValueError(f'{self.workdir}: predict/evaluate are for classifier runs')
        shardings = jax.tree.map(lambda a: a.sharding, self.state)
        return classifier_eval_step(self.model, self.config, shardings, self.mesh)

    def predict(self, split: str = 'test') -> dict[str, np.ndarray]:
        """Logits [K, N, classes] of every clip of `split`, in order, with label/device/index."""
        return predict(self.state, self.eval_step, self.source(split), self.config, self.mesh)

    def evaluate(self, split: str = 'test') -> dict:
        return evaluate(self.state, self.eval_step, self.source(split), self.config, self.mesh)


def open(workdir: str, step: int | None = None) -> Run:  # noqa: A001 (ascjax.run.open reads well)
    """The run of a training workdir at checkpoint `step` (default: the latest)."""
    config = checkpoint.read_config(workdir)
    model, inputs = build_model(config)
    state, mesh = restore_state(workdir, config, model, inputs, step)
    return Run(workdir, config, model, state, mesh)
