"""predict's file expansion and windows (the model side is in test_train's entry-point test)."""

import os

import numpy as np
import pytest

from ascjax import predict


def test_windows_cover_a_long_recording_and_pad_a_short_one():
    x = np.arange(25.0)
    w = predict.windows(x, 10, 10)
    assert [int(r[0]) for r in w] == [0, 10, 15]             # the last window ends at the end
    np.testing.assert_array_equal(w[-1], x[15:])
    assert predict.windows(x, 10, 5).shape == (4, 10)         # 0, 5, 10, 15
    short = predict.windows(np.ones(4), 10, 10)
    assert short.shape == (1, 10) and short.sum() == 4


def test_expand_files_folders_and_globs(tmp_path):
    audio = tmp_path / 'eval' / 'audio'
    (audio / 'sub').mkdir(parents=True)
    for name in ('1.wav', '0.wav', 'sub/2.flac', 'notes.txt'):
        (audio / name).write_bytes(b'')
    got = predict.expand([str(audio), str(audio / '0.wav'), str(tmp_path / 'eval/*/1.wav')])
    assert [n for _, n in got] == ['audio/0.wav', 'audio/1.wav', os.path.join('audio', 'sub',
                                                                                '2.flac')]
    with pytest.raises(FileNotFoundError, match='nothing.wav'):
        predict.expand([str(tmp_path / 'nothing.wav')])
