"""train(task, config, workdir): the one training loop of ascjax, for every task.

A task (the classifier, the device translator) supplies only what differs: its model, its training
split, its per-seed update and the transforms of a fresh state (`Task`). The loop does the rest, the
same way for all: mesh, optimizer and schedule, the abstract state, restore or create, the data
feed, the jitted step, progress, checkpoints.

Resume order (explicit, so a preempted run continues exactly): build the abstract state for the
current mesh -> restore the latest checkpoint into it if one exists, else create a fresh state and
apply the task's init transforms -> start the data stream at the restored step (the stream is a
pure function of seed and step, so nothing is replayed or skipped) -> train to the last step -> save.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import jax
import optax
from flax import linen as nn

from ascjax import features
from ascjax.train import checkpoint, feed, mesh as mesh_lib, optim, progress as progress_lib
from ascjax.train import state as state_lib, step as step_lib

# (fresh state, state shardings) -> state: e.g. another run's weights, dataset statistics.
InitTransform = Callable[[state_lib.TrainState, Any], state_lib.TrainState]


@dataclasses.dataclass(frozen=True)
class Task:
    """What one kind of training gives the loop.

    model:  the module trained, called as model(spectrogram, *inputs, train=...);
    inputs: its further inputs as (shape, dtype) pairs without the batch axis;
    source: the training split (a `ascjax.data.sources.Source`);
    update: tx -> the per-seed update (`step.Update`);
    init:   transforms applied in order to a fresh state (never to a restored one);
    wrap_optimizer: (tx, params) -> tx, e.g. pruning masks kept in the optimizer state;
    prepare: a map of the global batch before the per-seed updates (e.g. audio -> log-mels).
    """
    name: str
    model: nn.Module
    source: Any
    update: Callable[[optax.GradientTransformation], step_lib.Update]
    init: Sequence[InitTransform] = ()
    inputs: tuple = ()
    wrap_optimizer: Callable[[optax.GradientTransformation, Any],
                             optax.GradientTransformation] | None = None
    prepare: Callable[[dict], dict] | None = None


class Trained(NamedTuple):
    state: state_lib.TrainState
    shardings: Any
    mesh: Any
    progress: progress_lib.Progress
    total_steps: int


def init_or_restore(mngr, target, create: Callable[[], state_lib.TrainState]):
    """The latest checkpoint laid out like `target`, or `create()` when there is none."""
    state = checkpoint.restore(mngr, target)
    if state is None:
        return create()
    logging.info('resumed from step %d', int(state.step))
    return state


def fit(state, train_step, batches: Iterable[dict], mngr, progress: progress_lib.Progress,
        total_steps: int, checkpoint_every: int):
    """Runs `train_step` over `batches` (global batches) to `total_steps`, checkpointing every
    `checkpoint_every` steps and at the end. Returns the final state (saved). A non-finite loss
    stops training (`progress.NonFiniteLoss`) at the next log line or checkpoint, whichever comes
    first, and no checkpoint of a state after it is written."""
    step = int(jax.device_get(state.step))
    try:
        metrics = None
        for batch in batches:
            state, metrics = train_step(state, batch)
            step += 1
            progress(step, metrics)
            if step % checkpoint_every == 0 and step != total_steps:
                progress_lib.check_finite(step, jax.device_get(metrics))
                checkpoint.save(mngr, state)
        progress.flush()
        if mngr.latest_step() != int(jax.device_get(state.step)):
            if metrics is not None:
                progress_lib.check_finite(step, jax.device_get(metrics))
            checkpoint.save(mngr, state)
    finally:          # also on an error: saves already issued complete
        mngr.wait_until_finished()
    return state


def train(task: Task, config, workdir: str) -> Trained:
    """Trains `task` (config.num_seeds seeds at once) to the configured step, resuming from the
    workdir's checkpoints, and returns the final state with what evaluating it needs."""
    mesh = mesh_lib.data_mesh()
    mesh_lib.check_batch_size(config.train.batch_size)
    if jax.process_index() == 0:
        checkpoint.write_run_info(workdir, config)
    steps_per_epoch = max(len(task.source) // config.train.batch_size, 1)
    total_steps = optim.total_steps(config.train, steps_per_epoch)
    shape = features.input_shape(config.data)
    params = state_lib.param_shapes(task.model, shape, task.inputs)
    tx = optim.optimizer(config.train, params, steps_per_epoch)
    if task.wrap_optimizer is not None:
        tx = task.wrap_optimizer(tx, params)
    target = state_lib.abstract(task.model, tx, shape, config.seed, config.num_seeds, mesh,
                                task.inputs)
    shardings = jax.tree.map(lambda s: s.sharding, target)

    def create():
        state = state_lib.create(task.model, tx, shape, config.seed, config.num_seeds, mesh,
                                 task.inputs)
        for transform in task.init:
            state = transform(state, shardings)
        return state

    mngr = checkpoint.manager(workdir, config.train.keep_checkpoints)
    state = init_or_restore(mngr, target, create)
    start = int(jax.device_get(state.step))
    train_step = step_lib.make_step(task.update(tx), shardings, mesh,
                                    optim.schedule(config.train, steps_per_epoch), task.prepare,
                                    config.get('seeds_at_once', 0))
    progress = progress_lib.progress_logger(workdir, total_steps, start,
                                            config.train.log_every_steps)
    if start == 0:
        progress_lib.hparams(progress, config)
    batches = feed.train_batches(task.source, config, mesh, start, max(total_steps - start, 0))
    logging.info('training %s for steps %d..%d (%d per epoch, batch %d), %d seed(s), %d device(s) '
                 'in mesh %s, feed: %s', task.name, start, total_steps, steps_per_epoch,
                 config.train.batch_size, config.num_seeds, jax.device_count(), dict(mesh.shape),
                 feed.name(config, task.source))
    state = fit(state, train_step, batches, mngr, progress, total_steps,
                config.train.checkpoint_every_steps)
    return Trained(state, shardings, mesh, progress, total_steps)
