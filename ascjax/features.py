"""The log-mel front end: one definition, run in tf.data on the host or in JAX on the device.

    waveform -> reflect-pad n_fft//2 -> frames (hop) -> periodic Hann -> |rFFT|^2
             -> librosa (Slaney) mel filterbank -> log(mel + offset)     => [..., n_mels, frames]

It equals `librosa.feature.melspectrogram(y, sr, n_fft, hop_length, win_length, n_mels, fmin, fmax,
center=True, pad_mode='reflect', power=2)` followed by `log(. + offset)`. The filterbank is built
once with `librosa.filters.mel` and used as a constant, because `tf.signal`'s mel scale (HTK) is
not librosa's. Frames: 1 + num_samples // hop, i.e. 431 for 10 s at 44.1 kHz with hop 1024.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    """Feature parameters. Defaults are our reading of the QTI setup (REFERENCE.md §2.3, [U])."""
    sample_rate: int = 44_100
    n_fft: int = 2048
    win_length: int = 2048
    hop_length: int = 1024
    n_mels: int = 256
    fmin: float = 0.0
    fmax: float | None = None      # None: sample_rate / 2
    log_offset: float = 1e-6

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop_length

    @property
    def tag(self) -> str:
        """A short name that identifies these parameters (used to key feature caches)."""
        fmax = self.fmax or self.sample_rate / 2
        return (f'logmel{self.n_mels}_sr{self.sample_rate}_fft{self.n_fft}_win{self.win_length}'
                f'_hop{self.hop_length}_f{self.fmin:g}-{fmax:g}_off{self.log_offset:g}')


def from_config(data_config) -> FrontEnd:
    """The front end of an experiment config's ``data`` section."""
    return FrontEnd(**data_config.front_end)


def input_shape(data_config) -> tuple[int, int, int]:
    """Model input [F, T, 1] for one clip of ``data_config.clip_seconds`` seconds."""
    fe = from_config(data_config)
    return (fe.n_mels, fe.num_frames(int(round(data_config.clip_seconds * fe.sample_rate))), 1)


@functools.lru_cache(maxsize=8)
def mel_filterbank(fe: FrontEnd) -> np.ndarray:
    """[n_fft // 2 + 1, n_mels] float32: librosa's Slaney mel filters, transposed for x @ W."""
    import librosa  # imported lazily: librosa pulls numba, which the model code never needs.
    return librosa.filters.mel(sr=fe.sample_rate, n_fft=fe.n_fft, n_mels=fe.n_mels, fmin=fe.fmin,
                               fmax=fe.fmax, dtype=np.float32).T.copy()


@functools.lru_cache(maxsize=8)
def analysis_window(fe: FrontEnd) -> np.ndarray:
    """[n_fft] float32: periodic Hann of win_length, zero-padded to n_fft and centred (as librosa)."""
    import librosa
    window = librosa.filters.get_window('hann', fe.win_length, fftbins=True)
    return librosa.util.pad_center(window, size=fe.n_fft).astype(np.float32)


def _frame_indices(fe: FrontEnd, num_samples: int) -> np.ndarray:
    starts = np.arange(fe.num_frames(num_samples)) * fe.hop_length
    return starts[:, None] + np.arange(fe.n_fft)[None, :]


def logmel_jax(waveform, fe: FrontEnd = FrontEnd()):
    """Log-mel of float waveforms [..., num_samples] -> float32 [..., n_mels, frames], in JAX.

    Jit-able and batched; the fast path on accelerators (features computed on the device).
    """
    import jax
    import jax.numpy as jnp
    x = jnp.asarray(waveform, jnp.float32)
    pad = [(0, 0)] * (x.ndim - 1) + [(fe.n_fft // 2, fe.n_fft // 2)]
    x = jnp.pad(x, pad, mode='reflect')
    frames = x[..., _frame_indices(fe, waveform.shape[-1])] * analysis_window(fe)
    power = jnp.abs(jnp.fft.rfft(frames, n=fe.n_fft, axis=-1)) ** 2
    # HIGHEST: accelerators would otherwise run this float32 matmul in bf16.
    mel = jnp.matmul(power, mel_filterbank(fe), precision=jax.lax.Precision.HIGHEST)
    return jnp.swapaxes(jnp.log(mel + fe.log_offset), -1, -2)


def logmel_tf(waveform, fe: FrontEnd = FrontEnd()):
    """Log-mel of float waveforms [..., num_samples] -> float32 [..., n_mels, frames], in TF.

    The same computation as `logmel_jax`, for tf.data maps on the host.
    """
    import tensorflow as tf
    x = tf.convert_to_tensor(waveform, tf.float32)
    rank = len(x.shape)
    x = tf.pad(x, [[0, 0]] * (rank - 1) + [[fe.n_fft // 2, fe.n_fft // 2]], mode='REFLECT')
    frames = tf.signal.frame(x, fe.n_fft, fe.hop_length, pad_end=False) * analysis_window(fe)
    spectrum = tf.signal.rfft(frames, fft_length=[fe.n_fft])
    power = tf.math.real(spectrum) ** 2 + tf.math.imag(spectrum) ** 2
    mel = tf.tensordot(power, mel_filterbank(fe), axes=1)
    return tf.linalg.matrix_transpose(tf.math.log(mel + fe.log_offset))
