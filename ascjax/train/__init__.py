"""Training: one sharded `jax.jit` step over a ('data',) mesh, orbax checkpoints, resumable loop.

    mesh.py        the device mesh and how host batches become global arrays
    optim.py       optax optimizer and schedule from the config (regex weight-decay masks)
    augment.py     on-device augmentations (time roll, SpecAugment masks, mixup) with explicit keys
    state.py       the train state and its creation, directly in its sharding
    step.py        train_step / eval_step (vmapped over seeds when num_seeds > 1)
    checkpoint.py  orbax CheckpointManager: save, restore onto any device count
    loop.py        train_and_evaluate(config, workdir)

`python -m ascjax.train` (this package's __main__) only parses flags and calls loop.
"""
