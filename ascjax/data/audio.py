"""Reading clips: decode, check, and convert to the dataset's format, saying what was converted.

Every clip becomes float32 mono at the target rate and exactly `num_samples` long. Anything that is
converted (resampled, downmixed, padded, cropped) is reported in `Clip.conversions`, so a builder can
count it and nothing happens silently; anything that cannot be trusted (undecodable, empty, NaN/inf)
raises AudioError naming the file.
"""

from __future__ import annotations

import dataclasses
import logging

import librosa
import numpy as np
import soundfile as sf

CONVERSIONS = ('resampled', 'downmixed', 'padded', 'cropped')


class AudioError(ValueError):
    """A file that cannot be used as a clip; the message names it and says why."""


@dataclasses.dataclass(frozen=True)
class Waveform:
    samples: np.ndarray           # float32 [num_samples], mono, at the requested rate
    conversions: tuple[str, ...]  # subset of CONVERSIONS, in the order applied


def read(path: str) -> tuple[np.ndarray, int]:
    """Decodes any soundfile-readable file (24-bit PCM included) to float32 [samples, channels]."""
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
    if conversions:
        logging.debug('%s: %s (from %d Hz, %d channel(s))', path, ', '.join(conversions), rate,
                     data.shape[1])
    return Waveform(np.ascontiguousarray(samples, dtype=np.float32), tuple(conversions))


def write(path: str, samples: np.ndarray, sample_rate: int, subtype: str = 'PCM_24') -> None:
    """Writes a wav in TAU's format (24-bit PCM by default)."""
    sf.write(path, np.asarray(samples), sample_rate, subtype=subtype)
