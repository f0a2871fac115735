"""The engine: one sharded `jax.jit` step over a ('data',) mesh, orbax checkpoints, one loop.

    mesh.py        the device mesh and how host batches become global arrays
    optim.py       optax optimizer and schedule from the config (regex parameter groups)
    state.py       the train state (params, optimizer state, variable collections, keys per seed)
    step.py        the step builders: a task's per-seed update / forward pass, vmapped and jitted
    feed.py        training batches: tf.data, or the whole split in device memory, one order
    checkpoint.py  orbax CheckpointManager: save, restore onto any device count
    progress.py    log lines with ETA, TensorBoard, train_metrics.jsonl
    loop.py        train(task, config, workdir): the one training loop

It names no paper feature: tasks (ascjax.tasks) bring models, losses and augmentations.
`python -m ascjax.train` (this package's __main__) trains the classifier task.
"""
