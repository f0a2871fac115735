"""The synthetic multi-device dataset: TAU layout, splits, pairs, determinism, device shift."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from ascjax import features
from ascjax.data import devices, layout, scenes, synthesize

SEED = 0
FRONT_END = features.FrontEnd(n_mels=64)


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic'))
    summary = synthesize.synthesize(root, 'tiny', SEED, workers=2)
    return root, summary


def _files(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, names in os.walk(root) for f in names)


def _logmel(x: np.ndarray) -> np.ndarray:
    """[64, frames] log-mel with the project's filterbank, in numpy."""
    fe = FRONT_END
    padded = np.pad(x, fe.n_fft // 2, mode='reflect')
    starts = np.arange(fe.num_frames(len(x))) * fe.hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, fe.n_fft)[starts]
    power = np.abs(np.fft.rfft(frames * features.analysis_window(fe), axis=-1)) ** 2
    return np.log(power @ features.mel_filterbank(fe) + fe.log_offset).T


def _read(root: str, name: str) -> np.ndarray:
    return sf.read(os.path.join(root, name), dtype='float32')[0]


def test_tau_layout_and_wav_format(built):
    root, summary = built
    train, test = layout.read_split(root, 'train'), layout.read_split(root, 'test')
    assert len(layout.read_split(root, 'test_unlabelled')) == len(test)
    for split, clips in (('train', train), ('test', test)):
        counts = {d: sum(c.device == d for c in clips) for d in layout.DEVICES}
        assert counts == summary['clips'][split]
    assert {c.scene for c in train} == {c.scene for c in test} == set(layout.SCENES)
    for clip in train + test:
        info = sf.info(os.path.join(root, clip.filename))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (
            44_100, 1, 441_000, 'PCM_24'), clip.filename
    assert sorted(f for f in _files(root) if f.startswith('audio')) == sorted(
        c.filename for c in train + test)
    with open(os.path.join(root, 'summary.json')) as f:
        assert json.load(f) == summary


def test_locations_disjoint_and_several_cities(built):
    root, _ = built
    train, test = layout.read_split(root, 'train'), layout.read_split(root, 'test')
    assert not {c.location for c in train} & {c.location for c in test}
    assert len({c.city for c in train}) >= 2 and len({c.city for c in test}) >= 2


def test_device_split_like_tau(built):
    root, _ = built
    train, test = layout.read_split(root, 'train'), layout.read_split(root, 'test')
    assert not {'s4', 's5', 's6'} & {c.device for c in train}
    assert {c.device for c in train} == {'a', 'b', 'c', 's1', 's2', 's3'}
    # Every train recording by B, C, S1–S3 has its A twin; every test segment has all nine devices.
    a_pairs = {c.pair for c in train if c.device == 'a'}
    assert all(c.pair in a_pairs for c in train if c.device != 'a')
    by_pair = {}
    for c in test:
        by_pair.setdefault(c.pair, set()).add(c.device)
    assert all(devs == set(layout.DEVICES) for devs in by_pair.values())


def test_pairs_are_time_aligned(built):
    """The envelopes of one segment's recordings peak in cross-correlation at lag 0."""
    root, _ = built
    test = layout.read_split(root, 'test')
    pair = test[0].pair
    envelopes = {}
    for c in test:
        if c.pair == pair:
            frames = _read(root, c.filename).reshape(-1, 441)      # 10 ms frames
            env = np.log(np.mean(frames ** 2, axis=1) + 1e-10)
            envelopes[c.device] = env - env.mean()
    lags = np.arange(-50, 51)
    for device, env in envelopes.items():
        xcorr = [np.dot(envelopes['a'][50:-50], np.roll(env, lag)[50:-50]) for lag in lags]
        assert abs(lags[int(np.argmax(xcorr))]) <= 1, device


def test_same_seed_is_byte_identical_whatever_the_workers(built, tmp_path):
    root, summary = built
    again = synthesize.synthesize(str(tmp_path), 'tiny', SEED, workers=1)
    assert again == summary
    assert _files(str(tmp_path)) == _files(root)
    match, mismatch, errors = filecmp.cmpfiles(root, str(tmp_path), _files(root), shallow=False)
    assert not mismatch and not errors


def test_other_seed_gives_other_audio_and_devices(built, tmp_path):
    root, _ = built
    segment = synthesize.plan(synthesize.PRESETS['tiny'])[0]
    params = devices.draw_devices(SEED + 1)
    os.makedirs(tmp_path / 'audio')
    synthesize.render_segment(segment, SEED + 1, str(tmp_path), params)
    name = segment.filename('a')
    assert not filecmp.cmp(os.path.join(root, name), os.path.join(tmp_path, name), shallow=False)
    assert params != devices.draw_devices(SEED)


def test_devices_json_describes_the_devices(built):
    root, _ = built
    with open(os.path.join(root, 'devices.json')) as f:
        stored = {name: devices.DeviceParams.from_json(d) for name, d in json.load(f).items()}
    assert stored == devices.draw_devices(SEED)
    a = stored['a']
    assert max(map(abs, a.eq_gains_db)) <= 1.0 and a.lowpass_hz is None
    assert a.compressor_threshold_db is None
    for name in layout.DEVICES[1:]:
        p = stored[name]
        assert 8.0 <= max(map(abs, p.eq_gains_db)) <= 15.0 + 1e-6
        assert 60.0 <= p.highpass_hz <= 400.0
        assert p.lowpass_hz in (None,) + devices.LOWPASS_CHOICES
        assert -35.0 <= p.compressor_threshold_db <= -15.0 and 2.0 <= p.compressor_ratio <= 8.0
        assert -75.0 <= p.noise_floor_dbfs <= -50.0


def test_device_shift_is_dominated_by_the_frequency_response(built):
    """SYNTHETIC.md lesson 1: each device shifts the per-band log-mel means clearly (here ≥ 1 nat
    on average over bands), and most of the shift is a per-band constant, which frequency-wise
    instance normalisation removes (what is left after removing it is under a third)."""
    root, _ = built
    test = layout.read_split(root, 'test')
    mels = {c.filename: _logmel(_read(root, c.filename)) for c in test}
    a_of = {c.pair: mels[c.filename] for c in test if c.device == 'a'}
    for device in layout.DEVICES[1:]:
        diffs = np.stack([mels[c.filename] - a_of[c.pair] for c in test if c.device == device])
        offset = np.abs(diffs.mean(axis=(0, 2))).mean()
        residual = (diffs - diffs.mean(axis=2, keepdims=True)).std()
        assert offset >= 1.0, (device, offset)
        assert residual < offset / 3, (device, offset, residual)


def test_device_a_is_near_flat():
    loc = scenes.draw_location(SEED, 'park', 'lisbon', 0)
    source = scenes.render('park', loc, np.random.default_rng(0))
    recorded = devices.record(devices.draw_device(SEED, 'a'), source, np.random.default_rng(1))
    offset = np.abs((_logmel(recorded) - _logmel(source)).mean(axis=1)).mean()
    assert offset < 0.2


@pytest.mark.parametrize('scene', layout.SCENES)
def test_render_is_a_deterministic_10s_clip(scene):
    loc = scenes.draw_location(SEED, scene, 'paris', 3)
    x = scenes.render(scene, loc, np.random.default_rng(7))
    assert x.dtype == np.float32 and x.shape == (441_000,) and np.all(np.isfinite(x))
    rms_dbfs = 10 * np.log10(np.mean(x.astype(np.float64) ** 2))
    level = scenes.RECIPES[scene].level_dbfs
    assert abs(rms_dbfs - level) <= scenes.LEVEL_JITTER_DB + 0.01 and np.abs(x).max() < 1.0
    np.testing.assert_array_equal(x, scenes.render(scene, loc, np.random.default_rng(7)))


def test_presets_plan_tau_like_imbalance():
    segments = synthesize.plan(synthesize.PRESETS['demo'])
    summary = synthesize.summarize(segments, 'demo', SEED, 1.0)
    assert summary['clips']['train'] == dict(a=600, b=60, c=60, s1=60, s2=60, s3=60, s4=0, s5=0,
                                             s6=0)
    assert set(summary['clips']['test'].values()) == {40}
    assert summary['pairs_with_a']['train']['b'] == 60
    train = {(s.city, s.location) for s in segments if s.split == 'train'}
    test = {(s.city, s.location) for s in segments if s.split == 'test'}
    assert not train & test
    full = synthesize.summarize(synthesize.plan(synthesize.PRESETS['full']), 'full', SEED, 1.0)
    assert full['clips']['train']['a'] == 2000 and full['clips']['test']['s6'] == 100
    assert len(full['cities']) == 10


def test_refuses_to_write_over_foreign_files(tmp_path):
    os.makedirs(tmp_path / 'audio')
    (tmp_path / 'audio' / 'mine.wav').write_bytes(b'not ours')
    with pytest.raises(FileExistsError, match='synthetic'):
        synthesize.synthesize(str(tmp_path), 'tiny', SEED, workers=1)


def test_command_line_requires_out():
    result = subprocess.run([sys.executable, '-m', 'ascjax.data.synthesize', '--preset=tiny'],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and '--out' in result.stderr
