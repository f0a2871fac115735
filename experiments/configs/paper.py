"""One config per row of the QTI report's table (Kim et al., arXiv 2206.13909), CP-ResNet excepted.

Run a row:

    python -m ascjax.train --config=experiments/configs/paper.py:mod8_resnorm --workdir=/tmp/mod8
    python -m ascjax.complexity --config=experiments/configs/paper.py:mod8_resnorm [--json]

Append `,runlocal` to a row (e.g. `paper.py:mod1_resnorm,runlocal`) to shrink it for a laptop smoke
run, or `,demo` for the short schedule of `make demo`. Paper numbers are TAU Urban Acoustic Scenes 2020 Mobile, development fold 1, accuracy over all
test clips. Only two are verified (the abstract): the full system 76.3% (315k parameters) and the
compressed system 75.3% (61.0 KB non-zero). The other rows' numbers were in a table we could not
read offline; they are marked "n/a" rather than guessed.

Normalisation rows (REFERENCE.md §3, unverified reading of the table): Global FreqNorm and FreqIN
normalise the input only; Pre-ResNorm is ResNorm at the input only; ResNorm is applied at the input
and after each of the four stages, with lambda = 0.1.
"""

import ml_collections

from ascjax.compress import qat
from ascjax.models.norms import POSITIONS

# row: (model name, tau, norm, norm positions, paper accuracy or None, extras)
ROWS = {
    'mod1': ('bcresnet_mod', 1, 'none', (), None),
    'mod1_globalfreqnorm': ('bcresnet_mod', 1, 'global_freqnorm', ('input',), None),
    'mod1_freqin': ('bcresnet_mod', 1, 'freqin', ('input',), None),
    'mod1_preresnorm': ('bcresnet_mod', 1, 'resnorm', ('input',), None),
    'mod1_resnorm': ('bcresnet_mod', 1, 'resnorm', POSITIONS, None),
    'bcresnet8_ssn4': ('bcresnet', 8, 'none', (), None),
    'mod8': ('bcresnet_mod', 8, 'none', (), None),
    'mod8_preresnorm': ('bcresnet_mod', 8, 'resnorm', ('input',), None),
    'mod8_resnorm': ('bcresnet_mod', 8, 'resnorm', POSITIONS, None),
    'mod8_resnorm_translator': ('bcresnet_mod', 8, 'resnorm', POSITIONS, 76.3),
    'mod8_resnorm_kd': ('bcresnet_mod', 8, 'resnorm', POSITIONS, None),
    'mod8_resnorm_kd_compressed': ('bcresnet_mod', 8, 'resnorm', POSITIONS, 75.3),
}


def model_config(row: str) -> ml_collections.ConfigDict:
    name, tau, norm, positions, _ = ROWS[row]
    model = ml_collections.ConfigDict({
        'name': name, 'tau': tau, 'num_classes': 10, 'sub_bands': 4, 'norm': norm,
        'norm_positions': tuple(positions),
        'norm_lambda': 0.1 if norm == 'resnorm' else None,   # [U] REFERENCE §3.1
        'dropout': 0.1,                                     # [U] official BC-ResNet value
        'conv_impl': 'auto',
        # 'bfloat16' computes convolutions in bf16; parameters, BN/SSN and normalisation
        # statistics, logits and the loss stay float32.
        'dtype': 'float32',
    })
    if name == 'bcresnet_mod':
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
        },
        # One-shot magnitude pruning (ascjax.compress.prune): at update `at_step`, the `sparsity`
        # fraction of smallest |w| among the parameters matching `include` (and no `exclude`) is
        # zeroed, globally or per tensor, and kept at zero. 0 = off. [U] QTI: 89%, one shot.
        # Knowledge distillation: with a teacher_logits file (python -m
        # ascjax.distill.teacher_logits), loss = (1-alpha) CE + alpha T^2 KL(teacher_T||student_T).
        'distill': {'teacher_logits': '', 'alpha': 0.5, 'temperature': 2.0},   # [U] REFERENCE §5.1
        'init_from': '',               # a workdir: start from its variables (fine-tuning)
        'prune': {'sparsity': 0.0, 'at_step': 0, 'scope': 'global',
                  'include': (r'kernel$',), 'exclude': ()},
        'log_every_steps': 50,
        'checkpoint_every_steps': 500,
        'keep_checkpoints': 3,
    })


def get_config(arg: str = 'mod8_resnorm') -> ml_collections.ConfigDict:
    row, *options = arg.split(',')
    if row not in ROWS:
        raise ValueError(f'unknown row {row!r}; expected one of {sorted(ROWS)}')
    config = ml_collections.ConfigDict()
    config.row = row
    config.paper_accuracy = ROWS[row][4]
    config.model = model_config(row)
    config.data = data_config()
    config.train = train_config()
    config.eval = ml_collections.ConfigDict({'batch_size': 64})
    config.seed = 0
    config.num_seeds = 1               # K models trained at once (vmapped); std over seeds
    # Device-translator augmentation (ascjax.translator): with a translator workdir, device-A
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
    if 'demo' in options:              # `make demo`: a short schedule on the demo set
        config.data.preset = 'demo'
        config.train.batch_size = 32
        config.train.num_epochs = 12
        config.train.warmup_epochs = 1.0
        config.train.log_every_steps = 10
    return config
