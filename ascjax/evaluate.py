"""Evaluates a training workdir's checkpoint and writes results.json, results.md and plots/.

    python -m ascjax.evaluate --workdir=DIR [--split=test] [--step=N]

Intentionally short: the work is in ascjax.train.loop (restore, evaluate) and ascjax.evaluation.
"""

from absl import app, flags

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training workdir (config.json + checkpoints).')
_SPLIT = flags.DEFINE_enum('split', 'test', ['train', 'test'], 'Split to evaluate.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
flags.mark_flag_as_required('workdir')


def main(argv):
    del argv
    import jax
    import numpy as np
    from ascjax import evaluation
    from ascjax.train import loop, step as step_lib
    config, model, state, mesh = loop.restore(_WORKDIR.value, _STEP.value)
    source = loop.source(loop.open_data(config), _SPLIT.value)
    shardings = jax.tree.map(lambda a: a.sharding, state)
    eval_step = step_lib.make_eval_step(model, config, shardings, mesh)
    results = loop.evaluate(state, eval_step, source, config, mesh)
    if jax.process_index() == 0:
        params = int(sum(np.prod(p.shape[1:]) for p in jax.tree.leaves(state.params)))
        evaluation.write(results, _WORKDIR.value, config.get('row', config.model.name), params)
        print(open(f'{_WORKDIR.value}/results.md').read())


if __name__ == '__main__':
    app.run(main)
