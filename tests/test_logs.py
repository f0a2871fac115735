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


def test_counted_logs_progress_with_eta(caplog):
    ticks = iter(range(0, 100, 5))
    clock = lambda: float(next(ticks))
    with caplog.at_level(logging.INFO):
        out = list(logs.counted(range(4), 4, 'build/train: clips', every_s=10.0, clock=clock))
    assert out == [0, 1, 2, 3]
    lines = [r.getMessage() for r in caplog.records if 'build/train' in r.getMessage()]
    # t = 5, 10, 15, 20 after 1..4 items: a line at 10 s (2 done) and one at the end.
    assert lines == ['build/train: clips: 2/4 (0.2/s, ETA 0:00:10)',
                     'build/train: clips: 4/4 (0.2/s, ETA 0:00:00)']
    assert logs.hms(717.0) == '0:11:57' and logs.hms(float('nan')) == '?'
