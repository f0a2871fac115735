"""PyTorch BC-ResNet and BC-ResNet-Mod, with the official state_dict keys: the reference that the
parity tests and the PyTorch trainer (`train.py`) run.

Written after the official code (Qualcomm-AI-research/bcresnet, REFERENCE §1):
the module and attribute names (cnn_head, BCBlocks, f2, f1, block, ssnorm, classifier) and their
order reproduce its key scheme exactly. Differences from the official code, all opt-in fields:
the SubSpectralNorm band count (hard-coded 5 there; 4 for 256-bin ASC input), the
BC-ResNet-Mod layout (REFERENCE §2.2) and ResNorm at the input and after each stage (§3).
Layout NCHW = (N, C, F, T).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORM_POSITIONS = ('input', 'stage1', 'stage2', 'stage3', 'stage4')


class SubSpectralNorm(nn.Module):
    """BatchNorm2d(C * S) over the frequency axis cut into S contiguous bands: channel c, band s
    is BN channel c * S + s."""

    def __init__(self, channels: int, sub_bands: int):
        super().__init__()
        self.sub_bands = sub_bands
        self.ssnorm = nn.BatchNorm2d(channels * sub_bands)

    def forward(self, x):
        n, c, f, t = x.shape
        assert f % self.sub_bands == 0, (f, self.sub_bands)
        x = self.ssnorm(x.reshape(n, c * self.sub_bands, f // self.sub_bands, t))
        return x.reshape(n, c, f, t)


class ConvNormAct(nn.Module):
    """Conv (no bias, "same" padding, dilation only along axes with kernel > 1) -> BN or SSN ->
    SiLU or ReLU or nothing; everything sits in ``self.block`` like the official ConvBNReLU."""

    def __init__(self, in_ch, out_ch, kernel, stride=(1, 1), groups=1, dilation=1,
                 sub_bands=None, act='relu'):
        super().__init__()
        rates = tuple(dilation if k > 1 else 1 for k in kernel)
        padding = tuple(r * (k - 1) // 2 for r, k in zip(rates, kernel))
        layers = [nn.Conv2d(in_ch, out_ch, kernel, stride, padding, rates, groups, bias=False),
                  SubSpectralNorm(out_ch, sub_bands) if sub_bands else nn.BatchNorm2d(out_ch)]
        if act == 'silu':
            layers.append(nn.SiLU())
        elif act == 'relu':
            layers.append(nn.ReLU())
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return self.block(x)


class BCResBlock(nn.Module):
    def __init__(self, in_ch, out_ch, freq_stride=1, dilation=1, sub_bands=5, dropout=0.1):
        super().__init__()
        self.transition = in_ch != out_ch
        f2 = []
        if self.transition:
            f2.append(ConvNormAct(in_ch, out_ch, (1, 1)))
        f2.append(ConvNormAct(out_ch, out_ch, (3, 1), (freq_stride, 1), groups=out_ch,
                              sub_bands=sub_bands, act=None))
        self.f2 = nn.Sequential(*f2)
        self.f1 = nn.Sequential(
            ConvNormAct(out_ch, out_ch, (1, 3), groups=out_ch, dilation=dilation, act='silu'),
            nn.Conv2d(out_ch, out_ch, 1, bias=False),
            nn.Dropout2d(dropout))

    def forward(self, x):
        aux_2d = self.f2(x)
        y = self.f1(aux_2d.mean(dim=2, keepdim=True)) + aux_2d
        if not self.transition:
            y = y + x
        return F.relu(y)


def bc_stage(in_ch, out_ch, blocks, freq_stride, dilation, sub_bands, dropout=0.1):
    widths = [in_ch] + [out_ch] * blocks
    return nn.ModuleList(
        BCResBlock(widths[j], widths[j + 1], freq_stride if j == 0 else 1, dilation, sub_bands,
                   dropout)
        for j in range(blocks))


def _standardise(x, dims, eps):
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps)


def freq_in(x, eps: float = 1e-5):
    """FreqIN: per (n, f) over (c, t), biased variance, no affine."""
    return _standardise(x, (1, 3), eps)


def res_norm(x, lam: float, eps: float = 1e-5):
    """ResNorm = lam * x + FreqIN(x)."""
    return lam * x + freq_in(x, eps)


def relaxed_freq_norm(x, lam: float, eps: float = 1e-5):
    """RFN = lam * LN(x) + (1 - lam) * FreqIN(x), LN per n over (c, f, t)."""
    return lam * _standardise(x, (1, 2, 3), eps) + (1 - lam) * freq_in(x, eps)


NORMS = ('none', 'global_freqnorm', 'freqin', 'resnorm', 'rfn')
DEFAULT_LAMBDA = {'resnorm': 0.1, 'rfn': 0.5}


class _Body(nn.Module):
    """Shared forward: [ResNorm] head, stages each followed by [ResNorm] and [max-pool], classifier.

    ``pool_routes`` ({stage index: flat window indices, MaxPool2d's ``return_indices`` format})
    makes each max-pool window take its value, and send its gradient, at the given index instead
    of its own argmax. Where two values of a window tie within float32 rounding, torch and JAX may
    pick different ones; the gradient tests route torch like JAX there, so that max-pool's
    discontinuous gradient is compared at the same choice.
    """
    pooled_stages: tuple[int, ...] = ()
    pool_routes: dict | None = None

    def _init_norm(self, norm, positions, lam):
        if norm not in NORMS:
            raise ValueError(f'norm must be one of {NORMS}, got {norm!r}')
        self.norm, self.norm_positions = norm, tuple(positions) if norm != 'none' else ()
        self.norm_lambda = DEFAULT_LAMBDA.get(norm) if lam is None else lam
        # Global FreqNorm's per-bin statistics of the training set (set_global_freq_stats); not
        # part of the state_dict, as in ascjax they live outside the learned variables.
        self.register_buffer('input_mean', torch.zeros(()), persistent=False)
        self.register_buffer('input_std', torch.ones(()), persistent=False)

    def set_global_freq_stats(self, mean, std):
        self.input_mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, 1, -1, 1)
        self.input_std = torch.as_tensor(std, dtype=torch.float32).reshape(1, 1, -1, 1)

    def _norm(self, x, position):
        if position not in self.norm_positions:
            return x
        if self.norm == 'global_freqnorm':
            return (x - self.input_mean) / self.input_std
        if self.norm == 'freqin':
            return freq_in(x)
        if self.norm == 'resnorm':
            return res_norm(x, self.norm_lambda)
        return relaxed_freq_norm(x, self.norm_lambda)

    def forward(self, x):
        x = self.cnn_head(self._norm(x, 'input'))
        for idx, stage in enumerate(self.BCBlocks):
            for block in stage:
                x = block(x)
            x = self._norm(x, f'stage{idx + 1}')
            if idx in self.pooled_stages:
                x = self._pool(x, idx)
        return self.classifier(x).reshape(x.shape[0], -1)

    def _pool(self, x, idx):
        if self.pool_routes is None:
            return self.pool(x)
        routes = self.pool_routes[idx]
        return x.flatten(2).gather(2, routes.flatten(2)).view(routes.shape)


class BCResNets(_Body):
    """Official BC-ResNet(base_c): stages 2/2/4/4, frequency stride in stages 1 and 2 (from 0),
    time dilation 2**stage, depthwise 5x5 + 1x1 + BN + ReLU + pool + 1x1 classifier with bias."""

    def __init__(self, base_c, num_classes=12, sub_bands=5, norm_positions=(), norm_lambda=0.1,
                 norm='resnorm', dropout=0.1):
        super().__init__()
        c = [2 * base_c, base_c, int(base_c * 1.5), 2 * base_c, int(base_c * 2.5), 4 * base_c]
        self._init_norm(norm, norm_positions, norm_lambda)
        self.cnn_head = nn.Sequential(nn.Conv2d(1, c[0], 5, (2, 1), 2, bias=False),
                                      nn.BatchNorm2d(c[0]), nn.ReLU())
        self.BCBlocks = nn.ModuleList(
            bc_stage(c[i], c[i + 1], n, 2 if i in (1, 2) else 1, 2 ** i, sub_bands, dropout)
            for i, n in enumerate((2, 2, 4, 4)))
        self.classifier = nn.Sequential(
            nn.Conv2d(c[4], c[4], 5, padding=(0, 2), groups=c[4], bias=False),
            nn.Conv2d(c[4], c[5], 1, bias=False), nn.BatchNorm2d(c[5]), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(c[5], num_classes, 1))


class BCResNetMod(_Body):
    """BC-ResNet-Mod (REFERENCE §2.2): b = 10 tau, head 5x5 stride (2, 2), stages 2/2/2/3 blocks of
    b/1.5b/2b/2.5b without dilation, max-pool 2 after stages 1 and 2, 1x1 classifier with bias
    [+ BN], global average pool."""
    pooled_stages = (0, 1)

    def __init__(self, base_c, num_classes=10, sub_bands=4, classifier_bn=False,
                 norm_positions=(), norm_lambda=0.1, norm='resnorm', dropout=0.1):
        super().__init__()
        c = [2 * base_c, base_c, int(base_c * 1.5), 2 * base_c, int(base_c * 2.5)]
        self._init_norm(norm, norm_positions, norm_lambda)
        self.cnn_head = nn.Sequential(nn.Conv2d(1, c[0], 5, (2, 2), 2, bias=False),
                                      nn.BatchNorm2d(c[0]), nn.ReLU())
        self.BCBlocks = nn.ModuleList(bc_stage(c[i], c[i + 1], n, 1, 1, sub_bands, dropout)
                                      for i, n in enumerate((2, 2, 2, 3)))
        self.pool = nn.MaxPool2d(2)
        classifier = [nn.Conv2d(c[4], num_classes, 1)]
        if classifier_bn:
            classifier.append(nn.BatchNorm2d(num_classes))
        self.classifier = nn.Sequential(*classifier, nn.AdaptiveAvgPool2d(1))


# The layout fields of ascjax's BC-ResNet-Mod that this reference hard-codes.
_MOD_LAYOUT = {'head_stride': (2, 2), 'pool': (2, 2)}


def from_config(model_config) -> _Body:
    """The torch twin of ``ascjax.models.from_config(config.model)`` (torch initialisation)."""
    cfg = dict(model_config)
    common = dict(num_classes=cfg['num_classes'], sub_bands=cfg['sub_bands'],
                  norm=cfg.get('norm', 'none'), norm_positions=cfg.get('norm_positions', ()),
                  norm_lambda=cfg.get('norm_lambda'), dropout=cfg.get('dropout', 0.1))
    if cfg['name'] == 'bcresnet':
        return BCResNets(int(8 * cfg['tau']), **common)
    if cfg['name'] != 'bcresnet_mod':
        raise ValueError(f"no PyTorch reference for model {cfg['name']!r}")
    for field, value in _MOD_LAYOUT.items():
        if tuple(cfg.get(field, value)) != value:
            raise ValueError(f'the PyTorch reference has model.{field}={value}, the config '
                             f'{tuple(cfg[field])}')
    return BCResNetMod(int(10 * cfg['tau']), classifier_bn=cfg.get('classifier_bn', False),
                       **common)


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random conv weights and biases, and non-trivial BN/SSN affine and running statistics, so that
    any permutation of channels or sub-bands in a conversion changes the output."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) / fan_in ** 0.5)
            if module.bias is not None:
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
        elif isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.weight.copy_(0.5 + torch.rand(n, generator=gen))
            module.bias.copy_(0.2 * torch.randn(n, generator=gen))
            module.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
            module.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=gen))
            module.num_batches_tracked.fill_(100)
    return model.eval()
