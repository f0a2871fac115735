"""The loop's `fit` around a stub step: a non-finite loss stops training and is never saved;
readers open a workdir's checkpoints without touching them."""

import os

import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from ascjax import logs
from ascjax.train import checkpoint, loop, progress as progress_lib


@struct.dataclass
class State:
    step: jnp.ndarray
    w: jnp.ndarray


def _step(nan_at: int):
    def train_step(state, batch):
        step = state.step + 1
        loss = jnp.where(step >= nan_at, jnp.nan, 1.0 / step) * jnp.ones(2)   # 2 seeds
        return State(step, state.w + 1), {'loss': loss}
    return train_step


def _fit(workdir, nan_at, total=12, every_log=5, every_ckpt=4):
    mngr = checkpoint.manager(str(workdir), keep=5)
    progress = progress_lib.Progress(total, 0, every_log, None)
    state = State(jnp.asarray(0), jnp.zeros(3))
    return mngr, loop.fit(state, _step(nan_at), [{}] * total, mngr, progress, total, every_ckpt)


def test_finite_run_saves_every_checkpoint(tmp_path):
    mngr, state = _fit(tmp_path, nan_at=100)
    assert int(state.step) == 12 and mngr.all_steps() == [4, 8, 12]


@pytest.mark.parametrize('nan_at', [3, 6, 11])
def test_nan_loss_stops_before_any_checkpoint_of_it(tmp_path, nan_at):
    with pytest.raises(progress_lib.NonFiniteLoss, match=r'step \d+ \(seed index \[0, 1\]\)'):
        _fit(tmp_path, nan_at)
    mngr = checkpoint.manager(str(tmp_path), keep=5)
    assert all(s < nan_at for s in mngr.all_steps())      # nothing saved from the NaN on
    assert mngr.all_steps() == [s for s in (4, 8) if s < nan_at]


def test_reader_changes_nothing(tmp_path):
    _fit(tmp_path, nan_at=100)
    tmp = os.path.join(tmp_path, 'checkpoints', '16.orbax-checkpoint-tmp-123')
    os.makedirs(tmp)                                       # a save in flight
    reader = checkpoint.reader(str(tmp_path))
    assert reader.latest_step() == 12 and os.path.isdir(tmp)
    np.testing.assert_array_equal(reader.restore(12)['w'], np.full(3, 12.0))
    assert checkpoint.reader(str(tmp_path / 'missing')).latest_step() is None
    assert not os.path.exists(tmp_path / 'missing')        # a reader creates nothing


def test_progress_rate_is_recent_and_eta_is_hms(monkeypatch, caplog):
    clock = iter([0.0, 100.0, 101.0, 102.0, 103.0, 104.0])   # first log line after compilation
    monkeypatch.setattr(progress_lib.time, 'time', lambda: next(clock))
    p = progress_lib.Progress(total_steps=7210, start_step=0, every=10, writer=None, window=2)
    rates = []
    for line in range(1, 5):
        p._log(10 * line, {'loss': np.ones(2)})
        rates.append(p.rate())
    assert np.isnan(rates[0]) and rates[1:] == [10.0, 10.0, 10.0]   # 10 steps a second, not 0.2
    assert logs.hms(7170 / 10.0) == '0:11:57' and logs.hms(float('nan')) == '?'
