"""Stores a teacher's logits for every training clip, once, keyed by filename.

    python -m ascjax.tasks.teacher_logits --workdir=TEACHER_DIR [--workdir=TEACHER2 ...] \
        --out=teacher.npz [--split=train]

Several workdirs (or one workdir trained with num_seeds=K) form an ensemble: their logits are
averaged. The file holds `filenames` [N] and `logits` [N, classes] (float32). A student run reads it
with `--config.train.distill.teacher_logits=teacher.npz` (`ascjax.compress.distill.TeacherSource`).
"""

from __future__ import annotations

import numpy as np

from ascjax import run as run_lib


def compute(workdirs: list[str], split: str = 'train') -> tuple[list[str], np.ndarray]:
    """(filenames, logits [N, classes] averaged over every workdir and seed) of `split`."""
    names, total = None, 0.0
    for workdir in workdirs:
        run = run_lib.open(workdir)
        p = run.predict(split)
        order = np.argsort(p['index'])
        these = run.source(split).filenames()
        if names is not None and these != names:
            raise ValueError(f'{workdir}: its {split} split differs from the first teacher\'s')
        names = these
        total = total + p['logits'][:, order].mean(0)
    return names, (total / len(workdirs)).astype(np.float32)


def main(argv):
    from ascjax import logs
    logs.quiet()   # orbax/TFDS/JAX INFO lines only with --verbosity=1
    from absl import app, flags
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    names, logits = compute(flags.FLAGS.workdir, flags.FLAGS.split)
    np.savez(flags.FLAGS.out, filenames=np.asarray(names), logits=logits)
    print(f'{flags.FLAGS.out}: {flags.FLAGS.split} logits {logits.shape}, mean of '
          f'{len(flags.FLAGS.workdir)} teacher workdir(s)')


if __name__ == '__main__':
    from absl import app, flags
    flags.DEFINE_multi_string('workdir', None, 'Teacher training workdir(s); several = ensemble.')
    flags.DEFINE_string('out', None, 'Output .npz (filenames, logits).')
    flags.DEFINE_string('split', 'train', 'Split to compute logits for.')
    flags.mark_flags_as_required(['workdir', 'out'])
    app.run(main)
