"""The optimizer: SGD with momentum (or Adam), L2 weight decay added to the gradient (as torch SGD),
a linear warm-up + cosine schedule, all from optax. Parameter groups come from regex lists
(`path_mask`); a task may wrap the result (the classifier's pruning masks: `loop.Task`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import optax
from flax import traverse_util


def path_mask(params, include: Sequence[str], exclude: Sequence[str] = ()):
    """A boolean tree: True where '/'.join(path) matches an `include` regex and no `exclude` one."""
    flat = traverse_util.flatten_dict(params)
    mask = {k: any(re.search(p, '/'.join(k)) for p in include)
            and not any(re.search(p, '/'.join(k)) for p in exclude) for k in flat}
    return traverse_util.unflatten_dict(mask)


def total_steps(cfg, steps_per_epoch: int) -> int:
    """config.train.num_steps if set, else num_epochs whole epochs."""
    return cfg.get('num_steps') or cfg.num_epochs * steps_per_epoch


def schedule(cfg, steps_per_epoch: int) -> optax.Schedule:
    total = total_steps(cfg, steps_per_epoch)
    if cfg.warmup_epochs * steps_per_epoch < 1:
        return optax.cosine_decay_schedule(cfg.learning_rate, max(total, 1))
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=cfg.learning_rate, warmup_steps=warmup,
        decay_steps=max(total, warmup + 1), end_value=0.0)


def optimizer(cfg, params, steps_per_epoch: int) -> optax.GradientTransformation:
    """`cfg` is config.train. Weight decay is added to the gradient before momentum, as in
    torch.optim.SGD(weight_decay=...), on the parameters its regex lists select."""
    mask = path_mask(params, cfg.weight_decay_include, cfg.weight_decay_exclude)
    name = cfg.get('optimizer', 'sgd')
    if name == 'sgd':
        update = optax.sgd(schedule(cfg, steps_per_epoch), momentum=cfg.momentum, nesterov=False)
    elif name == 'adam':
        update = optax.adam(schedule(cfg, steps_per_epoch))
    else:
        raise ValueError(f'--config.train.optimizer={name!r}: expected sgd or adam')
    return optax.chain(optax.add_decayed_weights(cfg.weight_decay, mask=mask), update)
