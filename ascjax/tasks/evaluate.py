"""Evaluates a classifier workdir's checkpoint: results.json, results.md and plots/ for the test
split; results_<split>.json/.md and plots_<split>/ for another split (test results stay as they are).

    python -m ascjax.tasks.evaluate --workdir=DIR [--split=test] [--step=N]

(`ascjax.evaluation` is the metrics and tables library this writes with.)
"""

from __future__ import annotations

import json
import os

from ascjax import evaluation
from ascjax import run as run_lib


def evaluate_workdir(workdir: str, split: str = 'test', step: int | None = None) -> dict:
    """Evaluates `workdir` on `split` and writes its results files (on process 0)."""
    import jax
    run = run_lib.open(workdir, step)
    results = run.evaluate(split)
    if jax.process_index() == 0:
        evaluation.write(results, workdir, run.config.get('row', run.config.model.name),
                         run.num_params, split, run.step)
    return results


def step_results(workdir: str, step: int, split: str = 'test') -> dict:
    """The results of `workdir`'s checkpoint at `step` on `split`, kept in
    results_step{step}.json (computed on the first call; an earlier point of a run, e.g. for a
    convergence check, without touching the run's own results.json)."""
    path = os.path.join(workdir, f'results_step{step}.json')
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    results = {**run_lib.open(workdir, step).evaluate(split), 'step': step}
    with open(path, 'w') as f:
        json.dump(results, f, indent=2)
    return results


def main(argv):
    from ascjax import logs
    logs.quiet()   # orbax/TFDS/JAX INFO lines only with --verbosity=1
    from absl import app, flags
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    evaluate_workdir(flags.FLAGS.workdir, flags.FLAGS.split, flags.FLAGS.step)
    name = evaluation.results_name(flags.FLAGS.split)
    print(open(f'{flags.FLAGS.workdir}/{name}.md').read())


if __name__ == '__main__':
    from absl import app, flags
    flags.DEFINE_string('workdir', None, 'A training workdir (config.json + checkpoints).')
    flags.DEFINE_enum('split', 'test', ['train', 'test'], 'Split to evaluate.')
    flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
    flags.mark_flag_as_required('workdir')
    app.run(main)
