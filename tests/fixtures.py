"""A tiny dataset in the exact TAU Urban Acoustic Scenes 2020 Mobile layout, for offline tests."""

from __future__ import annotations

import os

import numpy as np

from ascjax.data import audio, layout

SAMPLE_RATE = 8_000   # tests use a small front end at 8 kHz so clips and features stay tiny
CLIP_SECONDS = 1.0

# (scene, city, location, segment, devices, split)
SEGMENTS = (
    ('airport', 'barcelona', 0, 0, ('a', 'b', 's1'), 'train'),
    ('bus', 'helsinki', 1, 0, ('a', 'c'), 'train'),
    ('park', 'lisbon', 2, 3, ('a',), 'train'),
    ('tram', 'vienna', 3, 1, ('a', 's2'), 'train'),
    ('metro', 'prague', 4, 0, ('a', 'b', 'c', 's4'), 'test'),
    ('street_traffic', 'milan', 5, 2, ('a', 's5', 's6'), 'test'),
)


def clip_samples(seed: int, seconds: float = CLIP_SECONDS, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A deterministic, real-like signal: a chirp plus noise bursts, within [-0.9, 0.9]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    chirp = 0.3 * np.sin(2 * np.pi * (200 + 800 * t) * t + rng.uniform(0, 6))
    noise = 0.1 * rng.standard_normal(t.shape) * (np.sin(2 * np.pi * 3 * t) > 0)
    # A noise floor everywhere: exactly silent bins would give ties in max-pooling, whose gradient
    # then depends on float round-off (and runs on 1 vs 2 devices would drift apart).
    floor = 0.003 * rng.standard_normal(t.shape)
    return np.clip(chirp + noise + floor, -0.9, 0.9).astype(np.float32)


def write_tau(root: str, rate: int = SAMPLE_RATE, seconds: float = CLIP_SECONDS) -> list[layout.Clip]:
    """Writes SEGMENTS as 24-bit wavs plus meta.csv and evaluation_setup/; returns the clips."""
    os.makedirs(os.path.join(root, 'audio'), exist_ok=True)
    clips, splits = [], {'train': [], 'test': []}
    for i, (scene, city, loc, seg, devices, split) in enumerate(SEGMENTS):
        source = clip_samples(i, seconds, rate)
        for j, device in enumerate(devices):
            name = layout.clip_filename(scene, city, loc, seg, device)
            audio.write(os.path.join(root, name), source * (0.9 ** j), rate)
            parts = layout.parse_filename(name)
            clips.append(layout.Clip(filename=name, scene=scene, device=device, city=city,
                                     location=parts['location'], pair=parts['pair']))
            splits[split].append(name)
    layout.write_metadata(root, clips, splits)
    return clips
