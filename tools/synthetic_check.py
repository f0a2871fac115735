r"""Stand-in check of a synthetic (or real TAU) dataset: is the device shift what SYNTHETIC.md asks?

    python tools/synthetic_check.py --root=/tmp/demo [--seconds=3]

1. Device shift: per-band log-mel mean offsets of each device against A on the test pairs, next to
   the spread of per-band means between classes (lesson 1: offsets ~2–3 nats, >= 2x the spread), and
   how much of the X-vs-A difference is NOT a per-band constant (what instance norm cannot remove).
2. A linear stand-in classifier (numpy softmax regression on per-band log-mel statistics over
   time), trained on the train split, accuracy per test device, for
     raw  mean+std   : per band mean and std over time;
     raw  stats      : mean, std, 10th/90th percentile, mean |frame difference|;
     IN   stats      : the same statistics of frequency-wise instance-normalised log-mels (each band
                       standardised over time, so mean and std are constant and only shape is left).
   Rough target without normalisation (SYNTHETIC.md lesson 4): 60–75% on A, a 15–30 point drop on
   unseen S4–S6; with IN the unseen gap should shrink. A linear model is a proxy, not the answer.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.optimize
from absl import app, flags

from ascjax import features
from ascjax.data import audio, layout

FRONT_END = features.FrontEnd(n_mels=64)
UNSEEN = ('s4', 's5', 's6')


def logmel(x: np.ndarray, fe: features.FrontEnd = FRONT_END) -> np.ndarray:
    """[n_mels, frames] natural-log mel power: the project's front end, in numpy."""
    padded = np.pad(x, fe.n_fft // 2, mode='reflect')
    starts = np.arange(fe.num_frames(len(x))) * fe.hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, fe.n_fft)[starts]
    power = np.abs(np.fft.rfft(frames * features.analysis_window(fe), axis=-1)) ** 2
    return np.log(power @ features.mel_filterbank(fe) + fe.log_offset).T.astype(np.float32)


def statistics(m: np.ndarray, which: str) -> np.ndarray:
    if which == 'mean_std':
        return np.concatenate([m.mean(1), m.std(1)])
    p10, p90 = np.percentile(m, [10, 90], axis=1)
    return np.concatenate([m.mean(1), m.std(1), p10, p90, np.abs(np.diff(m, axis=1)).mean(1)])


def instance_norm(m: np.ndarray) -> np.ndarray:
    return (m - m.mean(1, keepdims=True)) / (m.std(1, keepdims=True) + 1e-5)


def softmax_regression(x: np.ndarray, y: np.ndarray, classes: int, l2: float) -> np.ndarray:
    """Multinomial logistic regression (with bias) by L-BFGS; returns [features + 1, classes]."""
    x = np.hstack([x, np.ones((len(x), 1))])
    onehot = np.eye(classes)[y]

    def loss(w):
        w = w.reshape(x.shape[1], classes)
        logits = x @ w
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        nll = -np.mean(np.sum(onehot * np.log(p + 1e-12), 1))
        grad = x.T @ (p - onehot) / len(x)
        reg = w.copy()
        reg[-1] = 0.0
        return nll + 0.5 * l2 * np.sum(reg ** 2), (grad + l2 * reg).ravel()

    w0 = np.zeros(x.shape[1] * classes)
    res = scipy.optimize.minimize(loss, w0, jac=True, method='L-BFGS-B', options={'maxiter': 500})
    return res.x.reshape(x.shape[1], classes)


def accuracy_table(train_f, train_y, test_f, test_y, test_dev, l2=1e-2) -> dict[str, float]:
    mu, sd = train_f.mean(0), train_f.std(0) + 1e-6   # constant features (IN mean/std) -> 0
    w = softmax_regression((train_f - mu) / sd, train_y, len(layout.SCENES), l2)
    xt = np.hstack([(test_f - mu) / sd, np.ones((len(test_f), 1))])
    correct = (xt @ w).argmax(1) == test_y
    table = {d: 100 * correct[test_dev == d].mean()
             for d in layout.DEVICES if np.any(test_dev == d)}
    table['all'] = 100 * correct.mean()
    return table


def device_shift(mels: dict[str, np.ndarray], clips: list[layout.Clip]) -> dict[str, tuple]:
    """Per device X: (mean |offset|, max |offset|, non-constant residual), in nats, vs A pairs."""
    by_pair = {}
    for c in clips:
        by_pair.setdefault(c.pair, {})[c.device] = mels[c.filename]
    out = {}
    for d in layout.DEVICES[1:]:
        diffs = [p[d] - p['a'] for p in by_pair.values() if d in p and 'a' in p]
        if not diffs:
            continue
        diffs = np.stack(diffs)                       # [pairs, mels, frames]
        offset = diffs.mean(axis=(0, 2))               # per band
        residual = (diffs - diffs.mean(2, keepdims=True)).std()   # what IN cannot remove
        out[d] = (np.abs(offset).mean(), np.abs(offset).max(), residual)
    return out


def class_spread(mels: dict[str, np.ndarray], clips: list[layout.Clip]) -> float:
    """Std across classes of the class-mean per-band log-mel mean (device A), mean over bands."""
    means = np.stack([np.stack([mels[c.filename].mean(1) for c in clips
                                if c.scene == s and c.device == 'a']).mean(0)
                      for s in layout.SCENES])
    return float(means.std(0).mean())


def load(root: str, clips: list[layout.Clip], seconds: float | None = None
         ) -> dict[str, np.ndarray]:
    """64-band log-mels of every clip, of its first `seconds` (None: all of it)."""
    n = None if seconds is None else int(seconds * layout.SAMPLE_RATE)
    return {c.filename: logmel(audio.load(os.path.join(root, c.filename), layout.SAMPLE_RATE,
                                          None).samples[:n]) for c in clips}


def report(root: str, seconds: float | None = None) -> str:
    train, test = layout.read_split(root, 'train'), layout.read_split(root, 'test')
    mels = load(root, train + test, seconds)
    what = 'whole clips' if seconds is None else f'first {seconds:g} s'
    lines = [f'{root}: {len(train)} train / {len(test)} test clips, 64-band log-mel (nats), '
             f'{what}']
    spread = class_spread(mels, train)
    lines.append(f'between-class spread of per-band means (A, train): {spread:.2f}')
    lines.append('device  mean|offset|  max|offset|  ratio-to-spread  residual-after-IN')
    for d, (mean_off, max_off, resid) in device_shift(mels, test).items():
        lines.append(f'{d:6}  {mean_off:12.2f}  {max_off:11.2f}  {mean_off / spread:15.1f}  '
                     f'{resid:17.2f}')
    y = lambda cs: np.array([c.label for c in cs])
    dev = np.array([c.device for c in test])
    rows = {'raw mean+std': lambda m: statistics(m, 'mean_std'),
            'raw stats': lambda m: statistics(m, 'stats'),
            'IN stats': lambda m: statistics(instance_norm(m), 'stats')}
    devs = [d for d in layout.DEVICES if np.any(dev == d)]
    lines.append('features        ' + ''.join(f'{d:>6}' for d in devs)
                 + '  unseen  seen(b..s3)  all')
    for name, fn in rows.items():
        tr = np.stack([fn(mels[c.filename]) for c in train])
        te = np.stack([fn(mels[c.filename]) for c in test])
        acc = accuracy_table(tr, y(train), te, y(test), dev)
        unseen = np.mean([acc[d] for d in UNSEEN if d in acc])
        seen = np.mean([acc[d] for d in ('b', 'c', 's1', 's2', 's3') if d in acc])
        lines.append(f'{name:15} ' + ''.join(f'{acc[d]:6.1f}' for d in devs)
                     + f'  {unseen:6.1f}  {seen:11.1f}  {acc["all"]:4.1f}')
    return '\n'.join(lines)


FLAGS = flags.FLAGS
flags.DEFINE_string('root', None, 'Dataset folder in the TAU layout.', required=True)
flags.DEFINE_float('seconds', None, 'Use the first SECONDS of each clip (as data.clip_seconds).')


def main(argv):
    del argv
    print(report(FLAGS.root, FLAGS.seconds))


if __name__ == '__main__':
    app.run(main)
