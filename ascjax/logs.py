"""Readable logs for the command lines: libraries' INFO chatter hidden by default.

orbax (one line per save, and every CheckpointManagerOptions field), TFDS and JAX log at INFO
through absl. `quiet()` keeps their warnings and errors and drops their INFO/DEBUG lines unless
absl's verbosity asks for them (`--verbosity=1` or `-v=1`); ascjax's own lines are kept.
"""

from __future__ import annotations

import logging
import os

from absl import logging as absl_logging

NOISY = ('orbax', 'tensorflow_datasets', 'jax', 'etils', 'array_record')
_PATHS = tuple(f'{os.sep}{name}{os.sep}' for name in NOISY)


class LibraryFilter(logging.Filter):
    """Drops records below WARNING that come from the NOISY packages, at absl verbosity < 1."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or absl_logging.get_verbosity() >= 1:
            return True
        return not any(p in record.pathname for p in _PATHS)


def quiet() -> None:
    """Installs LibraryFilter on absl's handler (idempotent); call it first thing in a main."""
    handler = absl_logging.get_absl_handler()   # libraries' Python loggers propagate to it too
    if not any(isinstance(f, LibraryFilter) for f in handler.filters):
        handler.addFilter(LibraryFilter())
