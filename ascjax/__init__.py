"""ascjax: device-robust low-complexity acoustic scene classification in JAX/Flax.

From a notebook:

    import ascjax
    run = ascjax.load('/tmp/mod1')           # a training workdir (ascjax.run.Run)
    run.evaluate('test')['accuracy']         # per device; run.predict('test') for the logits
    run.model.apply(run.variables(0), x, train=False)

Layers, lowest first (each imports only its own or lower ones; tests/test_architecture.py):
data (ascjax.data, features, evaluation) -> models -> primitives (compress, augment) -> engine
(train) -> run -> tasks -> entry points (`python -m ...`, this package's `load`).
"""

import os

# TF's oneDNN kernels change the float round-off of the TF log-mel (by ~1e-6), and so every cached
# feature and every training run downstream. Off by default, whatever the entry point, so that
# results depend on the code and data only; set TF_ENABLE_ONEDNN_OPTS=1 before importing to opt in.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')


def load(workdir: str, step: int | None = None):
    """The training run in `workdir` at checkpoint `step` (default: the latest): `ascjax.run.Run`
    with its config, model, every seed's state, predict(split) and evaluate(split)."""
    from ascjax import run
    return run.open(workdir, step)
