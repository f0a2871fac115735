"""The PyTorch reference trainer: the recipe of `ascjax.train`, written the PyTorch way.

    from ascjax.torch_reference import train
    results = train.train_and_evaluate(config, workdir)     # same config as python -m ascjax.train

Same data as ascjax (the TFDS feature cache and the pipeline's stateless order for config.seed),
same recipe: `torch.optim.SGD` with momentum and L2 weight decay added to the gradient, a
per-step `LambdaLR` of linear warm-up then cosine to 0, time roll, SpecAugment masks and mixup
(one weight per example, or per batch), channel dropout, label smoothing, cross-entropy on soft
targets; torch's default initialisation and BatchNorm2d; evaluation through `ascjax.evaluation`.

Random draws come from a `Draws` callable `(step, cfg, shape) -> dict`: by default this
framework's own (NumPy, seeded by (seed, step)); the step-parity test passes ascjax's draws
instead (`ascjax.augment.spec.draws`), so that both frameworks augment one batch identically.
`start='ascjax'` trains from ascjax's start for config.seed: its initial weights (converted) and
its augmentation draws at every step (`ascjax_draws`); only the dropout masks stay torch's. That
takes the random generators out of a comparison of the two frameworks' training.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ascjax import evaluation
from ascjax.data import pipeline
from ascjax.torch_reference import model as ref_model
from ascjax.train import optim

Draws = Callable[[int, object, tuple], dict]


def lr_factor(cfg, steps_per_epoch: int) -> Callable[[int], float]:
    """LambdaLR's factor at update `step`: linear warm-up from 0 over warmup_epochs, then cosine
    to 0 at the last step (no warm-up when it is shorter than one step)."""
    total = optim.total_steps(cfg, steps_per_epoch)
    warmup = 0 if cfg.warmup_epochs * steps_per_epoch < 1 else min(
        int(cfg.warmup_epochs * steps_per_epoch), total)
    decay = max(total, warmup + 1) - warmup if warmup else max(total, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        done = min(step - warmup, decay)
        return 0.5 * (1.0 + math.cos(math.pi * done / decay))
    return factor


def optimizer(model: torch.nn.Module, cfg, steps_per_epoch: int):
    """(SGD with L2 weight decay on every parameter, its per-step scheduler)."""
    if tuple(cfg.weight_decay_include) != ('.*',) or tuple(cfg.weight_decay_exclude):
        raise ValueError('the PyTorch reference decays every parameter: '
                         'train.weight_decay_include must be (".*",) and _exclude empty')
    if cfg.get('optimizer', 'sgd') != 'sgd':
        raise ValueError('the PyTorch reference trains with SGD only')
    opt = torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg, steps_per_epoch))


def numpy_draws(seed: int) -> Draws:
    """This framework's own augmentation draws, a pure function of (seed, step)."""
    def draws(step: int, cfg, shape: tuple) -> dict:
        rng = np.random.default_rng([seed, step])
        batch, out = shape[0], {}
        if cfg.get('freq_mixstyle', 0.0) > 0 and cfg.get('freq_mixstyle_alpha', 0.0) > 0:
            out['freq_mixstyle'] = (rng.random() < cfg.freq_mixstyle,
                                    rng.beta(cfg.freq_mixstyle_alpha, cfg.freq_mixstyle_alpha,
                                             batch), rng.permutation(batch))
        if cfg.time_roll > 0:
            out['time_roll'] = rng.integers(-cfg.time_roll, cfg.time_roll + 1, batch)
        for name, axis, num, width in (('freq_mask', 1, cfg.freq_masks, cfg.freq_mask_width),
                                       ('time_mask', 2, cfg.time_masks, cfg.time_mask_width)):
            if num > 0 and width > 0:
                widths = rng.integers(0, width + 1, (batch, num))
                starts = np.floor(rng.random((batch, num)) * (shape[axis] - widths + 1))
                out[name] = (widths, starts.astype(np.int64))
        if cfg.mixup_alpha > 0:
            per = cfg.get('mixup_per', 'example')
            lam = rng.beta(cfg.mixup_alpha, cfg.mixup_alpha, batch if per == 'example' else 1)
            out['mixup'] = (np.broadcast_to(np.maximum(lam, 1 - lam), (batch,)),
                            rng.permutation(batch))
        return out
    return draws


def ascjax_draws(seed: int) -> Draws:
    """ascjax's augmentation draws for `seed`, as its train step makes them: the step keys of
    the seed's train key (`state.seed_keys`, folded as in `state.create`)."""
    import jax
    from ascjax.augment import spec
    from ascjax.train import state as state_lib
    train_key = jax.random.fold_in(state_lib.seed_keys(seed, 1)[0], 1)

    def draws(step: int, cfg, shape: tuple) -> dict:
        return jax.device_get(spec.draws(spec.step_keys(train_key, step), cfg, shape))
    return draws


# The model fields that decide the variables' shapes (what the converter's plan needs).
_SHAPE_FIELDS = ('tau', 'num_classes', 'sub_bands', 'norm', 'norm_positions', 'norm_lambda',
                 'classifier_bn')


def converter_fields(model_config) -> dict:
    """The fields of config.model that `convert.torch_to_flax` / `flax_to_torch` take."""
    return {k: (tuple(v) if isinstance(v, list) else v)
            for k, v in dict(model_config).items() if k in _SHAPE_FIELDS}


def load_ascjax_init(model: torch.nn.Module, config) -> None:
    """Loads ascjax's initial variables for config.seed (those `ascjax.train` starts from) into
    the torch model, through the converter."""
    from ascjax import features, run as run_lib
    from ascjax.models import convert
    from ascjax.train import mesh as mesh_lib, state as state_lib
    import optax
    flax_model, inputs = run_lib.build_model(config)
    state = state_lib.create(flax_model, optax.identity(), features.input_shape(config.data),
                             config.seed, 1, mesh_lib.data_mesh(), inputs)
    tensors = convert.flax_to_torch(state_lib.seed_slice(state, 0), config.model.name,
                                    **converter_fields(config.model))
    missing, unexpected = model.load_state_dict(
        {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}, strict=False)
    missing = [k for k in missing if not k.endswith('num_batches_tracked')]
    if missing or unexpected:
        raise RuntimeError(f'ascjax init does not fit the torch model: missing {missing}, '
                           f'unexpected {unexpected}')


def _time_roll(x: torch.Tensor, shifts) -> torch.Tensor:
    """Rolls example b of NCHW along time (dim 3) by shifts[b], as torch.roll does."""
    t = x.shape[3]
    shifts = torch.as_tensor(np.asarray(shifts), dtype=torch.long)
    source = (torch.arange(t)[None, :] - shifts[:, None]) % t            # [B, T]
    return torch.gather(x, 3, source[:, None, None, :].expand_as(x))


def _band_mask(x: torch.Tensor, dim: int, widths, starts) -> torch.Tensor:
    """Zeroes, per example, the bands [start, start + width) along `dim` (2 = freq, 3 = time)."""
    widths = torch.as_tensor(np.asarray(widths), dtype=torch.long)
    starts = torch.as_tensor(np.asarray(starts), dtype=torch.long)
    pos = torch.arange(x.shape[dim])[None, None, :]
    masked = ((pos >= starts[..., None]) & (pos < (starts + widths)[..., None])).any(dim=1)
    shape = [x.shape[0], 1, 1, 1]
    shape[dim] = x.shape[dim]
    return x.masked_fill(masked.reshape(shape), 0.0)


def _freq_mixstyle(x: torch.Tensor, apply, lam, perm, eps: float = 1e-6) -> torch.Tensor:
    """Freq-MixStyle of NCHW: per-frequency mean/std over (C, T), detached, mixed with a partner's."""
    if not bool(apply):
        return x
    mu = x.mean(dim=(1, 3), keepdim=True).detach()
    sig = (x.var(dim=(1, 3), keepdim=True, unbiased=False) + eps).sqrt().detach()
    w = torch.as_tensor(np.array(lam, np.float32))[:, None, None, None]
    perm = torch.as_tensor(np.asarray(perm), dtype=torch.long)
    return (x - mu) / sig * (w * sig + (1 - w) * sig[perm]) + w * mu + (1 - w) * mu[perm]


def augment(x: torch.Tensor, targets: torch.Tensor, draws: dict):
    """Freq-MixStyle, time roll, frequency masks, time masks, mixup of inputs and targets, in
    ascjax's order."""
    if 'freq_mixstyle' in draws:
        x = _freq_mixstyle(x, *draws['freq_mixstyle'])
    if 'time_roll' in draws:
        x = _time_roll(x, draws['time_roll'])
    if 'freq_mask' in draws:
        x = _band_mask(x, 2, *draws['freq_mask'])
    if 'time_mask' in draws:
        x = _band_mask(x, 3, *draws['time_mask'])
    if 'mixup' in draws:
        lam, perm = draws['mixup']
        lam = torch.as_tensor(np.asarray(lam, np.float32))
        perm = torch.as_tensor(np.asarray(perm), dtype=torch.long)
        x = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm]
        targets = lam[:, None] * targets + (1 - lam[:, None]) * targets[perm]
    return x, targets


def to_nchw(spectrogram: np.ndarray) -> torch.Tensor:
    """[B, F, T, 1] log-mels of the pipeline as a channels_last NCHW tensor."""
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(spectrogram, np.float32)))
    return x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def train_step(model, opt, scheduler, batch: dict, cfg, num_classes: int, draws: dict) -> float:
    """One SGD update on `batch` (numpy, from the pipeline); returns the loss.

    Runs in the model's dtype (float32 for training; the parity test runs a float64 copy).
    """
    model.train()
    dtype = next(model.parameters()).dtype
    x = to_nchw(batch['spectrogram']).to(dtype)
    labels = torch.as_tensor(np.asarray(batch['label']), dtype=torch.long)
    eps = cfg.label_smoothing
    targets = F.one_hot(labels, num_classes).to(dtype) * (1 - eps) + eps / num_classes
    x, targets = augment(x, targets, draws)
    loss = F.cross_entropy(model(x), targets)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    scheduler.step()
    return float(loss.detach())


@torch.no_grad()
def predict(model, source, batch_size: int) -> dict[str, np.ndarray]:
    """Eval-mode logits [N, classes] of every example of `source`, in order, with metadata."""
    model.eval()
    out = {'logits': [], 'label': [], 'device': [], 'index': []}
    for batch in pipeline.eval_batches(source, global_batch_size=batch_size).as_numpy_iterator():
        keep = batch['mask'] > 0
        out['logits'].append(model(to_nchw(batch['spectrogram'])).numpy()[keep])
        for key in ('label', 'device', 'index'):
            out[key].append(batch[key][keep])
    return {k: np.concatenate(v) for k, v in out.items()}


def evaluate(model, source, batch_size: int) -> dict:
    p = predict(model, source, batch_size)
    if sorted(p['index'].tolist()) != list(range(len(source))):
        raise RuntimeError('evaluation did not visit every test example exactly once')
    return evaluation.results(p['logits'][None], p['label'], p['device'])


def _check_recipe(config) -> None:
    if config.num_seeds != 1:
        raise ValueError('the PyTorch reference trains one seed per run: --config.num_seeds=1')
    unsupported = {
        'train.distill.teacher_logits': config.train.get('distill', {}).get('teacher_logits'),
        'train.prune.sparsity': config.train.get('prune', {}).get('sparsity'),
        'train.init_from': config.train.get('init_from'),
        'translator.workdir': config.get('translator', {}).get('workdir'),
        'qat.enabled': config.get('qat', {}).get('enabled'),
    }
    used = [k for k, v in unsupported.items() if v]
    if used:
        raise ValueError(f'the PyTorch reference trains the plain recipe only; unset {used}')
    if config.data.get('features_on', 'host') != 'host':
        raise ValueError('the PyTorch reference reads cached log-mels: data.features_on=host')


def build(config, train_source) -> torch.nn.Module:
    """The torch model of config.model, seeded by config.seed, Global FreqNorm filled."""
    torch.manual_seed(config.seed)
    model = ref_model.from_config(config.model)
    if config.model.norm == 'global_freqnorm':
        from ascjax.tasks import classifier
        model.set_global_freq_stats(*classifier.global_freq_stats(train_source,
                                                                   config.eval.batch_size))
    return model.to(memory_format=torch.channels_last)


def fit(model, config, train_source, *, draws: Draws | None = None, on_step=None) -> list[float]:
    """Trains `model` over the pipeline's batches for config.seed; returns the losses.

    `on_step(step, model)` runs after every update (intermediate evaluations).
    """
    cfg = config.train
    steps_per_epoch = len(train_source) // cfg.batch_size
    total = optim.total_steps(cfg, steps_per_epoch)
    opt, scheduler = optimizer(model, cfg, steps_per_epoch)
    draws = draws or numpy_draws(config.seed)
    batches = pipeline.train_batches(train_source, global_batch_size=cfg.batch_size,
                                     seed=config.seed, num_steps=total)
    losses, start = [], time.time()
    for step, batch in enumerate(batches.as_numpy_iterator()):
        shape = batch['spectrogram'].shape
        losses.append(train_step(model, opt, scheduler, batch, cfg, config.model.num_classes,
                                 draws(step, cfg.augment, shape)))
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f'torch reference: non-finite loss at step {step}')
        if (step + 1) % cfg.log_every_steps == 0 or step + 1 == total:
            rate = (step + 1) / (time.time() - start)
            logging.info('torch step %d/%d  loss %.4f  %.2f steps/s', step + 1, total,
                         np.mean(losses[-cfg.log_every_steps:]), rate)
        if on_step is not None:
            on_step(step + 1, model)
    return losses


STARTS = ('torch', 'ascjax')


def train_and_evaluate(config, workdir: str, *, eval_steps: tuple[int, ...] = (),
                       start: str = 'torch') -> dict:
    """Trains config's model in PyTorch and evaluates it on the test split, like
    `ascjax.tasks.classifier.train_and_evaluate`: workdir gets results.json/.md, train_losses.json and
    model.pt; `eval_steps` adds results_step{N}.json at those (intermediate) steps.

    `start`: 'torch' (torch's own initialisation and draws) or 'ascjax' (ascjax's initial weights
    and augmentation draws for config.seed; dropout stays torch's)."""
    if start not in STARTS:
        raise ValueError(f'start must be one of {STARTS}, got {start!r}')
    from ascjax import run as run_lib   # the same dataset and feature cache as ascjax's runs
    from ascjax.train import checkpoint
    _check_recipe(config)
    checkpoint.write_run_info(workdir, config)
    builder = run_lib.open_data(config)
    train_source, test_source = run_lib.source(builder, 'train'), run_lib.source(builder, 'test')
    model = build(config, train_source)
    draws = None
    if start == 'ascjax':
        load_ascjax_init(model, config)
        draws = ascjax_draws(config.seed)
    method = f"{config.get('row', config.model.name)} (torch{', ascjax start' * (start == 'ascjax')})"

    def on_step(step, model):
        if step in eval_steps:
            r = evaluate(model, test_source, config.eval.batch_size)
            with open(os.path.join(workdir, f'results_step{step}.json'), 'w') as f:
                json.dump({**r, 'step': step}, f, indent=2)

    losses = fit(model, config, train_source, draws=draws, on_step=on_step)
    results = evaluate(model, test_source, config.eval.batch_size)
    params = sum(p.numel() for p in model.parameters())
    evaluation.write(results, workdir, method, params, 'test', len(losses))
    with open(os.path.join(workdir, 'train_losses.json'), 'w') as f:
        json.dump(losses, f)
    torch.save(model.state_dict(), os.path.join(workdir, 'model.pt'))
    return results
