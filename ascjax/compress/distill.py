"""Knowledge distillation: the loss term and the teacher logits that the pipeline carries.

With `train.losses = {'cross_entropy': 1 - alpha, 'distill': alpha}` the classifier minimises
(1 - alpha) * CE(labels) + alpha * T^2 * KL(teacher_T || student_T) (Hinton et al.), where
teacher_T = softmax(teacher logits / T); mixup mixes the teacher's softened probabilities with the
same weights as the inputs and labels. The logits come from a file made once by
`python -m ascjax.tasks.teacher_logits` and are matched to the training clips by filename
(`TeacherSource`), so the student may use other features than the teacher.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import optax

from ascjax.data import sources


def soft_targets(teacher_logits: jax.Array, temperature: float) -> jax.Array:
    """The teacher's probabilities at temperature T: [B, classes]."""
    return jax.nn.softmax(teacher_logits / temperature)


def loss(logits: jax.Array, teacher_probabilities: jax.Array, temperature: float):
    """(T^2, mean KL(teacher_T || student_T)): the term and the scale that keeps its gradients
    comparable to cross-entropy's (returned apart, so the weight multiplies T^2 first)."""
    kl = optax.losses.kl_divergence(jax.nn.log_softmax(logits / temperature),
                                    teacher_probabilities)
    return temperature ** 2, kl.mean()


@dataclasses.dataclass
class TeacherSource:
    """A training split whose batches also carry `teacher` logits [classes] per example."""
    base: sources.Source
    logits: np.ndarray            # [N, classes], in the base source's order

    def __post_init__(self):
        self.signal, self.signal_shape = self.base.signal, self.base.signal_shape
        self.extras = {**getattr(self.base, 'extras', {}), 'teacher': self.logits.shape[1:]}

    @classmethod
    def of(cls, base: sources.Source, path: str) -> TeacherSource:
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
