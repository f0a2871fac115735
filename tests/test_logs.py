"""Command lines hide libraries' INFO lines unless --verbosity asks for them."""

import logging

from absl import logging as absl_logging

from ascjax import logs


def _record(path: str, level: int) -> logging.LogRecord:
    return logging.LogRecord('absl', level, path, 1, 'message', None, None)


def test_library_info_hidden_warnings_and_own_lines_kept():
    f = logs.LibraryFilter()
    orbax = '/venv/site-packages/orbax/checkpoint/checkpoint_manager.py'
    before = absl_logging.get_verbosity()
    try:
        absl_logging.set_verbosity(absl_logging.INFO)
        assert not f.filter(_record(orbax, logging.INFO))
        assert f.filter(_record(orbax, logging.WARNING))
        assert f.filter(_record('/work/ascjax/train/progress.py', logging.INFO))
        absl_logging.set_verbosity(1)                      # --verbosity=1: everything back
        assert f.filter(_record(orbax, logging.INFO))
    finally:
        absl_logging.set_verbosity(before)
    logs.quiet()
    logs.quiet()
    handler = absl_logging.get_absl_handler()
    assert sum(isinstance(x, logs.LibraryFilter) for x in handler.filters) == 1
