"""The PyTorch side of tools/benchmark.py: the reference BC-ResNet-Mod of the parity tests
(ascjax/torch_reference/model.py, NCHW = N, C, F, T), trained and run the way the JAX models are timed.

Device-agnostic: CUDA when `torch.cuda.is_available()`, else the CPU; every returned callable
synchronises the device before it returns, so wall-clock timing of one call is the work of one call.
Importing this module needs torch; benchmark.py skips the torch records when that import fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ascjax.torch_reference import model as ref

NUM_CLASSES, SUB_BANDS, NORM_LAMBDA = 10, 4, 0.1
SETTINGS = ('NCHW', 'channels_last', 'compile')
DEFAULT_THREADS = torch.get_num_threads()   # torch's own choice, before anyone sets it


def device() -> torch.device:
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def sync(dev: torch.device) -> None:
    if dev.type == 'cuda':
        torch.cuda.synchronize(dev)


def thread_counts(dev: torch.device, requested: list[int]) -> list[int]:
    """Intra-op thread counts to time, 0 meaning torch's default, without repeats; on CUDA only
    the first (host threads barely matter there)."""
    counts = list(dict.fromkeys(n if n > 0 else DEFAULT_THREADS for n in requested))
    return counts[:1] if dev.type == 'cuda' else counts


def with_threads(fn: Callable[[], None], threads: int) -> Callable[[], None]:
    """fn run with `threads` intra-op threads (torch's setting is global; JAX's pool is its own).

    On CPU the count matters beyond speed-up: torch's OpenMP regions wait at barriers for every
    thread, so on a machine whose cores are busy with other work one descheduled thread stalls
    each op, and fewer threads can be several times faster. `run.prepare()` sets the count
    (`interleaved` calls it outside the timed call).
    """
    def run():
        set_threads(threads)
        return fn()
    run.prepare = lambda: set_threads(threads)
    return run


def set_threads(threads: int) -> None:
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def info(dev: torch.device) -> dict:
    """Fields every torch record carries (call with the record's thread count set)."""
    out = {'framework': 'torch', 'torch_device': str(dev), 'torch_threads': torch.get_num_threads(),
           'torch_default_threads': DEFAULT_THREADS,
           'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY', 'default')}
    if dev.type == 'cuda':
        out.update(torch_device_name=torch.cuda.get_device_name(dev),
                   cudnn_benchmark=torch.backends.cudnn.benchmark,
                   cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                   matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    return out


def setup(dev: torch.device) -> None:
    """Fixed input shapes: let cuDNN pick its fastest algorithms (XLA autotunes as well)."""
    if dev.type == 'cuda':
        torch.backends.cudnn.benchmark = True


def _torch_model(tau: float, seed: int = 0) -> torch.nn.Module:
    """BC-ResNet-Mod-tau + ResNorm at the input and after every stage, 10 classes, 4 sub-bands:
    the construction of tests/test_torch_parity.py (random weights and BN statistics)."""
    model = ref.BCResNetMod(int(10 * tau), NUM_CLASSES, SUB_BANDS, False, ref.NORM_POSITIONS,
                            NORM_LAMBDA)
    return ref.randomize_(model, seed)


def _place(model: torch.nn.Module, x: torch.Tensor, dev: torch.device, setting: str):
    model = model.to(dev)
    x = x.to(dev)
    if setting == 'channels_last':
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return model, x


def _torch_train_step(tau: float, batch_size: int, shape: tuple[int, int, int],
                      dev: torch.device, setting: str) -> tuple[Callable[[], None],
                                                               torch.nn.Module]:
    """One SGD step (momentum 0.9, lr 0.01, cross-entropy, model.train(): BN statistics updated,
    dropout on) of a fresh model on a fixed random batch [B, *shape] (shape = C, F, T).

    setting: 'NCHW' (contiguous), 'channels_last' (model and input), or 'compile'
    (`torch.compile(model)`, default backend inductor, on the NCHW model; its first call compiles,
    and inductor's CPU kernels keep the thread count set at that time).
    Returns (step, model); step() runs one step and synchronises.
    """
    if setting not in SETTINGS:
        raise ValueError(f'unknown torch setting {setting!r}; choose from {SETTINGS}')
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((batch_size, *shape), generator=gen)
    y = (torch.arange(batch_size) % NUM_CLASSES).to(dev)
    model, x = _place(_torch_model(tau), x, dev, setting)
    model.train()
    net = torch.compile(model) if setting == 'compile' else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        sync(dev)
    return step, model


def logmel(audio: torch.Tensor, fe, mel_fb: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """[B, samples] -> [B, n_mels, frames]: the same work as `ascjax.features.logmel_jax`
    (reflect-padded STFT with a periodic Hann, |.|^2, Slaney mel matmul, log(. + offset))."""
    spec = torch.stft(audio, fe.n_fft, fe.hop_length, fe.win_length, window, center=True,
                      pad_mode='reflect', return_complex=True)        # [B, n_fft // 2 + 1, T]
    power = spec.abs() ** 2
    return torch.log(torch.matmul(mel_fb, power) + fe.log_offset)


def _torch_inference(model: torch.nn.Module, input_shape: tuple[int, int, int], num_samples: int,
                     dev: torch.device, setting: str, fe=None) -> dict[str, Callable[[], None]]:
    """B = 1 forward passes of `model` (placed for `setting`, eval mode, inference_mode):
    {'excluded': log-mel input -> logits, 'included': waveform -> log-mel -> logits}; 'included'
    only when `fe` (an ascjax.features.FrontEnd) is given, its constants from ascjax.features
    (the librosa mel filterbank and the Hann window of logmel_jax)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn((1, *input_shape), generator=gen)
    model, x = _place(model, x, dev, setting)
    model.eval()
    fns = {}

    def excluded():
        with torch.inference_mode():
            model(x)
        sync(dev)
    fns['excluded'] = excluded
    if fe is not None:
        from ascjax import features
        mel_fb = torch.from_numpy(features.mel_filterbank(fe).T.copy()).to(dev)  # [n_mels, bins]
        window = torch.from_numpy(features.analysis_window(fe)).to(dev)
        audio = (0.1 * torch.randn((1, num_samples), generator=gen)).to(dev)

        def included():
            with torch.inference_mode():
                spec = logmel(audio, fe, mel_fb, window).unsqueeze(1)      # [1, 1, F, T]
                if setting == 'channels_last':
                    spec = spec.contiguous(memory_format=torch.channels_last)
                model(spec)
            sync(dev)
        fns['included'] = included
    return fns


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raises TimeoutError in the main thread after `seconds`, and again every second until the
    block is left: a raise that lands in a weakref callback or __del__ is swallowed by Python
    (seen inside torch.compile). SIGALRM; a no-op off the main thread or without it."""
    if (seconds <= 0 or not hasattr(signal, 'SIGALRM')
            or threading.current_thread() is not threading.main_thread()):
        yield
        return
    armed = {'on': True}

    def handler(signum, frame):
        if armed['on']:
            raise TimeoutError(f'took more than {seconds:g} s')
    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        armed['on'] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def first_call(fn: Callable[[], None], limit_s: float = 0) -> tuple[float | None, str | None]:
    """(seconds of fn(), None), or (None, reason) when it raised or ran past `limit_s`."""
    start = time.perf_counter()
    try:
        with time_limit(limit_s):
            fn()
    except Exception as e:  # noqa: BLE001 -- recorded as the reason, never fatal
        reason = f'{type(e).__name__}: {e}'.strip().splitlines()
        return None, ' '.join(reason)[:300]
    return time.perf_counter() - start, None


def release() -> None:
    """Drops torch.compile's compiled graphs, returns cached CUDA memory (JAX shares the GPU) and
    restores torch's default thread count."""
    set_threads(DEFAULT_THREADS)
    with contextlib.suppress(Exception):
        torch._dynamo.reset()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
