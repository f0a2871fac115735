"""Progress of a training run: log lines with rate and ETA, TensorBoard scalars and
train_metrics.jsonl (per-seed values) on process 0."""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import time

import jax
import numpy as np

from ascjax.logs import hms


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or infinite: training stops instead of going on."""


def check_finite(step: int, values: dict) -> None:
    """Raises NonFiniteLoss when a seed's `loss` in host `values` is not finite."""
    if 'loss' not in values:
        return
    loss = np.atleast_1d(np.asarray(values['loss'], np.float64))
    if not np.all(np.isfinite(loss)):
        seeds = np.flatnonzero(~np.isfinite(loss)).tolist()
        raise NonFiniteLoss(
            f'training loss is {loss.tolist()} at step {step} (seed index {seeds}): stopped. '
            'Checkpoints already in the workdir are from before and are kept; no checkpoint '
            'of this state is written. Lower train.learning_rate or check the inputs.')


class Progress:
    """Logs the *previous* step's metrics, so the host never waits for the step it just issued.

    The rate is measured over the last `window` log lines (so neither compilation nor the start
    of the run skews the ETA); the first line, before any window, reports no rate."""

    def __init__(self, total_steps: int, start_step: int, every: int, writer,
                 jsonl: str | None = None, window: int = 10):
        self.total, self.every, self.writer, self.jsonl = total_steps, every, writer, jsonl
        self.start_time, self.start_step = time.time(), start_step
        self.marks = collections.deque(maxlen=window + 1)     # (time, step) of log lines
        self.pending = None

    def rate(self) -> float:
        """Steps per second over the recent window of log lines (NaN before there is one)."""
        if len(self.marks) < 2:
            return float('nan')
        (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
        return (s1 - s0) / max(t1 - t0, 1e-9)

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
        check_finite(done, values)
        self.marks.append((time.time(), done))
        rate = self.rate()
        eta = (self.total - done) / rate if rate > 0 else float('nan')
        means = {k: float(np.mean(v)) for k, v in values.items()}
        logging.info('step %d/%d  %s  %s steps/s  ETA %s', done, self.total,
                     '  '.join(f'{k} {v:.4g}' for k, v in sorted(means.items())),
                     f'{rate:.2f}' if math.isfinite(rate) else '?', hms(eta))
        if self.jsonl is not None:   # per-seed values, for sweeps and tests
            with open(self.jsonl, 'a') as f:
                f.write(json.dumps({'step': done, **{k: np.asarray(v).tolist()
                                                     for k, v in values.items()}}) + '\n')
        if self.writer is not None:
            import tensorflow as tf
            with self.writer.as_default(step=done):
                for k, v in means.items():
                    tf.summary.scalar(f'train/{k}', v)
                if math.isfinite(rate):
                    tf.summary.scalar('train/steps_per_s', rate)


def progress_logger(workdir: str, total_steps: int, start: int, every: int) -> Progress:
    """Progress lines, plus train_metrics.jsonl and (with TensorFlow installed) TensorBoard
    summaries on process 0."""
    if jax.process_index() != 0:
        return Progress(total_steps, start, every, None)
    writer = None
    try:
        import tensorflow as tf
        writer = tf.summary.create_file_writer(os.path.join(workdir, 'tensorboard'))
    except ImportError:
        logging.info('no TensorFlow: no TensorBoard summaries (train_metrics.jsonl has them)')
    return Progress(total_steps, start, every, writer,
                    os.path.join(workdir, 'train_metrics.jsonl'))


def scalars(progress: Progress, step: int, values: dict[str, float]) -> None:
    """Writes `values` (e.g. test accuracies) to the run's TensorBoard, if it has one."""
    if progress.writer is None:
        return
    import tensorflow as tf
    with progress.writer.as_default(step=step):
        for name, value in values.items():
            tf.summary.scalar(name, value)
    progress.writer.flush()


def hparams(progress: Progress, config) -> None:
    """The run's config as TensorBoard hyperparameters (flattened; lists as strings), so runs of a
    sweep can be compared in the HParams tab."""
    if progress.writer is None:
        return
    from tensorboard.plugins.hparams import api as hp

    def flat(d, prefix=''):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f'{prefix}{k}.')
            elif isinstance(v, (bool, int, float, str)):
                yield f'{prefix}{k}', v
            else:
                yield f'{prefix}{k}', str(v)
    with progress.writer.as_default():
        hp.hparams(dict(flat(config.to_dict())))
    progress.writer.flush()
