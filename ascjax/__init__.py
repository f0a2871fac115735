"""ascjax: device-robust low-complexity acoustic scene classification in JAX/Flax."""
