"""One config per row of the QTI report's table (Kim et al., arXiv 2206.13909), CP-ResNet excepted.

Run a row:

    python -m ascjax.train --config=experiments/configs/paper.py:mod8_resnorm --workdir=/tmp/mod8
    python -m ascjax.tasks.complexity --config=experiments/configs/paper.py:mod8_resnorm [--json]

Options follow the row after commas (`paper.py:mod1_resnorm,runlocal`); `OPTIONS` lists them and
an unknown one is an error, so a typo never runs the wrong experiment.

Every row carries the paper's numbers (REFERENCE.md §0, the report's whole table, verified):
accuracy % per device A, B, C, S1..S6 (S4-S6 unseen in training), overall and the std over runs,
on TAU Urban Acoustic Scenes 2020 Mobile, development fold 1. `config.paper` holds them, and the
result tables (ascjax.evaluation, ascjax.sweep) print them under ours. The `_kd` rows distil a
teacher and refuse to train without its logits (a `distill` term in `config.train.losses`).

Normalisation rows (REFERENCE.md §3, unverified reading of the table): Global FreqNorm and FreqIN
normalise the input only; Pre-ResNorm is ResNorm at the input only; ResNorm is applied at the input
and after each of the four stages, with lambda = 0.1.
"""

from typing import NamedTuple

import ml_collections
from ml_collections import config_dict

from ascjax.compress import qat
from ascjax.models.norms import POSITIONS

DEVICES = ('A', 'B', 'C', 'S1', 'S2', 'S3', 'S4', 'S5', 'S6')


class Row(NamedTuple):
    """A row of the paper's table: the model that reproduces it and what the paper reports."""
    model: str                    # models.from_config name
    tau: int                      # width multiplier
    norm: str                     # models.norms name
    positions: tuple[str, ...]    # where `norm` is applied
    method: str                   # the paper's "Method" cell
    params: str | None            # the paper's "#Param" cell (None: "-")
    paper: dict[str, float]       # accuracy % per device and 'overall'; 'std' over runs


def _row(model, tau, norm, positions, method, params, numbers) -> Row:
    """`numbers`: the paper's cells A, B, C, S1..S6, Overall, Std. Dev, in its order."""
    keys = (*DEVICES, 'overall', 'std')
    assert len(numbers) == len(keys), method
    return Row(model, tau, norm, tuple(positions), method, params, dict(zip(keys, numbers)))


_IN = ('input',)
# name: model, tau, norm, positions, the paper's Method and #Param cells, and its numbers
# (REFERENCE.md §0; accuracy %, 'all' is Overall, 'std' its Std. Dev over runs):
#                 A     B     C     S1    S2    S3    S4    S5    S6    all   std
ROWS = {
    'mod1': _row('bcresnet_mod', 1, 'none', (), 'BC-ResNet-Mod-1', '8.1k',
                 (73.1, 61.2, 65.3, 58.2, 57.3, 66.2, 51.5, 51.5, 46.3, 58.9, 0.8)),
    'mod1_globalfreqnorm': _row('bcresnet_mod', 1, 'global_freqnorm', _IN,
                                'BC-ResNet-Mod-1 + Global FreqNorm', '8.1k',
                 (73.9, 60.9, 65.5, 60.2, 57.9, 67.9, 50.2, 54.3, 49.4, 60.0, 0.9)),
    'mod1_freqin': _row('bcresnet_mod', 1, 'freqin', _IN, 'BC-ResNet-Mod-1 + FreqIN', '8.1k',
                 (69.9, 63.5, 60.0, 65.3, 66.7, 67.6, 65.9, 64.9, 62.0, 65.1, 0.6)),
    'mod1_preresnorm': _row('bcresnet_mod', 1, 'resnorm', _IN, 'BC-ResNet-Mod-1 + Pre-ResNorm',
                            '8.1k',
                 (75.1, 68.9, 67.0, 66.0, 63.9, 69.3, 63.4, 66.9, 63.6, 67.1, 0.8)),
    'mod1_resnorm': _row('bcresnet_mod', 1, 'resnorm', POSITIONS, 'BC-ResNet-Mod-1 + ResNorm',
                         '8.1k',
                 (76.4, 65.1, 68.3, 66.0, 62.2, 69.7, 63.0, 63.0, 58.3, 65.8, 0.7)),
    'bcresnet8_ssn4': _row('bcresnet', 8, 'none', (), 'BC-ResNet-8, num SSN group=4', '317k',
                 (77.9, 70.4, 72.4, 69.5, 68.3, 69.8, 66.3, 64.1, 58.6, 68.6, 0.4)),
    'mod8': _row('bcresnet_mod', 8, 'none', (), 'BC-ResNet-Mod-8', '315k',
                 (80.7, 72.8, 74.4, 71.4, 68.7, 71.0, 62.2, 65.3, 59.4, 69.5, 0.3)),
    'mod8_preresnorm': _row('bcresnet_mod', 8, 'resnorm', _IN, 'BC-ResNet-Mod-8 + Pre-ResNorm',
                            '315k',
                 (80.8, 73.7, 73.0, 74.0, 72.9, 77.8, 73.3, 72.1, 71.0, 74.3, 0.3)),
    'mod8_resnorm': _row('bcresnet_mod', 8, 'resnorm', POSITIONS, 'BC-ResNet-Mod-8 + ResNorm',
                         '315k',
                 (81.3, 74.4, 74.2, 75.6, 73.1, 78.6, 73.0, 74.0, 72.7, 75.2, 0.4)),
    'mod8_resnorm_translator': _row('bcresnet_mod', 8, 'resnorm', POSITIONS,
                                    'BC-ResNet-Mod-8 + ResNorm, Device Translator', '315k',
                 (80.5, 74.4, 73.9, 76.0, 73.2, 78.5, 74.1, 74.1, 73.6, 75.4, 0.3)),
    'mod8_resnorm_kd': _row('bcresnet_mod', 8, 'resnorm', POSITIONS,
                            'BC-ResNet-Mod-8 + ResNorm, 300 epoch, KD', '315k',
                 (82.6, 75.6, 74.7, 77.0, 74.2, 78.7, 75.1, 74.8, 73.4, 76.3, 0.8)),
    # KD, then 89% one-shot pruning and 8-bit QAT: the phases are the `prune` and `qat` options.
    'mod8_resnorm_kd_compressed': _row('bcresnet_mod', 8, 'resnorm', POSITIONS,
                                       '+ model compress', None,
                 (82.0, 73.8, 74.3, 76.2, 73.2, 78.8, 73.8, 72.8, 73.3, 75.3, 0.8)),
}

# option -> what it does
OPTIONS = {
    'runlocal': 'a smoke run on a laptop CPU (demo data, batch 16, one epoch)',
    'demo': '`make demo`: demo data, 3-s crops, 64 mel bands, no SpecAugment, 50 epochs',
    'prune': 'phase 2 of mod8_resnorm_kd_compressed: fine-tune with 89% of the kernels pruned',
    'qat': 'phase 3 of mod8_resnorm_kd_compressed: 8-bit QAT fine-tune, pruned zeros kept',
    'freqmixstyle': 'add Freq-MixStyle (p 0.4, alpha 0.3, CPJKU; not in the paper) to the row',
    'translator': 'add the device translator of --config.translator.workdir (required) to a row '
                  'the paper ran without it',
}


def model_config(row: str) -> ml_collections.ConfigDict:
    r = ROWS[row]
    model = ml_collections.ConfigDict({
        'name': r.model, 'tau': r.tau, 'num_classes': 10, 'sub_bands': 4, 'norm': r.norm,
        'norm_positions': r.positions,
        'norm_lambda': 0.1 if r.norm == 'resnorm' else None,   # [U] REFERENCE §3.1
        'dropout': 0.1,                                       # [U] official BC-ResNet value
        'conv_impl': 'auto',
        # Weight initialisation: 'torch' (PyTorch's defaults: conv kernels and biases
        # U(+-1/sqrt(fan_in)), BN scale 1 / bias 0), because the paper's numbers come from
        # PyTorch code; 'flax' is Flax's lecun_normal (sqrt(3) wider) with zero biases.
        'init': 'torch',
        # 'bfloat16' computes convolutions in bf16; parameters, BN/SSN and normalisation
        # statistics, logits and the loss stay float32.
        'dtype': 'float32',
        # What a block keeps for the backward pass (models.bcresnet.REMAT_POLICIES): 'none',
        # 'block' (its input only) or 'dots' (matmul outputs; elementwise passes recomputed).
        # Same numbers; a speed/memory lever (`make bench`, section levers).
        'remat': 'none',
    })
    if r.model == 'bcresnet_mod':
        model.head_stride = (2, 2)      # [U] REFERENCE §2.2
        model.pool = (2, 2)             # [U]
        model.classifier_bn = False     # [U] (+20 params if True)
    return model


def data_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({
        'dataset': 'synthetic',        # or 'tau2020mobile' with manual_dir
        'preset': 'demo',              # synthetic preset: demo | full
        'seed': 0,                     # synthetic generator seed
        'manual_dir': '',              # unpacked TAU 2020 Mobile development set
        'data_dir': '',                # cache; default $ASCJAX_DATA or ~/.cache/ascjax
        'features_on': 'host',         # 'host': cached log-mels; 'device': waveforms, JAX log-mel
        # 'tfds': the cached TFDS dataset; 'wav': the wav files (no TensorFlow; log-mels on the
        # device; with in_memory, computed once). in_memory: the training split held in device
        # memory, batches gathered there in the tf.data pipeline's order, bit for bit the same
        # batches (ascjax.train.feed); None = auto: on a CPU backend when the split fits.
        'store': 'tfds',
        'in_memory': config_dict.placeholder(bool),
        # tf.data's threads for training batches: 0 = auto (1 on a CPU backend with <= 4 cores,
        # where more took CPU from the train step; otherwise tf.data's own pool).
        'host_threads': 0,
        'clip_seconds': 10.0,
        'front_end': {                 # [U] REFERENCE §2.3: 256 x 431 per 10-s clip
            'sample_rate': 44_100, 'n_fft': 2048, 'win_length': 2048, 'hop_length': 1024,
            'n_mels': 256, 'fmin': 0.0, 'fmax': None, 'log_offset': 1e-6,
        },
    })


def train_config() -> ml_collections.ConfigDict:
    """The official BC-ResNet recipe (REFERENCE.md §1.3) where the QTI report is silent; every
    value below is unverified for ASC [U] unless marked."""
    return ml_collections.ConfigDict({
        'num_epochs': 200,             # [V, KWS] official BC-ResNet
        'num_steps': 0,                # overrides num_epochs when > 0
        'batch_size': 100,             # [V, KWS] global batch, split over all devices
        'learning_rate': 0.1,          # [V, KWS] peak, after linear warm-up
        'warmup_epochs': 5.0,          # [V, KWS] then per-step cosine to 0
        'momentum': 0.9,               # [V, KWS]
        'weight_decay': 1e-3,          # [V, KWS] L2 added to the gradient, as torch SGD
        'weight_decay_include': ('.*',),   # torch SGD decays every parameter
        'weight_decay_exclude': (),
        'label_smoothing': 0.0,
        'augment': {
            'mixup_alpha': 0.3,        # [U] cpjku_dcase20
            'freq_masks': 2, 'freq_mask_width': 16,   # [U] SpecAugment-style on 256 mel bins
            'time_masks': 2, 'time_mask_width': 20,   # [V, KWS] width <= 20 frames
            'time_roll': 50,           # [U] frames, random roll of each clip
            # Freq-MixStyle (REFERENCE §3.3, CPJKU's later systems; not in the paper): with this
            # probability per batch, per-frequency statistics mixed between examples. 0 = off.
            'freq_mixstyle': 0.0, 'freq_mixstyle_alpha': 0.3,   # [V] cpjku: p 0.4, alpha 0.3
        },
        # One-shot magnitude pruning (ascjax.compress.prune): at update `at_step`, the `sparsity`
        # fraction of smallest |w| among the parameters matching `include` (and no `exclude`) is
        # zeroed, globally or per tensor, and kept at zero. 0 = off. [U] QTI: 89%, one shot.
        # Loss terms (ascjax.tasks.classifier.LOSSES) and their weights. A KD row: (1-alpha) CE +
        # alpha T^2 KL(teacher_T || student_T), with `distill.teacher_logits` from
        # `python -m ascjax.tasks.teacher_logits`; a row with a `distill` term refuses to start
        # without that file.
        'losses': {'cross_entropy': 1.0, 'distill': 0.0},   # weight 0: the term is off
        'distill': {'teacher_logits': '', 'temperature': 2.0},   # [U] REFERENCE §5.1
        'init_from': '',               # a workdir: start from its variables (fine-tuning)
        'prune': {'sparsity': 0.0, 'at_step': 0, 'scope': 'global',
                  'include': (r'kernel$',), 'exclude': ()},
        'log_every_steps': 50,
        'checkpoint_every_steps': 500,
        'keep_checkpoints': 3,
    })


def paper_config(row: str) -> ml_collections.ConfigDict:
    """The paper's numbers of `row` (REFERENCE.md §0): method, #Param, accuracy % per device,
    'overall' and 'std' over runs; on TAU20 Mobile, so only comparable to runs on that data."""
    r = ROWS[row]
    return ml_collections.ConfigDict({'method': r.method, 'params': r.params, **r.paper})


def _options(arg: str) -> tuple[str, list[str]]:
    """(row, options) of 'row,option,...'; refuses unknown rows and options."""
    row, *options = arg.split(',')
    if row not in ROWS:
        raise ValueError(f'unknown row {row!r}; expected one of {sorted(ROWS)}')
    options = [o for o in options if o]
    if unknown := [o for o in options if o not in OPTIONS]:
        valid = '; '.join(f'{name}: {what}' for name, what in OPTIONS.items())
        raise ValueError(f'{arg!r}: unknown option(s) {unknown}; valid options are {valid}')
    return row, options


def get_config(arg: str = 'mod8_resnorm') -> ml_collections.ConfigDict:
    row, options = _options(arg)
    config = ml_collections.ConfigDict()
    config.row = row
    config.paper = paper_config(row)
    config.model = model_config(row)
    config.data = data_config()
    config.train = train_config()
    if '_kd' in row:                   # [U] alpha = 0.5, REFERENCE §5.1
        config.train.losses = {'cross_entropy': 0.5, 'distill': 0.5}
    if row == 'mod8_resnorm_kd':       # the paper's "300 epoch, KD"
        config.train.num_epochs = 300
    config.eval = ml_collections.ConfigDict({'batch_size': 64})
    config.seed = 0
    config.num_seeds = 1               # K models trained at once; std over seeds
    config.seeds_at_once = 0           # seeds vmapped together; 0: all on GPU/TPU, 1 on CPU
    # Device-translator augmentation (ascjax.augment.translate): with a translator workdir, device-A
    # training examples are replaced, with this probability, by their translation to a random
    # device that the translator was trained on.
    # 8-bit quantisation-aware training (ascjax.compress.qat, qwix): weights per output channel,
    # activations with static ranges.
    config.qat = qat.default_config()
    config.translator = ml_collections.ConfigDict({
        'workdir': '', 'probability': 0.5, 'required': row.endswith('_translator')})
    if 'runlocal' in options:          # a smoke run on a laptop CPU
        config.data.preset = 'demo'
        config.train.batch_size = 16
        config.train.num_epochs = 1
        config.train.warmup_epochs = 0.2
        config.train.log_every_steps = 5
        config.eval.batch_size = 16
    # Phases of mod8_resnorm_kd_compressed (experiments/compress.sh runs them in order), each a
    # fine-tune of the previous phase's workdir (--config.train.init_from) with the teacher's
    # logits: `prune` zeroes 89% of the convolution kernels by global magnitude at its first
    # update [QTI: 89%, one shot]; `qat` keeps those zeros (masks recomputed from them at step 0)
    # and trains 8-bit weights and activations. [U] lr and epochs of both.
    if 'prune' in options or 'qat' in options:
        config.train.prune.update(sparsity=0.89, at_step=0, scope='global')
        config.train.learning_rate = 0.01
        config.train.warmup_epochs = 0.0
        config.train.num_epochs = 20
    if 'qat' in options:
        config.qat.enabled = True
        config.train.learning_rate = 0.002
    if 'freqmixstyle' in options:      # the field's later standard, beside the paper's method
        config.train.augment.freq_mixstyle = 0.4
        config.train.augment.freq_mixstyle_alpha = 0.3
        config.paper = ml_collections.ConfigDict()   # no such row in the paper: no numbers to set
    if 'translator' in options:        # e.g. Mod-1 + ResNorm + translator: no such paper row
        config.translator.required = True
        config.paper = ml_collections.ConfigDict()
    if 'demo' in options:              # `make demo`: minutes on a laptop CPU
        config.data.preset = 'demo'
        config.data.clip_seconds = 3.0             # the first 3 s of each clip: 130 frames
        config.data.front_end.n_mels = 64          # not the paper's 256 bands: 13x less compute
        config.train.augment.freq_masks = 0        # the parity runs' recipe (torch_parity.md):
        config.train.augment.time_masks = 0        # no SpecAugment on 3-s crops
        config.train.batch_size = 32
        config.train.num_epochs = 50               # 1,400 steps of 32 on the 900 demo clips
        config.train.warmup_epochs = 2.0
        config.train.log_every_steps = 100
        config.eval.batch_size = 40
    return config
