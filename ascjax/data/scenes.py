"""Procedural acoustic scenes: the clean sources of the synthetic dataset.

A scene is a mix of *parts*. Background beds (coloured noise, hum, babble-like modulated noise,
distant traffic) are shared across most classes and coloured by the recording location; class
identity lives mostly in *events* (engines, car passes, chimes, footsteps, bird chirps, screeches,
brake hiss, announcement-like formant bursts, ...) and in their timing: rates, rhythms (footsteps,
rail joints), clusters (bird songs, beeps) and durations; each scene's signature events are dense
enough to occur in a 3-s excerpt. Every part's level is jittered ±4 dB per clip and each part is
present only with some probability, so the average spectrum alone does not name the class
(SYNTHETIC.md lessons 3 and 4); as in real scenes, overall loudness (`Recipe.level_dbfs`, ±3 dB per
clip) and spectral tilt carry some class information too.

Everything is vectorised numpy: noise is synthesised in the frequency domain, harmonic sounds come
from pulse trains or a one-second wavetable, and only the events themselves are placed in a Python
loop. A 10-s clip renders in about 0.1 s on one core.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np
import scipy.fft
import scipy.signal

from ascjax.data import layout

SR = layout.SAMPLE_RATE
NUM_SAMPLES = int(layout.CLIP_SECONDS * SR)
CONTROL_RATE = 100                   # Hz, for slow envelopes
JITTER_DB = 4.0                      # per-clip level jitter of every part
LEVEL_JITTER_DB = 3.0                # per-clip jitter of the whole clip's loudness
COLOUR_FREQS = np.geomspace(60.0, 16_000.0, 8)
_LOCATION_STREAM = 5_000             # separates location streams from segment streams

# ------------------------------------------------------------------------------------------------
# Signal primitives


def _log2f(f: np.ndarray) -> np.ndarray:
    return np.log2(np.maximum(f, 10.0))


# dB responses are functions of log2(frequency), so that a grid's logarithm is computed once.
def bump(centre: float, width_oct: float, height_db: float = 0.0) -> Callable:
    """A band: a Gaussian in log-frequency, height_db at the centre, 12 dB less at ±width_oct."""
    c = float(np.log2(centre))
    return lambda lf: height_db - 12.0 * ((lf - c) / width_oct) ** 2


def tilt(db_per_oct: float, ref: float = 1000.0) -> Callable:
    r = float(np.log2(ref))
    return lambda lf: db_per_oct * (lf - r)


def highpass(cutoff: float, db_per_oct: float = 12.0) -> Callable:
    c = float(np.log2(cutoff))
    return lambda lf: -db_per_oct * np.maximum(c - lf, 0.0)


@functools.lru_cache(maxsize=64)
def _log2_grid(m: int) -> np.ndarray:
    """log2 of the rfft bin frequencies of an m-point transform (float32)."""
    return _log2f(np.fft.rfftfreq(m, 1.0 / SR)).astype(np.float32)


def _gain(m: int, db_fns: Sequence[Callable]) -> np.ndarray:
    lf = _log2_grid(m)
    db = sum(fn(lf) for fn in db_fns)
    return np.exp(np.maximum(db, -80.0) * np.float32(np.log(10.0) / 20.0))


def unit_rms(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-12)


def shaped_noise(rng: np.random.Generator, n: int, *db_fns: Callable) -> np.ndarray:
    """Gaussian noise of unit RMS (float32) whose spectrum follows the sum of dB responses."""
    m = scipy.fft.next_fast_len(n, real=True)
    spec = rng.standard_normal((m // 2 + 1, 2), dtype=np.float32).view(np.complex64)[:, 0]
    return unit_rms(scipy.fft.irfft(spec * _gain(m, db_fns), m)[:n])


def filtered(x: np.ndarray, *db_fns: Callable) -> np.ndarray:
    """Zero-phase FFT filtering of a short event, padded so that nothing wraps around audibly."""
    m = scipy.fft.next_fast_len(len(x) + len(x) // 2 + 256, real=True)
    spec = scipy.fft.rfft(np.asarray(x, np.float32), m)
    return scipy.fft.irfft(spec * _gain(m, db_fns), m)[: len(x)]


def smooth_random(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """A slowly varying N(0, 1)-like curve with about `rate_hz` independent values per second."""
    points = max(int(n / SR * rate_hz) + 2, 2)
    return np.interp(_arange(n), np.linspace(0, n, points), rng.standard_normal(points))


@functools.lru_cache(maxsize=8)
def _arange(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32)


def tone(freq: np.ndarray | float, n: int, partials=((1.0, 1.0),), phase0: float = 0.0):
    """Sum of sinusoids at ratio*freq (freq may vary per sample); partials = ((ratio, amp), ...)."""
    if np.ndim(freq) == 0:
        phase = (2.0 * np.pi * float(freq) / SR) * np.arange(n) + phase0
    else:
        phase = 2.0 * np.pi * np.cumsum(freq, dtype=np.float64) / SR + phase0
    # Wrap in float64, evaluate in float32: sin is the cost, and float32 halves it.
    return sum(np.float32(a) * np.sin(np.mod(r * phase, 2 * np.pi).astype(np.float32))
               for r, a in partials)


def pulse_train(freq: np.ndarray, kernel: np.ndarray, rng: np.random.Generator,
                jitter: float = 0.0) -> np.ndarray:
    """A periodic (harmonic) sound: one kernel per period of `freq` (per-sample Hz), cheaply."""
    cycles = np.floor(np.cumsum(freq) / SR)
    at = np.flatnonzero(np.diff(cycles, prepend=cycles[0]) > 0)
    impulses = np.zeros(len(freq), np.float32)
    impulses[at] = 1.0 + jitter * rng.standard_normal(len(at))
    return scipy.signal.oaconvolve(impulses, kernel.astype(np.float32))[: len(freq)]


def decay(n: int, tau_s: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (tau_s * SR))


def fades(n: int, attack_s: float, release_s: float) -> np.ndarray:
    t = np.arange(n) / SR
    rise = np.clip(t / max(attack_s, 1e-3), 0, 1)
    return rise * np.clip((n / SR - t) / max(release_s, 1e-3), 0, 1)


def pass_envelope(n: int, tau_s: float, power: float = 0.5) -> np.ndarray:
    """Amplitude of a source passing at closest distance d and speed v (tau = d / v)."""
    x = (np.arange(n) / SR - n / SR / 2) / tau_s
    return (1.0 + x ** 2) ** -power


def _n(seconds: float) -> int:
    return max(int(seconds * SR), 16)


# ------------------------------------------------------------------------------------------------
# Location: the slight, location-specific background character of one recording place


@dataclasses.dataclass(frozen=True)
class Location:
    colour_db: tuple[float, ...]     # background colour at COLOUR_FREQS
    slope_offset: float              # dB/octave added to the class's bed slope
    hum_f0: int                      # integer Hz, so that one second of hum tiles exactly
    hum_partials_db: tuple[float, ...]
    bed_offsets_db: tuple[float, ...]  # per bed kind (BEDS order), added to the recipe level
    rt60: float
    wet_db: float

    def colour(self) -> Callable:
        return lambda lf: np.interp(lf, np.log2(COLOUR_FREQS), self.colour_db).astype(np.float32)


BEDS = ('noise_bed', 'hum', 'babble', 'traffic_far')


def draw_location(seed: int, scene: str, city: str, location: int) -> Location:
    """Deterministic in (seed, scene, city, location): every segment of a place shares it."""
    rng = np.random.default_rng(
        [seed, _LOCATION_STREAM, layout.SCENES.index(scene), layout.CITIES.index(city), location])
    recipe = RECIPES[scene]
    return Location(
        colour_db=tuple(np.round(rng.normal(0.0, 3.0, len(COLOUR_FREQS)), 2)),
        slope_offset=round(float(rng.normal(0.0, 1.0)), 2),
        hum_f0=int(rng.choice([50, 100, 150]) if rng.random() < 0.6 else rng.integers(70, 180)),
        hum_partials_db=tuple(np.round(-np.arange(6) * rng.uniform(2, 8) + rng.normal(0, 3, 6), 1)),
        bed_offsets_db=tuple(np.round(rng.uniform(-3.0, 3.0, len(BEDS)), 2)),
        rt60=round(float(rng.uniform(*recipe.rt60)), 3),
        wet_db=round(float(rng.uniform(*recipe.wet_db)), 2))


# ------------------------------------------------------------------------------------------------
# Parts. A generator takes (rng, style, ctx) and returns samples; `style` holds per-clip draws.


@dataclasses.dataclass(frozen=True)
class Context:
    n: int
    loc: Location
    bed_slope: float


def noise_bed(rng, style, ctx):
    x = shaped_noise(rng, ctx.n, tilt(ctx.bed_slope + ctx.loc.slope_offset), ctx.loc.colour(),
                     highpass(30.0))
    return x * 10 ** (1.5 * smooth_random(rng, ctx.n, 0.3) / 20)


def hum(rng, style, ctx):
    f0 = ctx.loc.hum_f0
    partials = [(k + 1.0, 10 ** (db / 20)) for k, db in enumerate(ctx.loc.hum_partials_db)]
    second = tone(float(f0), SR, partials, phase0=rng.uniform(0, 2 * np.pi))  # integer f0: periodic
    x = np.tile(second, ctx.n // SR + 1)[: ctx.n]
    fan = shaped_noise(rng, ctx.n, bump(rng.uniform(200, 600), 1.5))
    return unit_rms(x) + 0.3 * fan


def _talker_envelopes(rng, n: int, talkers: int) -> np.ndarray:
    """Sum of syllabic envelopes (3.5–6 syllables/s, in phrases separated by pauses), at SR."""
    frames = n // (SR // CONTROL_RATE) + 1
    rates = rng.uniform(3.5, 6.0, (talkers, 1)) * (1 + 0.2 * rng.standard_normal((talkers, frames)))
    syllables = np.sin(np.pi * np.cumsum(np.abs(rates), axis=1) / CONTROL_RATE) ** 2
    phrases = np.cumsum(rng.standard_normal((talkers, frames)), axis=1) / 8.0
    gate = 1.0 / (1.0 + np.exp(-4.0 * np.sin(phrases + rng.uniform(0, 6, (talkers, 1)))))
    levels = 10 ** (rng.uniform(-6, 6, (talkers, 1)) / 20)
    env = np.sum(levels * syllables * gate, axis=0)
    return np.interp(np.arange(n), np.arange(frames) * (SR // CONTROL_RATE), env)


def babble(rng, style, ctx):
    talkers = int(round(style['talkers']))
    low = shaped_noise(rng, ctx.n, bump(450.0, 1.3), ctx.loc.colour())
    high = shaped_noise(rng, ctx.n, bump(2200.0, 1.2, -8.0), ctx.loc.colour())
    return (low * _talker_envelopes(rng, ctx.n, talkers)
            + high * _talker_envelopes(rng, ctx.n, talkers))


def traffic_far(rng, style, ctx):
    x = shaped_noise(rng, ctx.n, bump(250.0, 2.0), tilt(-2.0), ctx.loc.colour())
    return x * 10 ** (smooth_random(rng, ctx.n, 0.3) * 4.0 / 20)


def rumble(rng, style, ctx):
    """Vehicle interior: low road/rail rumble whose level follows a slow speed profile."""
    speed = 1.0 + 0.5 * np.tanh(1.5 * smooth_random(rng, ctx.n, style['speed_rate']))
    low = shaped_noise(rng, ctx.n, bump(style['centre'], 1.5))
    mid = shaped_noise(rng, ctx.n, bump(900.0, 2.0, -12.0))
    return (low + mid) * speed ** 2


def engine(rng, style, ctx, n: int | None = None, freq: np.ndarray | None = None):
    """Combustion engine: one decaying low-pass burst per firing, firing rate idling and revving."""
    n = n or ctx.n
    if freq is None:
        revs = 0.5 + 0.5 * np.tanh(smooth_random(rng, n, style.get('rev_rate', 0.3)))
        freq = style['f_lo'] + (style['f_hi'] - style['f_lo']) * revs
    kernel = filtered(rng.standard_normal(_n(0.012)) * decay(_n(0.012), 0.003),
                      bump(style.get('kernel_hz', 400.0), 2.0))
    return unit_rms(pulse_train(freq, kernel, rng, jitter=0.3))


def wind(rng, style, ctx):
    x = shaped_noise(rng, ctx.n, bump(120.0, 1.5), tilt(-3.0))
    return x * 10 ** (smooth_random(rng, ctx.n, 0.6) * 6.0 / 20)


def fountain(rng, style, ctx):
    return shaped_noise(rng, ctx.n, bump(style['centre'], 2.0))


def music(rng, style, ctx):
    """Background music through ceiling speakers: triads changing every few seconds and a beat."""
    n = ctx.n
    root = style['root']
    beat = 60.0 / style['tempo']
    chord_len = _n(beat * 4)
    out = np.zeros(n)
    for start in range(0, n, chord_len):
        m = min(chord_len, n - start)
        degree = rng.choice([1.0, 4 / 3, 3 / 2, 5 / 3])
        triad = [(degree * r, 1.0) for r in (1.0, rng.choice([1.2, 1.25]), 1.5)]
        partials = [(r * h, a / h) for r, a in triad for h in (1, 2)]
        out[start:start + m] = tone(root, m, partials, rng.uniform(0, 6)) * fades(m, 0.05, 0.3)
    kick = np.sin(2 * np.pi * 60 * np.arange(_n(0.15)) / SR) * decay(_n(0.15), 0.04)
    for t in np.arange(rng.uniform(0, beat), n / SR, beat):
        i = int(t * SR)
        out[i:i + len(kick)] += 3.0 * kick[: n - i]
    return filtered(unit_rms(out), bump(1200.0, 3.0))


# Events: short sounds placed on a timeline.


def footstep(rng, style, ctx):
    n = _n(rng.uniform(0.04, 0.09))
    x = rng.standard_normal(n) * decay(n, rng.uniform(0.006, 0.02))
    return filtered(x, bump(style['centre'] * rng.uniform(0.8, 1.25), 1.5))


def chirp(rng, style, ctx):
    """A bird chirp: a fast frequency sweep with a weak second harmonic and an optional trill."""
    n = _n(rng.uniform(0.04, 0.16))
    lo, hi = style['f_lo'] * rng.uniform(0.9, 1.1), style['f_hi'] * rng.uniform(0.9, 1.1)
    u = np.linspace(0, 1, n)
    freq = lo + (hi - lo) * (u if rng.random() < style['up'] else 1 - u) ** rng.uniform(0.5, 2)
    trill = 1 + 0.8 * np.sin(2 * np.pi * style['trill'] * u * n / SR)
    return tone(freq, n, ((1.0, 1.0), (2.0, 0.15))) * np.hanning(n) * trill


def chime(rng, style, ctx):
    """Struck bells: decaying partials; 'notes' successive notes (ding-dong) a third apart."""
    n_note = _n(style['decay'] * 4)
    f0 = style['f0'] * rng.uniform(0.98, 1.02)
    ratios = style['ratios']
    partials = [(r, 1.0 / (i + 1)) for i, r in enumerate(ratios)]
    ring = decay(n_note, style['decay'])
    notes = [tone(f0 * 0.8 ** k, n_note, partials, rng.uniform(0, 6)) * ring
             for k in range(int(style.get('notes', 1)))]
    gap = _n(style.get('gap', 0.5))
    out = np.zeros(gap * (len(notes) - 1) + n_note)
    for k, note in enumerate(notes):
        out[k * gap:k * gap + n_note] += note
    return out * fades(len(out), 0.002, 0.05)


def announcement(rng, style, ctx):
    """A public-address voice: glottal pulses shaped by vowel formants, syllable by syllable."""
    n = _n(rng.uniform(1.5, 4.0))
    f0 = style['f0'] * (1 + 0.12 * smooth_random(rng, n, 3.0))
    glottal = np.diff(np.exp(-np.arange(_n(0.004)) / 20.0), prepend=0)
    source = pulse_train(f0, glottal, rng, jitter=0.05)
    out = np.zeros(n)
    start = 0
    while start < n:
        m = min(_n(rng.uniform(0.1, 0.3)), n - start)
        f1, f2, f3 = VOWELS[rng.integers(len(VOWELS))]
        syllable = filtered(source[start:start + m], bump(f1, 0.4), bump(f2, 0.4, -4),
                            bump(f3, 0.4, -10), tilt(-3.0))
        out[start:start + m] = syllable * np.hanning(m) * 10 ** (rng.uniform(-6, 0) / 20)
        start += m + _n(rng.exponential(0.06))
    return filtered(out, bump(1500.0, 1.6))   # loudspeaker band


VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480), (570, 840, 2410),
          (300, 870, 2240), (660, 1720, 2410))


def beep(rng, style, ctx):
    n = _n(style['length'])
    return tone(style['freq'], n, ((1.0, 1.0), (3.0, 0.3))) * fades(n, 0.005, 0.005)


def screech(rng, style, ctx):
    """Wheel squeal or brake screech: a narrow, wavering high tone with harmonics."""
    n = _n(rng.uniform(0.5, 3.0))
    f0 = style['f0'] * rng.uniform(0.85, 1.15)
    freq = f0 * (1 + 0.03 * smooth_random(rng, n, 2.0)) + 0.01 * f0 * np.sin(
        2 * np.pi * rng.uniform(5, 12) * np.arange(n) / SR)
    x = unit_rms(tone(freq, n, ((1.0, 1.0), (2.0, 0.4), (3.0, 0.15))))
    x += 0.5 * shaped_noise(rng, n, bump(f0, 0.3))
    return x * fades(n, rng.uniform(0.05, 0.5), rng.uniform(0.1, 0.6))


def hiss(rng, style, ctx):
    """Pneumatic brake or door: a high-passed burst with a fast attack."""
    n = _n(rng.uniform(0.4, 1.5))
    return shaped_noise(rng, n, bump(style['centre'], 1.5)) * fades(n, 0.01, 0.05) * decay(
        n, n / SR / 3)


def clack(rng, style, ctx):
    """A wheel crossing a rail joint: a low-mid thump."""
    n = _n(rng.uniform(0.04, 0.08))
    x = rng.standard_normal(n) * decay(n, rng.uniform(0.01, 0.025))
    return filtered(x, bump(style['centre'], 1.2))


def motor_whine(rng, style, ctx):
    """Electric traction motor: a tonal sweep up (accelerating) or down (braking)."""
    n = _n(rng.uniform(3.0, 8.0))
    a, b = style['f_lo'] * rng.uniform(0.8, 1.2), style['f_hi'] * rng.uniform(0.8, 1.2)
    if rng.random() < 0.5:
        a, b = b, a
    freq = np.geomspace(a, b, n)
    x = tone(freq, n, ((1.0, 1.0), (2.0, 0.5), (3.0, 0.2)))
    return x * np.hanning(n) ** 0.5


def car_pass(rng, style, ctx):
    """A car passing: tyre noise peaking at the closest point (sharper at high frequencies) and
    an engine whose firing rate drops through the pass (Doppler)."""
    n = _n(rng.uniform(3.0, 7.0))
    tau = rng.uniform(0.3, 1.0)
    low = shaped_noise(rng, n, bump(600.0, 1.8)) * pass_envelope(n, tau, 0.5)
    high = shaped_noise(rng, n, bump(3000.0, 1.5, -6)) * pass_envelope(n, tau, 1.0)
    x = (np.arange(n) / SR - n / SR / 2) / tau
    freq = rng.uniform(30, 90) * (1 - 0.06 * np.tanh(x))
    motor = engine(rng, {'kernel_hz': 300.0}, ctx, n, freq) * pass_envelope(n, tau, 0.5)
    return low + high + 10 ** (rng.uniform(-10, 0) / 20) * motor


def horn(rng, style, ctx):
    n = _n(rng.uniform(0.2, 1.0))
    f = style['f0'] * rng.uniform(0.95, 1.05)
    x = (tone(f, n, [(k, 1 / k) for k in range(1, 8)])
         + tone(1.26 * f, n, [(k, 1 / k) for k in (1, 2, 3)]))
    return filtered(x, bump(2000.0, 2.0)) * fades(n, 0.02, 0.05)


def roll(rng, style, ctx):
    """A rolling suitcase or trolley: rough noise ticked by floor joints, fading in and out."""
    n = _n(rng.uniform(2.0, 5.0))
    ticks = np.zeros(n)
    ticks[:: _n(1.0 / rng.uniform(6, 14))] = 1.0
    tick_sound = rng.standard_normal(_n(0.01)) * decay(_n(0.01), 0.002)
    x = scipy.signal.oaconvolve(ticks, tick_sound)[:n] * 3.0
    x += 0.5 * shaped_noise(rng, n, bump(style['centre'], 1.5))
    return filtered(x, bump(style['centre'], 2.0)) * np.hanning(n)


def train_pass(rng, style, ctx):
    """A train arriving or leaving a platform: a long rumble swell with a motor whine."""
    n = _n(rng.uniform(6.0, 12.0))
    env = pass_envelope(n, rng.uniform(1.0, 3.0), 0.7)
    body = shaped_noise(rng, n, bump(150.0, 1.5)) + shaped_noise(rng, n, bump(1000.0, 1.5, -6))
    whine = unit_rms(motor_whine(rng, {'f_lo': 250.0, 'f_hi': 900.0}, ctx))
    whine = np.pad(whine, (0, max(0, n - len(whine))))[:n]
    return (body + 0.3 * whine) * env


GENERATORS = {f.__name__: f for f in (
    noise_bed, hum, babble, traffic_far, rumble, engine, wind, fountain, music, footstep, chirp,
    chime, announcement, beep, screech, hiss, clack, motor_whine, car_pass, horn, roll, train_pass)}

# ------------------------------------------------------------------------------------------------
# Timing: when the events of one part occur (seconds, may start before the clip).


def onsets(rng: np.random.Generator, timing: tuple, seconds: float) -> np.ndarray:
    kind, *args = timing
    if kind == 'poisson':                      # (rate/s,)
        count = rng.poisson(args[0] * (seconds + 3.0))
        return np.sort(rng.uniform(-3.0, seconds, count))
    if kind == 'walk':                         # (walkers/s,): people passing, 1.6–2.2 steps/s
        steps = [s + np.arange(rng.integers(3, 16)) / rng.uniform(1.6, 2.2)
                 for s in onsets(rng, ('poisson', args[0]), seconds)]
        t = np.concatenate(steps) if steps else np.zeros(0)
        return np.sort(t + rng.normal(0.0, 0.01, len(t)))
    if kind == 'cluster':                      # (rate/s, n_lo, n_hi, gap_lo, gap_hi): songs, beeps
        rate, n_lo, n_hi, gap_lo, gap_hi = args
        groups = [s + np.cumsum(rng.uniform(gap_lo, gap_hi, rng.integers(n_lo, n_hi + 1)))
                  for s in onsets(rng, ('poisson', rate), seconds)]
        return np.sort(np.concatenate(groups or [np.zeros(0)]))
    if kind == 'rhythm':                       # (period_lo, period_hi, offsets...): rail joints
        period = rng.uniform(args[0], args[1])
        beats = np.arange(rng.uniform(-period, 0), seconds, period)
        pattern = np.asarray(args[2:]) * period
        return np.sort((beats[:, None] + pattern[None, :]).ravel())
    raise ValueError(f'unknown timing {timing!r}')


# ------------------------------------------------------------------------------------------------
# Recipes


@dataclasses.dataclass(frozen=True)
class Part:
    kind: str                       # a GENERATORS name
    level_db: float                 # RMS of the bed, or of each event, relative to the noise bed
    presence: float = 1.0           # probability that the part occurs in a clip
    timing: tuple | None = None     # None: one sound spanning the clip; else see onsets()
    style: tuple = ()               # ((name, value or (lo, hi)), ...): drawn once per clip


@dataclasses.dataclass(frozen=True)
class Recipe:
    bed_slope: float                # dB/octave of the noise bed
    parts: tuple[Part, ...]
    rt60: tuple[float, float]       # reverberation of the events, per location
    wet_db: tuple[float, float]
    level_dbfs: float = -26.0       # mean clip loudness (RMS dBFS): a metro is louder than a park


def _beds(hum=None, babble=None, talkers=(3, 10), traffic=None, babble_p=1.0, traffic_p=1.0):
    beds = [Part('noise_bed', 0.0)]
    if hum is not None:
        beds.append(Part('hum', hum, 0.8))
    if babble is not None:
        beds.append(Part('babble', babble, babble_p, style=(('talkers', talkers),)))
    if traffic is not None:
        beds.append(Part('traffic_far', traffic, traffic_p))
    return tuple(beds)


def _s(**kw) -> tuple:
    return tuple(kw.items())


WALK_HARD = _s(centre=(1500.0, 3000.0))
PA = _s(f0=(95.0, 230.0))
DING_DONG = _s(f0=(600.0, 1000.0), ratios=(1.0, 2.0, 3.0), decay=0.5, notes=2, gap=0.6)

# Each scene has signature events dense enough to occur in a 3-s excerpt (rates of 0.2–1 per
# second, or continuous), and a loudness of its own: roughly the order of TAU's scenes, vehicles
# and traffic loudest, the park quietest (SYNTHETIC.md; issue #16).
RECIPES = {
    'airport': Recipe(-2.5, _beds(hum=-8, babble=2, talkers=(8, 20)) + (
        Part('announcement', 4, 0.85, ('poisson', 0.25), PA),
        Part('chime', 0, 0.6, ('poisson', 0.12), DING_DONG),
        Part('roll', -2, 0.9, ('poisson', 0.4), _s(centre=(500.0, 1200.0))),
        Part('footstep', -4, 0.7, ('walk', 0.3), WALK_HARD),
        Part('beep', -6, 0.3, ('cluster', 0.08, 1, 3, 0.1, 0.3), _s(freq=(1000, 3000), length=0.1)),
    ), rt60=(1.2, 2.2), wet_db=(-4, 0), level_dbfs=-27.0),
    'bus': Recipe(-5.0, _beds(hum=-12, babble=-4, talkers=(2, 6), babble_p=0.6) + (
        Part('rumble', 4, 1.0, None, _s(centre=(60.0, 120.0), speed_rate=0.3)),
        Part('engine', 4, 1.0, None,
             _s(f_lo=(20.0, 30.0), f_hi=(50.0, 80.0), kernel_hz=(250, 500))),
        Part('hiss', 0, 0.8, ('poisson', 0.25), _s(centre=(3000.0, 6000.0))),
        Part('beep', -4, 0.6, ('cluster', 0.15, 2, 4, 0.2, 0.5), _s(freq=(800, 2000), length=0.2)),
        Part('announcement', 0, 0.3, ('poisson', 0.08), PA),
        Part('clack', -8, 0.3, ('rhythm', 0.7, 0.8, 0.0), _s(centre=(1500.0, 3000.0))),
    ), rt60=(0.2, 0.4), wet_db=(-10, -6), level_dbfs=-22.0),
    'metro': Recipe(-4.5, _beds(hum=-10, babble=-6, talkers=(2, 8), babble_p=0.5) + (
        Part('rumble', 6, 1.0, None, _s(centre=(80.0, 160.0), speed_rate=0.2)),
        Part('clack', 2, 0.95, ('rhythm', 0.5, 1.5, 0.0, 0.15), _s(centre=(200.0, 500.0))),
        Part('screech', 0, 0.7, ('poisson', 0.3), _s(f0=(2000.0, 5000.0))),
        Part('motor_whine', -3, 0.8, ('poisson', 0.25),
             _s(f_lo=(300.0, 500.0), f_hi=(800.0, 1200.0))),
        Part('announcement', 0, 0.4, ('poisson', 0.1), PA),
        Part('chime', -2, 0.3, ('poisson', 0.06), DING_DONG),
    ), rt60=(0.3, 0.6), wet_db=(-8, -4), level_dbfs=-20.0),
    'metro_station': Recipe(-2.5, _beds(hum=-6, babble=0, talkers=(4, 15)) + (
        Part('train_pass', 6, 0.7, ('poisson', 0.15)),
        Part('screech', -2, 0.5, ('poisson', 0.12), _s(f0=(2000.0, 5000.0))),
        Part('announcement', 3, 0.85, ('poisson', 0.3), PA),
        Part('chime', 0, 0.5, ('poisson', 0.12), DING_DONG),
        Part('footstep', -3, 0.8, ('walk', 0.4), WALK_HARD),
    ), rt60=(1.5, 2.5), wet_db=(-3, 0), level_dbfs=-24.0),
    'park': Recipe(-4.0, _beds(babble=-10, talkers=(1, 4), babble_p=0.4, traffic=-2,
                               traffic_p=0.7) + (
        Part('wind', 0, 0.6),
        Part('chirp', -2, 0.95, ('cluster', 0.6, 3, 12, 0.06, 0.25),
             _s(f_lo=(1800.0, 4000.0), f_hi=(4000.0, 8000.0), up=(0.0, 1.0), trill=(0.0, 40.0))),
        Part('footstep', -8, 0.4, ('walk', 0.1), _s(centre=(600.0, 1500.0))),
        Part('car_pass', -8, 0.3, ('poisson', 0.03)),
    ), rt60=(0.1, 0.3), wet_db=(-14, -8), level_dbfs=-33.0),
    'public_square': Recipe(-3.0, _beds(babble=-2, talkers=(3, 10), traffic=0) + (
        Part('footstep', -4, 0.8, ('walk', 0.4), _s(centre=(1000.0, 2500.0))),
        Part('chirp', -8, 0.5, ('cluster', 0.2, 2, 6, 0.1, 0.3),
             _s(f_lo=(2000.0, 3500.0), f_hi=(3500.0, 6000.0), up=(0.0, 1.0), trill=(0.0, 30.0))),
        Part('fountain', -2, 0.6, None, _s(centre=(1500.0, 4000.0))),
        Part('chime', 0, 0.3, ('poisson', 0.1),
             _s(f0=(250.0, 500.0), ratios=(0.5, 1.0, 1.2, 1.5, 2.0), decay=1.5)),
        Part('car_pass', -6, 0.4, ('poisson', 0.08)),
    ), rt60=(0.3, 0.8), wet_db=(-12, -6), level_dbfs=-28.0),
    'shopping_mall': Recipe(-2.5, _beds(hum=-6, babble=2, talkers=(8, 25)) + (
        Part('music', -2, 0.9, None, _s(root=(110.0, 220.0), tempo=(90.0, 130.0))),
        Part('footstep', -3, 0.8, ('walk', 0.4), WALK_HARD),
        Part('beep', -6, 0.6, ('cluster', 0.2, 1, 2, 0.1, 0.2),
             _s(freq=(2000, 4000), length=0.08)),
        Part('roll', -4, 0.5, ('poisson', 0.15), _s(centre=(800.0, 2000.0))),
        Part('announcement', 0, 0.3, ('poisson', 0.06), PA),
    ), rt60=(1.0, 2.0), wet_db=(-4, 0), level_dbfs=-26.0),
    'street_pedestrian': Recipe(-3.0, _beds(babble=0, talkers=(1, 6), traffic=-2) + (
        Part('footstep', -1, 0.95, ('walk', 0.8), _s(centre=(1000.0, 3000.0))),
        Part('car_pass', -4, 0.6, ('poisson', 0.12)),
        Part('chime', -4, 0.3, ('cluster', 0.08, 1, 2, 0.15, 0.3),
             _s(f0=(2000.0, 4000.0), ratios=(1.0, 1.5, 2.4), decay=0.3)),
        Part('roll', -6, 0.4, ('poisson', 0.1), _s(centre=(600.0, 1500.0))),
        Part('chirp', -10, 0.2, ('cluster', 0.05, 2, 6, 0.1, 0.3),
             _s(f_lo=(2000.0, 3500.0), f_hi=(3500.0, 6000.0), up=(0.0, 1.0), trill=(0.0, 30.0))),
    ), rt60=(0.2, 0.5), wet_db=(-12, -6), level_dbfs=-26.0),
    'street_traffic': Recipe(-4.0, _beds(babble=-10, talkers=(1, 4), babble_p=0.3, traffic=4) + (
        Part('car_pass', 4, 1.0, ('poisson', 0.5)),
        Part('engine', -2, 0.6, None,
             _s(f_lo=(15.0, 25.0), f_hi=(30.0, 45.0), kernel_hz=(200, 400))),
        Part('horn', 0, 0.4, ('poisson', 0.08), _s(f0=(350.0, 480.0))),
        Part('screech', -4, 0.2, ('poisson', 0.05), _s(f0=(3000.0, 6000.0))),
        Part('hiss', -2, 0.2, ('poisson', 0.05), _s(centre=(3000.0, 6000.0))),
        Part('footstep', -8, 0.3, ('walk', 0.1), _s(centre=(1000.0, 3000.0))),
    ), rt60=(0.2, 0.5), wet_db=(-12, -6), level_dbfs=-21.0),
    'tram': Recipe(-4.5, _beds(hum=-10, babble=-5, talkers=(2, 8), babble_p=0.6) + (
        Part('rumble', 3, 1.0, None, _s(centre=(100.0, 200.0), speed_rate=0.3)),
        Part('motor_whine', 0, 0.9, ('poisson', 0.3),
             _s(f_lo=(400.0, 700.0), f_hi=(900.0, 1500.0))),
        Part('clack', 0, 0.8, ('rhythm', 0.8, 2.5, 0.0, 0.2), _s(centre=(250.0, 600.0))),
        Part('chime', 2, 0.6, ('cluster', 0.12, 2, 2, 0.25, 0.35),
             _s(f0=(900.0, 1600.0), ratios=(1.0, 2.76, 5.4), decay=0.4)),
        Part('screech', -2, 0.4, ('poisson', 0.1), _s(f0=(1500.0, 4000.0))),
        Part('announcement', 0, 0.4, ('poisson', 0.08), PA),
        Part('beep', -6, 0.3, ('cluster', 0.06, 2, 4, 0.2, 0.4), _s(freq=(800, 2000), length=0.2)),
    ), rt60=(0.3, 0.6), wet_db=(-8, -4), level_dbfs=-22.0),
}
assert set(RECIPES) == set(layout.SCENES)

# ------------------------------------------------------------------------------------------------
# Rendering


def _draw_style(rng: np.random.Generator, style: tuple) -> dict:
    drawn = {}
    for name, value in style:
        is_range = isinstance(value, tuple) and len(value) == 2 and name != 'ratios'
        drawn[name] = float(rng.uniform(*value)) if is_range else value
    return drawn


def _place(out: np.ndarray, sound: np.ndarray, at: int) -> None:
    lo, hi = max(at, 0), min(at + len(sound), len(out))
    if hi > lo:
        out[lo:hi] += sound[lo - at:hi - at]


def render_part(rng: np.random.Generator, part: Part, ctx: Context) -> np.ndarray:
    gen = GENERATORS[part.kind]
    style = _draw_style(rng, part.style)
    if part.timing is None:
        return unit_rms(gen(rng, style, ctx))
    out = np.zeros(ctx.n)
    for t in onsets(rng, part.timing, ctx.n / SR):
        sound = unit_rms(gen(rng, style, ctx)) * 10 ** (rng.uniform(-3, 3) / 20)
        _place(out, sound, int(round(t * SR)))
    return out


def reverb_ir(rng: np.random.Generator, rt60: float) -> np.ndarray:
    n = _n(min(rt60, 1.5))
    ir = rng.standard_normal(n) * decay(n, rt60 / 6.9)
    ir = filtered(ir, tilt(-2.0))               # air absorbs the highs
    return (ir / np.sqrt(np.sum(ir ** 2))).astype(np.float32)


def render(scene: str, loc: Location, rng: np.random.Generator,
           num_samples: int = NUM_SAMPLES) -> np.ndarray:
    """One clean 10-s segment of `scene` at location `loc`: float32, RMS within ±LEVEL_JITTER_DB
    of the scene's `level_dbfs`."""
    recipe = RECIPES[scene]
    ctx = Context(num_samples, loc, recipe.bed_slope)
    beds, events = np.zeros(num_samples), np.zeros(num_samples)
    for part in recipe.parts:
        # Draws happen whether or not the part is present, so parts stay independent streams.
        part_rng = np.random.default_rng(rng.integers(2 ** 63))
        present = rng.random() < part.presence
        level = part.level_db + rng.uniform(-JITTER_DB, JITTER_DB)
        if part.kind in BEDS:
            level += loc.bed_offsets_db[BEDS.index(part.kind)]
        if not present:
            continue
        x = render_part(part_rng, part, ctx) * 10 ** (level / 20)
        if part.timing is None:
            beds += x
        else:
            events += x
    ir_rng = np.random.default_rng(rng.integers(2 ** 63))
    wet = scipy.signal.fftconvolve(events.astype(np.float32), reverb_ir(ir_rng, loc.rt60))
    wet = wet[:num_samples]
    mix = beds + events + 10 ** (loc.wet_db / 20) * wet
    target_dbfs = recipe.level_dbfs + rng.uniform(-LEVEL_JITTER_DB, LEVEL_JITTER_DB)
    return (unit_rms(mix) * 10 ** (target_dbfs / 20)).astype(np.float32)
