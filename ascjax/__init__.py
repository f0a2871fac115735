"""ascjax: device-robust low-complexity acoustic scene classification in JAX/Flax."""

import os

# TF's oneDNN kernels change the float round-off of the TF log-mel (by ~1e-6), and so every cached
# feature and every training run downstream. Off by default, whatever the entry point, so that
# results depend on the code and data only; set TF_ENABLE_ONEDNN_OPTS=1 before importing to opt in.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
