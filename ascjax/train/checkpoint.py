"""Checkpoints with orbax: the whole TrainState, restored against an abstract target that carries
the *current* shardings, so a run can resume on a different number of devices or hosts.

Beside the checkpoints the workdir holds `config.json` and `git_revision.txt` of the run.
"""

from __future__ import annotations

import json
import os
import subprocess

import jax
import orbax.checkpoint as ocp
from flax import serialization

from ascjax.train.state import TrainState


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
    """The training run's manager: creates the folder, removes temporaries of a killed save."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           cleanup_tmp_directories=True)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), 'checkpoints'),
                                 options=options)


def reader(workdir: str) -> ocp.CheckpointManager:
    """A read-only manager for evaluation, prediction and export: it creates, deletes and cleans
    up nothing, so it can open a workdir while its training is still saving."""
    options = ocp.CheckpointManagerOptions(read_only=True, create=False,
                                           cleanup_tmp_directories=False,
                                           save_interval_steps=0, max_to_keep=None)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), 'checkpoints'),
                                 options=options)


def save(mngr: ocp.CheckpointManager, state: TrainState) -> None:
    """Saves asynchronously; call `mngr.wait_until_finished()` before exiting."""
    step = int(jax.device_get(state.step))
    mngr.save(step, args=ocp.args.StandardSave(serialization.to_state_dict(state)), force=True)


def restore(mngr: ocp.CheckpointManager, target: TrainState, step: int | None = None
            ) -> TrainState | None:
    """The checkpoint at `step` (default: latest) laid out like `target`, or None if none exists.

    `target` is abstract (jax.ShapeDtypeStruct leaves with shardings): see state.abstract.
    """
    step = mngr.latest_step() if step is None else step
    if step is None:
        return None
    restored = mngr.restore(step, args=ocp.args.StandardRestore(
        serialization.to_state_dict(target)))
    return serialization.from_state_dict(target, restored)


def git_revision() -> str:
    try:
        return subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                              cwd=os.path.dirname(__file__), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def write_run_info(workdir: str, config) -> None:
    """config.json (to re-create the model in evaluate/predict) and the code revision."""
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
        f.write(config.to_json_best_effort(indent=2))
    with open(os.path.join(workdir, 'git_revision.txt'), 'w') as f:
        f.write(git_revision() + '\n')


def read_config(workdir: str):
    import ml_collections
    path = os.path.join(workdir, 'config.json')
    if not os.path.exists(path):
        raise FileNotFoundError(f'{path}: no config.json; is --workdir a training workdir?')
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))
