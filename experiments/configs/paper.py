"""One config per row of the QTI report's table (Kim et al., arXiv 2206.13909), CP-ResNet excepted.

Run a row:

    python -m ascjax.train --config=experiments/configs/paper.py:mod8_resnorm --workdir=/tmp/mod8
    python -m ascjax.complexity --config=experiments/configs/paper.py:mod8_resnorm [--json]

Append `,runlocal` to a row (e.g. `paper.py:mod1_resnorm,runlocal`) to shrink it for a laptop smoke
run. Paper numbers are TAU Urban Acoustic Scenes 2020 Mobile, development fold 1, accuracy over all
test clips. Only two are verified (the abstract): the full system 76.3% (315k parameters) and the
compressed system 75.3% (61.0 KB non-zero). The other rows' numbers were in a table we could not
read offline; they are marked "n/a" rather than guessed.

Normalisation rows (REFERENCE.md §3, unverified reading of the table): Global FreqNorm and FreqIN
normalise the input only; Pre-ResNorm is ResNorm at the input only; ResNorm is applied at the input
and after each of the four stages, with lambda = 0.1.
"""

import ml_collections

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
        'manual_dir': None,            # unpacked TAU 2020 Mobile development set
        'data_dir': None,              # cache; default $ASCJAX_DATA or ~/.cache/ascjax
        'clip_seconds': 10.0,
        'front_end': {                 # [U] REFERENCE §2.3: 256 x 431 per 10-s clip
            'sample_rate': 44_100, 'n_fft': 2048, 'win_length': 2048, 'hop_length': 1024,
            'n_mels': 256, 'fmin': 0.0, 'fmax': None, 'log_offset': 1e-6,
        },
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
    if 'runlocal' in options:
        config.data.preset = 'demo'
    return config
