"""Stores a teacher's logits for every training clip, once, keyed by filename.

    python -m ascjax.distill.teacher_logits --workdir=TEACHER_DIR [--workdir=TEACHER2 ...] \
        --out=teacher.npz [--split=train]

Several workdirs (or one workdir trained with num_seeds=K) form an ensemble: their logits are
averaged. The file holds `filenames` [N] and `logits` [N, classes] (float32). A student run reads it
with `--config.train.distill.teacher_logits=teacher.npz`; `TeacherSource` then adds each example's
`teacher` logits to its batches (matched by filename, so the student may use other features).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ascjax.data import pipeline


@dataclasses.dataclass
class TeacherSource:
    """A training split whose batches also carry `teacher` logits [classes] per example."""
    base: pipeline.Source
    logits: np.ndarray            # [N, classes], in the base source's order

    def __post_init__(self):
        self.signal, self.signal_shape = self.base.signal, self.base.signal_shape
        self.extras = {**getattr(self.base, 'extras', {}), 'teacher': self.logits.shape[1:]}

    @classmethod
    def of(cls, base: pipeline.Source, path: str) -> TeacherSource:
        """Matches `path`'s logits to the base source's clips by filename."""
        with np.load(path) as f:
            names, logits = [str(n) for n in f['filenames']], f['logits'].astype(np.float32)
        row = {n: i for i, n in enumerate(names)}
        wanted = base.filenames()
        missing = [n for n in wanted if n not in row]
        if missing:
            raise ValueError(f'{path}: no teacher logits for {len(missing)} of the {len(wanted)} '
                             f'training clips, e.g. {missing[:3]}')
        return cls(base, logits[[row[n] for n in wanted]])

    def __len__(self) -> int:
        return len(self.base)

    def metadata(self):
        return self.base.metadata()

    def filenames(self):
        return self.base.filenames()

    def load(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {**self.base.load(indices), 'teacher': self.logits[np.asarray(indices, np.int64)]}


def compute(workdirs: list[str], split: str = 'train') -> tuple[list[str], np.ndarray]:
    """(filenames, logits [N, classes] averaged over every workdir and seed) of `split`."""
    import jax
    from ascjax.train import loop, step as step_lib
    names, total = None, 0.0
    for workdir in workdirs:
        config, model, state, mesh = loop.restore(workdir)
        source = loop.source(loop.open_data(config), split)
        shardings = jax.tree.map(lambda a: a.sharding, state)
        eval_step = step_lib.make_eval_step(model, config, shardings, mesh)
        p = loop.predict(state, eval_step, source, config, mesh)
        order = np.argsort(p['index'])
        these = source.filenames()
        if names is not None and these != names:
            raise ValueError(f'{workdir}: its {split} split differs from the first teacher\'s')
        names = these
        total = total + p['logits'][:, order].mean(0)
    return names, (total / len(workdirs)).astype(np.float32)


def main(argv):
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
