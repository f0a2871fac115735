"""The classifier task: BC-ResNet(-Mod) trained on scene labels, evaluated per device.

    python -m ascjax.train --config=experiments/configs/paper.py:mod1_resnorm --workdir=DIR

A recipe is declared by the config and assembled here from four registries, one mechanism each;
an entry takes part when its config says so (`active`), and adding a loss, augmentation or
initialisation is one entry here plus its config line:

    SOURCE_TRANSFORMS  per-example data added to the training split (teacher logits)
    BATCH_TRANSFORMS   (x, targets) maps inside the jitted step, in order (translator, augment)
    LOSSES             the terms of config.train.losses = {name: weight} (cross_entropy, distill)
    INIT_TRANSFORMS    changes to a fresh state (init_from, Global FreqNorm statistics)
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ascjax import evaluation, features, models
from ascjax import run as run_lib
from ascjax.augment import spec, translate
from ascjax.compress import distill
from ascjax.data import layout, sources
from ascjax.train import loop, progress as progress_lib, state as state_lib, step as step_lib


class Entry(NamedTuple):
    active: Callable[[Any], bool]     # config -> whether this entry is part of the recipe
    build: Callable[..., Any]         # what the entry contributes (see each registry)


# ------------------------------------------------------------------------------------------------
# Source transforms: build(source, config) -> source.

SOURCE_TRANSFORMS = {
    'teacher_logits': Entry(
        lambda c: bool(c.train.distill.teacher_logits),
        lambda source, c: distill.TeacherSource.of(source, c.train.distill.teacher_logits)),
}

# ------------------------------------------------------------------------------------------------
# Batch transforms: build(config) -> fn(keys, x, targets, batch) -> (x, targets), where `targets`
# maps each loss term to its soft target and `keys` are the step's named keys (spec.step_keys).


def _translator(config):
    """Device-A examples replaced by a trained translator's output (config.translator)."""
    tr = run_lib.open(config.translator.workdir)
    if features.from_config(tr.config.data) != features.from_config(config.data):
        raise ValueError(f'--config.translator.workdir={config.translator.workdir}: the '
                         'translator was trained on other features than this run uses')
    with open(os.path.join(config.translator.workdir, 'translator.json')) as f:
        info = json.load(f)
    variables = tr.variables(0)
    apply = lambda x, target, batch: tr.model.apply(variables, x, target, train=False)
    return translation(translate.make_translate(
        apply, [layout.device_id(d) for d in info['devices']], config.translator.probability,
        info['source_device']))


def translation(fn: translate.Translate):
    """A `translate.Translate` as a batch transform (its key: the step's 'translate' key)."""
    return lambda keys, x, targets, batch: (fn(keys['translate'], x, batch), targets)


def _augment(config):
    """Time roll, SpecAugment masks, mixup of the inputs and of every target alike."""
    def fn(keys, x, targets, batch):
        x, *mixed = spec.augment(keys, config.train.augment, x, *targets.values())
        return x, dict(zip(targets, mixed))
    return fn


BATCH_TRANSFORMS = {
    'translator': Entry(lambda c: bool(c.get('translator') and c.translator.workdir), _translator),
    'augment': Entry(lambda c: True, _augment),
}

# ------------------------------------------------------------------------------------------------
# Loss terms: build(config) -> LossTerm; the loss is sum of weight * scale * value over
# config.train.losses (weight * scale multiplied first, as one constant).


class LossTerm(NamedTuple):
    target: Callable[[dict], jax.Array]                        # batch -> soft target [B, classes]
    value: Callable[[jax.Array, jax.Array], tuple[float, jax.Array]]   # logits, target -> (scale, value)


def _cross_entropy(config) -> LossTerm:
    onehot = lambda batch: optax.smooth_labels(
        jax.nn.one_hot(batch['label'], config.model.num_classes), config.train.label_smoothing)
    return LossTerm(onehot, lambda logits, t: (1.0, optax.softmax_cross_entropy(logits, t).mean()))


def _distill(config) -> LossTerm:
    temperature = config.train.distill.temperature
    return LossTerm(lambda batch: distill.soft_targets(batch['teacher'], temperature),
                    lambda logits, t: distill.loss(logits, t, temperature))


LOSSES = {
    'cross_entropy': Entry(lambda c: True, _cross_entropy),
    'distill': Entry(lambda c: True, _distill),
}

# ------------------------------------------------------------------------------------------------
# Init transforms: build(config, source) -> loop.InitTransform.


def variables_from(init_from: str, num_seeds: int, state, shardings):
    """`state` with the params and variable collections of run `init_from`'s last checkpoint (one
    seed is broadcast to all); collections it lacks and the optimizer state stay fresh."""
    source = run_lib.open(init_from).state
    if source.num_seeds not in (1, num_seeds):
        raise ValueError(f'--config.train.init_from={init_from}: it holds {source.num_seeds} '
                         f'seeds, this run {num_seeds}')
    # replicated: every process holds the whole array (addressable_data(0)).
    take = lambda src, dst: jax.device_put(
        np.broadcast_to(np.asarray(src.addressable_data(0)), dst.shape), dst.sharding)

    def copy(name, src, dst):
        if jax.tree.structure(src) != jax.tree.structure(dst):
            raise ValueError(f'--config.train.init_from={init_from}: its {name} do not match '
                             'this model')
        return jax.tree.map(take, src, dst)
    collections = {name: copy(name, source.collections[name], dst) if name in source.collections
                   else dst for name, dst in state.collections.items()}
    return state.replace(params=copy('params', source.params, state.params),
                         collections=collections)


def global_freq_stats(source, batch_size: int):
    """Per-mel-bin mean/std of the training split (Global FreqNorm), over every example once."""
    if source.signal != 'spectrogram':
        raise ValueError('global_freqnorm needs cached log-mels: use --config.data.features_on=host')

    def spectra():
        for batch in sources.ordered_batches(source, batch_size):
            yield batch['spectrogram'][batch['mask'] > 0]
    return models.global_freq_stats(spectra())


def with_global_freq_stats(source, batch_size: int, state, shardings):
    """`state` with every seed's Global FreqNorm statistics computed from `source`."""
    stats = global_freq_stats(source, batch_size)
    seeds = lambda a: np.broadcast_to(a, (state.num_seeds, *np.shape(a)))
    variables = models.with_global_freq_stats(state.collections, *map(seeds, stats))
    name = models.norms.STATS_COLLECTION
    return state.replace(collections={**state.collections, name: jax.device_put(
        variables[name], shardings.collections[name])})


INIT_TRANSFORMS = {
    'init_from': Entry(lambda c: bool(c.train.init_from),
                       lambda c, source: functools.partial(variables_from, c.train.init_from,
                                                           c.num_seeds)),
    'global_freq_stats': Entry(
        lambda c: c.model.norm == 'global_freqnorm' and not c.train.init_from,
        lambda c, source: functools.partial(with_global_freq_stats, source, c.eval.batch_size)),
}

# ------------------------------------------------------------------------------------------------


def recipe(registry: dict[str, Entry], config) -> list[str]:
    """The names of `registry`'s entries that `config` activates, in registry order."""
    return [name for name, entry in registry.items() if entry.active(config)]


def loss_weights(config) -> dict[str, float]:
    """The terms of config.train.losses with a non-zero weight, in the config's order."""
    weights = dict(config.train.losses)
    if unknown := set(weights) - set(LOSSES):
        raise ValueError(f'config.train.losses: unknown term(s) {sorted(unknown)}; '
                         f'choose from {sorted(LOSSES)}')
    return {name: w for name, w in weights.items() if w != 0}


def make_update(model, config, batch_transforms, terms: dict[str, tuple[float, LossTerm]]):
    """tx -> one seed's update: batch transforms -> weighted loss terms -> optimizer step."""
    def update(tx):
        def per_seed(params, collections, opt_state, train_key, step, batch):
            keys = spec.step_keys(train_key, step)
            x = batch['spectrogram']
            targets = {name: term.target(batch) for name, (_, term) in terms.items()}
            for transform in batch_transforms:
                x, targets = transform(keys, x, targets, batch)

            def loss_fn(p):
                logits, updates = model.apply({'params': p, **collections}, x, train=True,
                                              mutable=list(collections),
                                              rngs={'dropout': keys['dropout']})
                logits = logits.astype(jnp.float32)
                loss = None
                for name, (weight, term) in terms.items():
                    scale, value = term.value(logits, targets[name])
                    loss = (weight * scale) * value if loss is None else (
                        loss + (weight * scale) * value)
                return loss, (logits, updates)

            (loss, (logits, collections)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            metrics = {'loss': loss, 'grad_norm': optax.global_norm(grads),
                       'accuracy': jnp.mean(jnp.argmax(logits, -1) == batch['label'])}
            return params, collections, opt_state, metrics
        return per_seed
    return update


def check_inputs(config) -> None:
    """Refuses a row whose recipe needs a file the config does not name."""
    if config.get('translator') and config.translator.required and not config.translator.workdir:
        raise ValueError(f'row {config.row} trains with translated examples: pass '
                         '--config.translator.workdir=DIR of `python -m ascjax.tasks.translator`')
    if 'distill' in loss_weights(config) and not config.train.distill.teacher_logits:
        raise ValueError(f'row {config.get("row", config.model.name)} distils a teacher: pass '
                         '--config.train.distill.teacher_logits=FILE.npz, made from a trained '
                         'teacher (e.g. row mod8_resnorm) by `python -m '
                         'ascjax.tasks.teacher_logits --workdir=TEACHER_WORKDIR '
                         '[--workdir=...] --out=FILE.npz`')
    if config.train.distill.teacher_logits and 'distill' not in loss_weights(config):
        raise ValueError('--config.train.distill.teacher_logits is set but '
                         'config.train.losses.distill is 0, so the teacher would be ignored: add '
                         '--config.train.losses.distill=ALPHA '
                         '--config.train.losses.cross_entropy=1-ALPHA (the _kd rows use 0.5)')


def recipe_update(model, config, batch_transforms=None):
    """tx -> one seed's update with `config`'s loss terms and batch transforms (or the given
    ones)."""
    if batch_transforms is None:
        batch_transforms = [BATCH_TRANSFORMS[n].build(config)
                            for n in recipe(BATCH_TRANSFORMS, config)]
    terms = {name: (weight, LOSSES[name].build(config))
             for name, weight in loss_weights(config).items()}
    return make_update(model, config, batch_transforms, terms)


def make_train_step(model, tx, config, schedule, state_shardings, mesh, batch_transforms=None):
    """The classifier's jitted train step (state, batch -> state, metrics) outside the loop, for
    tests and benchmarks."""
    return step_lib.make_step(recipe_update(model, config, batch_transforms)(tx),
                              state_shardings, mesh, schedule,
                              step_lib.with_spectrogram(features.from_config(config.data)),
                              config.get('seeds_at_once', 0))


def describe(config, builder, model) -> None:
    """The first lines of a run: the dataset and its split sizes, the model and its cost."""
    from ascjax.tasks import complexity
    d = config.data
    where = (f'preset {d.preset}, seed {d.get("seed", 0)}' if d.dataset == 'synthetic'
             else d.manual_dir)
    sizes = ', '.join(f'{split} {len(run_lib.source(builder, split))} clips'
                      for split in ('train', 'test'))
    logging.info('dataset %s (%s; %.3g-s clips): %s', d.dataset, where, d.clip_seconds, sizes)
    shape = features.input_shape(d)
    macs = sum(layer['macs'] for layer in complexity.layer_macs(model, (1, *shape)))
    params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(
        state_lib.param_shapes(model, shape)))
    logging.info('model %s (%s, norm %s): %d parameters, %.2f M MACs per clip of %s',
                 config.get('row', config.model.name), config.model.name,
                 config.model.get('norm'), params, macs / 1e6, shape)


def task(config, builder) -> loop.Task:
    """The classifier's `loop.Task` for `config`, training on `builder`'s train split."""
    check_inputs(config)
    source = run_lib.source(builder, 'train')
    for name in recipe(SOURCE_TRANSFORMS, config):
        source = SOURCE_TRANSFORMS[name].build(source, config)
    init = [INIT_TRANSFORMS[n].build(config, source) for n in recipe(INIT_TRANSFORMS, config)]
    model, inputs = run_lib.build_model(config)
    describe(config, builder, model)
    logging.info('recipe: source %s, batch %s, losses %s, init %s',
                 recipe(SOURCE_TRANSFORMS, config), recipe(BATCH_TRANSFORMS, config),
                 loss_weights(config), recipe(INIT_TRANSFORMS, config))
    return loop.Task(config.get('row', config.model.name), model, source,
                     recipe_update(model, config), init, inputs, run_lib.optimizer_wrap(config),
                     step_lib.with_spectrogram(features.from_config(config.data)))


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains config's classifier (config.num_seeds seeds at once) and evaluates it on the test
    split. Returns the results dict also written to workdir/results.json."""
    check_inputs(config)     # before the data are built: a refusal comes at once
    builder = run_lib.open_data(config)
    classifier = task(config, builder)
    trained = loop.train(classifier, config, workdir)
    eval_step = run_lib.classifier_eval_step(classifier.model, config, trained.shardings,
                                             trained.mesh)
    results = run_lib.evaluate(trained.state, eval_step, run_lib.source(builder, 'test'), config,
                               trained.mesh)
    if jax.process_index() == 0:
        evaluation.write(results, workdir, config.get('row', config.model.name),
                         state_lib.param_count(trained.state.params), 'test',
                         trained.total_steps)
        progress_lib.scalars(trained.progress, trained.total_steps,
                             {f'test/accuracy/{d}': a for d, a in results['accuracy'].items()})
    return results
