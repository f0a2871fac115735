"""The TFDS builder reads the exact TAU layout offline; bad input fails loudly or is converted and counted."""

import os
import shutil
import socket

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from ascjax.data import audio, layout, tau
from tests import fixtures
from tests.conftest import SMALL_FRONT_END


def _csv_rows(path):
    with open(path) as f:
        return len(f.readlines()) - 1


def test_split_sizes_come_from_the_csvs(tau_dir, tau_builder):
    splits = tau_builder.info.splits
    setup = os.path.join(tau_dir, 'evaluation_setup')
    assert splits['train'].num_examples == _csv_rows(os.path.join(setup, 'fold1_train.csv'))
    assert splits['test'].num_examples == _csv_rows(os.path.join(setup, 'fold1_evaluate.csv'))


def test_fixture_is_24_bit_mono(tau_dir):
    info = sf.info(os.path.join(tau_dir, 'audio', 'airport-barcelona-0-0-a.wav'))
    assert (info.subtype, info.channels, info.samplerate) == ('PCM_24', 1, fixtures.SAMPLE_RATE)


def test_examples_carry_labels_devices_cities_and_pairs(tau_builder):
    source = tau_builder.as_data_source(split='train')
    examples = {e['filename'].decode(): e for e in (source[i] for i in range(len(source)))}
    e = examples['audio/tram-vienna-3-1-s2.wav']
    assert layout.SCENES[e['label']] == 'tram' and layout.SCENES.index('tram') == 9
    assert (e['device'], e['city'], e['location'], e['pair']) == (
        b's2', b'vienna', b'vienna-3', b'tram-vienna-3-1')
    frames = SMALL_FRONT_END.num_frames(fixtures.SAMPLE_RATE)
    assert e['spectrogram'].shape == (SMALL_FRONT_END.n_mels, frames)
    # The recordings of one segment by two devices share the pair key.
    assert examples['audio/tram-vienna-3-1-a.wav']['pair'] == e['pair']


def test_conversion_counts_are_recorded_and_persist(tau_builder):
    reloaded = tau.builder(tau_builder.data_dir.split('/tau2020_mobile')[0],
                           front_end=SMALL_FRONT_END, clip_seconds=fixtures.CLIP_SECONDS)
    counts = reloaded.info.metadata['conversions']
    assert counts['train']['clips'] == 8 and counts['test']['clips'] == 7
    assert all(counts[s][c] == 0 for s in ('train', 'test') for c in audio.CONVERSIONS)


def test_build_never_touches_the_network(tau_dir, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f'network access attempted: {args}')
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)
    b = tau.prepare(tau_dir, str(tmp_path), store='audio', front_end=SMALL_FRONT_END,
                    clip_seconds=fixtures.CLIP_SECONDS)
    source = tfds.data_source(tau.NAME, builder_kwargs=dict(config=b.builder_config),
                              data_dir=str(tmp_path), split='test', download=False, try_gcs=False)
    assert len(source) == 7
    assert source[0]['audio'].shape == (fixtures.SAMPLE_RATE,)


# ---------------------------------------------------------------------------------------------
# Bad input.

@pytest.fixture
def broken_dir(tau_dir, tmp_path):
    root = str(tmp_path / 'tau')
    shutil.copytree(tau_dir, root)
    return root


def _prepare(root, tmp_path):
    return tau.prepare(root, str(tmp_path / 'tfds'), front_end=SMALL_FRONT_END,
                       clip_seconds=fixtures.CLIP_SECONDS)


def _wav(root, name='airport-barcelona-0-0-b.wav'):
    return os.path.join(root, 'audio', name)


def test_corrupt_wav_names_the_file(broken_dir, tmp_path):
    with open(_wav(broken_dir), 'wb') as f:
        f.write(b'RIFF\x00\x00garbage' * 10)
    with pytest.raises(audio.AudioError, match='airport-barcelona-0-0-b.wav.*cannot decode'):
        _prepare(broken_dir, tmp_path)


def test_truncated_wav_names_the_file(broken_dir, tmp_path):
    with open(_wav(broken_dir), 'rb') as f:
        head = f.read(30)      # cut inside the header
    with open(_wav(broken_dir), 'wb') as f:
        f.write(head)
    with pytest.raises(audio.AudioError, match='airport-barcelona-0-0-b.wav'):
        _prepare(broken_dir, tmp_path)


def test_wav_with_its_audio_cut_short_is_refused_not_padded(broken_dir, tmp_path):
    size = os.path.getsize(_wav(broken_dir))
    with open(_wav(broken_dir), 'r+b') as f:
        f.truncate(size // 3)     # the header still declares the whole clip
    with pytest.raises(audio.AudioError, match=r'airport-barcelona-0-0-b.wav: truncated: .*\(3[23]%\)'):
        _prepare(broken_dir, tmp_path)


def test_silent_or_constant_clips_are_counted_and_named(broken_dir, tmp_path, caplog):
    sf.write(_wav(broken_dir), np.zeros(fixtures.SAMPLE_RATE), fixtures.SAMPLE_RATE,
             subtype='PCM_24')
    sf.write(_wav(broken_dir, 'bus-helsinki-1-0-a.wav'), np.full(fixtures.SAMPLE_RATE, 0.25),
             fixtures.SAMPLE_RATE, subtype='PCM_24')
    with caplog.at_level('WARNING'):
        metadata = _prepare(broken_dir, tmp_path).info.metadata
    assert metadata['conversions']['train']['constant'] == 2
    assert sorted(metadata['constant_clips']['train']) == [
        'audio/airport-barcelona-0-0-b.wav', 'audio/bus-helsinki-1-0-a.wav']
    assert any('airport-barcelona-0-0-b.wav: every sample is 0 ' in r.getMessage()
               for r in caplog.records)


def test_duplicated_csv_row_names_the_file_and_line(broken_dir):
    path = os.path.join(broken_dir, 'evaluation_setup', 'fold1_train.csv')
    lines = open(path).readlines()
    open(path, 'w').writelines(lines + [lines[1]])
    with pytest.raises(layout.LayoutError, match=rf"fold1_train.csv:{len(lines) + 1}: .* is listed "
                                                 r"again \(first on line 2\)"):
        layout.read_split(broken_dir, 'train')


def test_clip_in_train_and_test_is_a_leak(broken_dir, tmp_path):
    train = os.path.join(broken_dir, 'evaluation_setup', 'fold1_train.csv')
    test = os.path.join(broken_dir, 'evaluation_setup', 'fold1_evaluate.csv')
    with open(test, 'a') as f:
        f.write(open(train).readlines()[1])
    with pytest.raises(layout.LayoutError,
                       match=r'fold1_train.csv and .*fold1_evaluate.csv: 1 clip\(s\) listed in both'):
        _prepare(broken_dir, tmp_path)


def test_build_summary_of_a_split_smaller_than_a_batch(tau_dir, tau_builder, capsys):
    from ascjax.data import datasets
    datasets._print_summary(tau_dir, tau_builder)          # 8 training clips < 32
    assert 'one training batch' in capsys.readouterr().out


def test_nan_samples_name_the_file(broken_dir, tmp_path):
    y = fixtures.clip_samples(0)
    y[100] = np.nan
    sf.write(_wav(broken_dir), y, fixtures.SAMPLE_RATE, subtype='FLOAT')
    with pytest.raises(audio.AudioError, match='airport-barcelona-0-0-b.wav.*NaN'):
        _prepare(broken_dir, tmp_path)


def test_conversions_are_applied_and_counted(broken_dir, tmp_path):
    y = fixtures.clip_samples(0)
    rate = fixtures.SAMPLE_RATE
    sf.write(_wav(broken_dir), np.stack([y, y], 1), rate, subtype='PCM_24')                 # stereo
    sf.write(_wav(broken_dir, 'bus-helsinki-1-0-a.wav'), fixtures.clip_samples(1, rate=16_000),
             16_000, subtype='PCM_24')                                                     # 16 kHz
    sf.write(_wav(broken_dir, 'bus-helsinki-1-0-c.wav'), y[: rate // 2], rate, subtype='PCM_24')  # short
    sf.write(_wav(broken_dir, 'park-lisbon-2-3-a.wav'), np.tile(y, 2), rate, subtype='PCM_24')  # long
    b = _prepare(broken_dir, tmp_path)
    counts = b.info.metadata['conversions']['train']
    assert counts == {'clips': 8, 'downmixed': 1, 'resampled': 1, 'padded': 0, 'cropped': 1,
                      'constant': 0, 'truncated': 1}      # a short clip is a fault, not padding
    assert b.info.metadata['truncated_clips']['train'] == ['audio/bus-helsinki-1-0-c.wav']


def test_loading_converts_to_the_target_format(tmp_path):
    path = str(tmp_path / 'x.wav')
    y = fixtures.clip_samples(3, seconds=0.5, rate=22_050)
    sf.write(path, np.stack([y, -y], 1), 22_050, subtype='FLOAT')
    wave = audio.load(path, fixtures.SAMPLE_RATE, fixtures.SAMPLE_RATE)
    assert wave.conversions == ('downmixed', 'resampled', 'padded')
    assert wave.samples.shape == (fixtures.SAMPLE_RATE,) and wave.samples.dtype == np.float32
    np.testing.assert_allclose(wave.samples, 0.0, atol=1e-6)   # (y - y) / 2: downmixed first


def test_missing_listed_file_names_it(broken_dir, tmp_path):
    os.remove(_wav(broken_dir))
    with pytest.raises(layout.LayoutError, match='airport-barcelona-0-0-b.wav.*does not exist'):
        _prepare(broken_dir, tmp_path)


def test_row_missing_from_meta_names_it(broken_dir):
    meta = os.path.join(broken_dir, 'meta.csv')
    lines = open(meta).readlines()
    open(meta, 'w').writelines([l for l in lines if 'bus-helsinki-1-0-c' not in l])
    with pytest.raises(layout.LayoutError, match=r"fold1_train.csv.*bus-helsinki-1-0-c.*meta.csv"):
        layout.read_split(broken_dir, 'train')


def test_unknown_scene_label_names_the_file(broken_dir):
    path = os.path.join(broken_dir, 'evaluation_setup', 'fold1_train.csv')
    text = open(path).read().replace('\tpark\n', '\tbeach\n')
    open(path, 'w').write(text)
    with pytest.raises(layout.LayoutError, match="fold1_train.csv.*unknown scene label 'beach'"):
        layout.read_split(broken_dir, 'train')


def test_wrong_columns_name_the_file(broken_dir):
    path = os.path.join(broken_dir, 'meta.csv')
    lines = open(path).readlines()
    lines[0] = 'filename,scene_label,identifier,source_label\n'    # commas, not TABs
    open(path, 'w').writelines(lines)
    with pytest.raises(layout.LayoutError, match='meta.csv: header'):
        layout.read_split(broken_dir, 'test')


def test_unknown_devices_are_allowed():
    assert layout.device_id('s7') == layout.EVAL_DEVICES.index('s7')
    assert layout.device_id('zz') == layout.UNKNOWN
    assert layout.parse_filename('audio/bus-lyon-3-12-d.wav')['pair'] == 'bus-lyon-3-12'
