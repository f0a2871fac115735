"""The ('data',) mesh of every device, on every host: the jit-based replacement for pmap.

The batch is sharded along its first axis, parameters and optimizer state are replicated. BatchNorm
statistics inside the jitted step are therefore computed over the *global* batch (XLA inserts the
cross-device reductions), unlike PyTorch DataParallel/DDP without SyncBatchNorm, whose statistics
are per-GPU. With one device the two agree.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = 'data'


def data_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), (AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This host's slice of a batch -> arrays sharded over every device of every host."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local.items()}


def check_batch_size(global_batch_size: int) -> None:
    if global_batch_size % jax.device_count():
        raise ValueError(f'--config.train.batch_size={global_batch_size} is not divisible by the '
                         f'{jax.device_count()} devices of the mesh')
