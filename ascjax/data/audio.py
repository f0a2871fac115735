"""Reading clips: decode, check, and convert to the dataset's format, saying what was converted.

Every clip becomes float32 mono at the target rate and exactly `num_samples` long. Anything that is
converted (resampled, downmixed, padded, cropped) is reported in `Clip.conversions`, so a builder can
count it and nothing happens silently; anything that cannot be trusted (undecodable, empty, NaN/inf)
raises AudioError naming the file.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import librosa
import numpy as np
import soundfile as sf

CONVERSIONS = ('resampled', 'downmixed', 'padded', 'cropped')
# Not conversions, but counted with them and named: a recording whose samples are all equal
# (digital silence, or a constant offset), and (in a dataset build, where every clip has the
# dataset's length) a clip shorter than that, zero-padded to shape.
FINDINGS = ('constant', 'truncated')


class AudioError(ValueError):
    """A file that cannot be used as a clip; the message names it and says why."""


@dataclasses.dataclass(frozen=True)
class Waveform:
    samples: np.ndarray           # float32 [num_samples], mono, at the requested rate
    conversions: tuple[str, ...]  # subset of CONVERSIONS, in the order applied


def wav_truncation(path: str) -> str | None:
    """Why a RIFF/WAVE file is truncated (its data chunk declares more bytes than the file holds),
    or None. Other formats, and streamed wavs whose sizes are unset (0 or 0xFFFFFFFF), pass."""
    try:
        size = os.path.getsize(path)
        with open(path, 'rb') as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b'RIFF' or head[8:12] != b'WAVE':
                return None
            offset = 12
            while offset + 8 <= size:
                f.seek(offset)
                chunk, length = f.read(4), int.from_bytes(f.read(4), 'little')
                if chunk == b'data':
                    available = size - offset - 8
                    if length not in (0, 0xFFFFFFFF) and length > available:
                        return (f'truncated: its header declares {length} bytes of audio, the '
                                f'file holds {available} ({100 * available / length:.0f}%)')
                    return None
                offset += 8 + length + (length & 1)
    except OSError:
        return None          # soundfile reports unreadable files
    return None


def read(path: str) -> tuple[np.ndarray, int]:
    """Decodes any soundfile-readable file (24-bit PCM included) to float32 [samples, channels];
    a truncated wav is an AudioError, not a short clip."""
    if (why := wav_truncation(path)) is not None:
        raise AudioError(f'{path}: {why}')
    try:
        data, rate = sf.read(path, dtype='float32', always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(f'{path}: cannot decode audio ({e})') from e
    if data.shape[0] == 0:
        raise AudioError(f'{path}: contains no samples (truncated or empty file)')
    if not np.all(np.isfinite(data)):
        bad = int(np.sum(~np.isfinite(data)))
        raise AudioError(f'{path}: {bad} NaN/inf samples')
    return data, rate


def load(path: str, sample_rate: int, num_samples: int | None) -> Waveform:
    """Reads `path` as float32 mono at `sample_rate`, padded (zeros) or cropped to `num_samples`."""
    data, rate = read(path)
    constant = bool(np.all(data == data.flat[0]))   # the recording itself, before conversions
    conversions = []
    if data.shape[1] > 1:
        data = data.mean(axis=1, keepdims=True)
        conversions.append('downmixed')
    samples = data[:, 0]
    if rate != sample_rate:
        samples = librosa.resample(samples, orig_sr=rate, target_sr=sample_rate, res_type='soxr_hq')
        conversions.append('resampled')
    if num_samples is not None and len(samples) < num_samples:
        samples = np.pad(samples, (0, num_samples - len(samples)))
        conversions.append('padded')
    elif num_samples is not None and len(samples) > num_samples:
        samples = samples[:num_samples]
        conversions.append('cropped')
    if constant:
        logging.warning('%s: every sample is %g (silent or constant recording)', path,
                        float(data.flat[0]))
        conversions.append('constant')
    if conversions:
        logging.debug('%s: %s (from %d Hz, %d channel(s))', path, ', '.join(conversions), rate,
                     data.shape[1])
    return Waveform(np.ascontiguousarray(samples, dtype=np.float32), tuple(conversions))


def write(path: str, samples: np.ndarray, sample_rate: int, subtype: str = 'PCM_24') -> None:
    """Writes a wav in TAU's format (24-bit PCM by default)."""
    sf.write(path, np.asarray(samples), sample_rate, subtype=subtype)
