"""The PyTorch reference: BC-ResNet / BC-ResNet-Mod in torch (`model`) and a trainer of the same
recipe as `ascjax.train` (`train`), for parity tests and `tools/compare_torch.py`.

torch is a test/bench extra, not a dependency of ascjax: install it with
`pip install -e '.[test]'` (or `pip install torch==2.13.0`, the CPU build).
"""

try:
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        'ascjax.torch_reference needs PyTorch, a test/bench extra: '
        "pip install -e '.[test]'  (or: pip install torch==2.13.0, the CPU build)") from error
