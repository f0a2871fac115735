"""Readable logs for the command lines: libraries' INFO chatter hidden by default.

orbax (one line per save, and every CheckpointManagerOptions field), TFDS and JAX log at INFO
through absl. `quiet()` keeps their warnings and errors and drops their INFO/DEBUG lines unless
absl's verbosity asks for them (`--verbosity=1` or `-v=1`); ascjax's own lines are kept.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator

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


def hms(seconds: float) -> str:
    """A duration as h:mm:ss ('?' when unknown)."""
    if not math.isfinite(seconds):
        return '?'
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


def counted(items: Iterable, total: int, what: str, every_s: float = 10.0,
            clock=time.monotonic) -> Iterator:
    """Yields `items`, logging `what: done/total (rate/s, ETA h:mm:ss)` at most every `every_s`
    seconds and once at the end: progress for dataset builds, synthesis, evaluation."""
    start = last = clock()
    done = 0
    for item in items:
        yield item
        done += 1
        now = clock()
        if now - last >= every_s or done == total:
            last = now
            rate = done / max(now - start, 1e-9)
            logging.info('%s: %d/%d (%.1f/s, ETA %s)', what, done, total, rate,
                         hms((total - done) / rate))
