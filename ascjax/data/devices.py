"""Simulated recording devices for the synthetic dataset, modelled on TAU's S1–S11.

TAU made its simulated devices by convolving device-A audio with measured impulse responses and
then applying device-specific dynamic range compression (REFERENCE.md §6). Each device here is

    clean source + self-noise (−75..−50 dBFS, white, entering at the microphone)
        -> minimum-phase FIR (smooth random magnitude, largest deviation ±8–15 dB)
        -> first-order high-pass (60–400 Hz) [-> low-pass shelf at 4/6/8 kHz, phone-like, p=0.5]
        -> compressor (threshold −35..−15 dB, ratio 2–8, high ratios rare) -> gain (±2–8 dB)
        [-> soft clipping, p=0.2, ceiling −9..−3 dBFS, which only loud peaks reach]

so that, as SYNTHETIC.md lesson 1 asks, the shift between devices is dominated by the linear
frequency response (which frequency-wise instance normalisation removes) and nonlinear damage stays
mild. Device A, the reference, is near-flat: ±1 dB of EQ, a 20 Hz DC blocker, −85 dBFS self-noise.

`DeviceParams` fully describes a device; `draw_devices(seed)` makes the same parameters for the same
seed (one random stream per device id), rounded so that devices.json reproduces the chain exactly.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import scipy.interpolate
import scipy.signal

from ascjax.data import layout

SR = layout.SAMPLE_RATE
# Control frequencies of the smooth magnitude response: log-spaced over the audible band.
EQ_FREQS = tuple(float(f) for f in np.round(np.geomspace(40.0, 20_000.0, 12)))
FIR_TAPS = 1025           # ~43 Hz resolution at 44.1 kHz: enough for a response smooth in log-f
LOWPASS_CHOICES = (4000.0, 6000.0, 8000.0)
LOWPASS_DEPTH_DB = -18.0
# Lesson 1 of SYNTHETIC.md: per-band log-mel offsets of about 2–3 nats, up to 4–5 (1 nat = 4.34 dB).
NOMINAL_OFFSET_DB = (8.0, 13.0)   # mean |response| over mel bands
NOMINAL_MAX_DB = 21.7              # largest |response| over mel bands
_DEVICE_STREAM = 7_000    # separates device streams from segment streams in the seed space


@dataclasses.dataclass(frozen=True)
class DeviceParams:
    name: str
    eq_gains_db: tuple[float, ...]       # magnitude response at EQ_FREQS, spline-interpolated
    highpass_hz: float
    lowpass_hz: float | None             # None: full band
    compressor_threshold_db: float | None  # None: no compression (device A)
    compressor_ratio: float
    compressor_attack_ms: float
    compressor_release_ms: float
    gain_db: float
    noise_floor_dbfs: float
    soft_clip_dbfs: float | None         # ceiling of a tanh soft clipper; None for most devices

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {'eq_freqs_hz': list(EQ_FREQS),
                                           'nominal_mel_offset_db': _r(nominal_offset_db(self))}

    @classmethod
    def from_json(cls, d: dict) -> DeviceParams:
        fields = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in fields}
        return cls(**(d | {'eq_gains_db': tuple(d['eq_gains_db'])}))


def _r(x: float, digits: int = 2) -> float:
    return round(float(x), digits)


def _smooth_response(rng: np.random.Generator, max_db: float) -> tuple[float, ...]:
    """A random response smooth in log-frequency with broad peaks and dips: a tilt plus a lightly
    smoothed random walk, companded towards its extremes (a device colours whole regions, not
    single points), centred, and scaled so that its largest deviation is ±max_db."""
    walk = np.cumsum(rng.normal(0.0, 1.0, len(EQ_FREQS)))
    walk = np.convolve(np.pad(walk, 1, mode='edge'), [0.25, 0.5, 0.25], mode='valid')
    walk += rng.normal(0.0, 1.0) * np.linspace(-1.0, 1.0, len(EQ_FREQS))
    walk -= walk.mean()
    walk = np.sign(walk) * np.sqrt(np.abs(walk))
    walk *= max_db / np.abs(walk).max()
    return tuple(_r(g) for g in walk)


def draw_device(seed: int, name: str) -> DeviceParams:
    """The parameters of device `name`; a function of (seed, name) only.

    Draws are repeated until the nominal linear response (EQ, band limits, gain) shifts the
    log-mel bands by NOMINAL_OFFSET_DB on average and by at most NOMINAL_MAX_DB in any band, so no
    device comes out accidentally flat, nor so extreme that it dwarfs every other device."""
    rng = np.random.default_rng([seed, _DEVICE_STREAM, layout.device_id(name)])
    if name == 'a':
        return DeviceParams(
            name='a', eq_gains_db=_smooth_response(rng, rng.uniform(0.5, 1.0)), highpass_hz=20.0,
            lowpass_hz=None, compressor_threshold_db=None, compressor_ratio=1.0,
            compressor_attack_ms=0.0, compressor_release_ms=0.0, gain_db=0.0,
            noise_floor_dbfs=-85.0, soft_clip_dbfs=None)
    for _ in range(1000):
        params = _draw_recording_device(rng, name)
        response = np.abs(nominal_response_db(params, mel_band_centres()))
        if (NOMINAL_OFFSET_DB[0] <= response.mean() <= NOMINAL_OFFSET_DB[1]
                and response.max() <= NOMINAL_MAX_DB):
            break
    return params


def _draw_recording_device(rng: np.random.Generator, name: str) -> DeviceParams:
    eq = _smooth_response(rng, rng.uniform(8.0, 15.0))
    highpass = np.exp(rng.uniform(np.log(60.0), np.log(400.0)))
    lowpass = LOWPASS_CHOICES[rng.integers(len(LOWPASS_CHOICES))] if rng.random() < 0.5 else None
    # One "amount" sets both threshold and ratio, skewed so that strong compression (a low
    # threshold AND a high ratio) is rare (lesson 2): median −20 dB / 2.8:1, P(below −30 dB) ≈ 0.13.
    amount = rng.random() ** 2
    return DeviceParams(
        name=name, eq_gains_db=eq, highpass_hz=_r(highpass, 1), lowpass_hz=lowpass,
        compressor_threshold_db=_r(-15.0 - 20.0 * amount),
        compressor_ratio=_r(2.0 * 4.0 ** amount),
        compressor_attack_ms=_r(rng.uniform(1.0, 20.0)),
        compressor_release_ms=_r(rng.uniform(50.0, 300.0)),
        gain_db=_r(rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 8.0)),
        noise_floor_dbfs=_r(rng.uniform(-75.0, -50.0)),
        soft_clip_dbfs=_r(rng.uniform(-9.0, -3.0)) if rng.random() < 0.2 else None)


def draw_devices(seed: int, names=layout.DEVICES) -> dict[str, DeviceParams]:
    return {name: draw_device(seed, name) for name in names}


def magnitude_db(params: DeviceParams, freqs: np.ndarray) -> np.ndarray:
    """The FIR's target magnitude (dB) at `freqs`: a cubic spline in log-frequency, flat outside."""
    logf = np.log(np.clip(freqs, EQ_FREQS[0], EQ_FREQS[-1]))
    spline = scipy.interpolate.CubicSpline(np.log(EQ_FREQS), params.eq_gains_db, bc_type='natural')
    return spline(logf)


@functools.lru_cache(maxsize=32)
def fir(params: DeviceParams) -> np.ndarray:
    """Minimum-phase FIR whose magnitude follows `magnitude_db`: a device has no pre-echo."""
    grid = np.linspace(0.0, SR / 2, 513)
    gains = 10.0 ** (magnitude_db(params, grid) / 20.0)
    linear_phase = scipy.signal.firwin2(FIR_TAPS, grid, gains, fs=SR)
    minimum = scipy.signal.minimum_phase(linear_phase, method='homomorphic', half=False)
    return minimum.astype(np.float32)


@functools.lru_cache(maxsize=32)
def highpass(params: DeviceParams) -> np.ndarray:
    # First order: a phone's DC blocker and small mic port roll off gently.
    return scipy.signal.butter(1, params.highpass_hz, 'highpass', fs=SR, output='sos').astype(
        np.float32)


@functools.lru_cache(maxsize=32)
def lowpass(params: DeviceParams) -> np.ndarray:
    return scipy.signal.butter(6, params.lowpass_hz, 'lowpass', fs=SR, output='sos').astype(
        np.float32)


def linear_response(params: DeviceParams, x: np.ndarray) -> np.ndarray:
    """The linear part of the chain (EQ and band limits), float32; same length as x, causal.

    The low-pass is a shelf LOWPASS_DEPTH_DB deep rather than a brick wall: a phone's band limit
    leaves some leakage and aliasing, and the log-mel offset of those bands stays bounded."""
    y = scipy.signal.sosfilt(highpass(params), scipy.signal.oaconvolve(x, fir(params))[: len(x)])
    if params.lowpass_hz is None:
        return y
    leak = np.float32(10.0 ** (LOWPASS_DEPTH_DB / 20))
    return scipy.signal.sosfilt(lowpass(params), y) + leak * y


def mel_band_centres(n_mels: int = 64) -> np.ndarray:
    """Centre frequencies of librosa's (Slaney) mel bands over 0..SR/2, in Hz."""
    lin, log_step, knee = 200.0 / 3, np.log(6.4) / 27.0, 1000.0
    to_mel = lambda f: f / lin if f < knee else knee / lin + np.log(f / knee) / log_step
    mels = np.linspace(0.0, to_mel(SR / 2), n_mels + 2)[1:-1]
    return np.where(mels < knee / lin, mels * lin, knee * np.exp(log_step * (mels - knee / lin)))


def nominal_response_db(params: DeviceParams, freqs: np.ndarray) -> np.ndarray:
    """Magnitude (dB) of the linear part of the chain and the gain at `freqs`."""
    db = magnitude_db(params, freqs) + params.gain_db
    _, h = scipy.signal.sosfreqz(highpass(params).astype(np.float64), worN=freqs, fs=SR)
    db += 20 * np.log10(np.abs(h) + 1e-12)
    if params.lowpass_hz is not None:
        _, h = scipy.signal.sosfreqz(lowpass(params).astype(np.float64), worN=freqs, fs=SR)
        db += 20 * np.log10(np.abs(h + 10.0 ** (LOWPASS_DEPTH_DB / 20)) + 1e-12)
    return db


def nominal_offset_db(params: DeviceParams) -> float:
    """Mean |nominal response| over 64 mel band centres: the expected log-mel shift (in dB; one
    nat of log power is 4.34 dB), before compression and noise."""
    return float(np.mean(np.abs(nominal_response_db(params, mel_band_centres()))))


def _pedalboard():
    """pedalboard (the compressor), needed only to render new recordings: an optional extra."""
    try:
        import pedalboard
    except ImportError as e:
        raise ImportError("rendering the synthetic dataset needs pedalboard: pip install "
                          "'ascjax[synthetic]' (or pip install pedalboard)") from e
    return pedalboard


def record(params: DeviceParams, source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Passes a clean source (float, mono, at SR) through the device; float32, within [-1, 1)."""
    # Self-noise enters at the microphone, so the device's response colours it like the scene.
    noise = rng.standard_normal(len(source), dtype=np.float32)
    x = np.asarray(source, np.float32) + np.float32(10.0 ** (params.noise_floor_dbfs / 20)) * noise
    y = linear_response(params, x)
    if params.compressor_threshold_db is not None:
        y = _pedalboard().Compressor(
            threshold_db=params.compressor_threshold_db, ratio=params.compressor_ratio,
            attack_ms=params.compressor_attack_ms, release_ms=params.compressor_release_ms)(y, SR)
    y = y * np.float32(10.0 ** (params.gain_db / 20.0))
    if params.soft_clip_dbfs is not None:
        ceiling = np.float32(10.0 ** (params.soft_clip_dbfs / 20.0))
        y = ceiling * np.tanh(y / ceiling)
    # Beyond full scale a 24-bit file would wrap; real converters saturate.
    return np.clip(y, -1.0, 1.0 - 2.0 ** -23).astype(np.float32)
