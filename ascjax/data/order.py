"""The training example order without TensorFlow: `tf.random.experimental.index_shuffle` in numpy.

`index_shuffle` reproduces, bit for bit, TensorFlow's `RandomIndexShuffle` CPU kernel
(`tensorflow/core/kernels/random_index_shuffle.cc`, called by `random_index_shuffle_ops.cc`) as the
Python wrapper `tf.random.experimental.index_shuffle` invokes it: the 2-word seed is padded in front
with the constant 498247692 into a 3-word key, each word truncated to uint32, and `rounds` = 4.
The kernel uses no Philox; it is a cycle-walking Feistel cipher built on Simon (Beaulieu et al.):

* block size B = max(ceil(log2(max_index)) rounded up to even, 16) bits (computed in float64, as
  TF does), word size W = B / 2, and max_index = 0 maps everything to 0;
* round keys: the 3 key words (low W bits), then
  k[i] = c ^ z_{i-3} ^ k[i-3] ^ rotr(k[i-1], 3) ^ rotr(k[i-1], 4), c and z Simon's constants;
* encryption: left, right = high and low W bits; per pair of keys
  left ^= f(right) ^ k[i], right ^= f(left) ^ k[i+1], with f(x) = (rotl1 & rotl8) ^ rotl2;
* cycle walking: re-encrypt until the value is <= max_index.

`train_indices` is `ascjax.data.pipeline.train_indices` evaluated eagerly, so a process without
TensorFlow (an accelerator image) computes the same global batches as the tf.data pipeline.
"""

from __future__ import annotations

import functools
import math

import numpy as np

SEED_PAD = 498247692          # first key word prepended by tf.random.experimental.index_shuffle
MIN_BLOCK_BITS = 16
SIMON_C = 0xFFFFFFFC
SIMON_Z = 0x7369F885192C0EF5


def _block_bits(max_index: int) -> int:
    """TF's block size: enough bits for max_index (by float64 log2), even, at least 16."""
    bits = math.ceil(math.log2(float(max_index)))
    return max(bits + bits % 2, MIN_BLOCK_BITS)


def _rotl(x: int | np.ndarray, r: int, w: int) -> int | np.ndarray:
    mask = (1 << w) - 1
    return ((x << r) | (x >> (w - r))) & mask


def _rotr(x: int | np.ndarray, r: int, w: int) -> int | np.ndarray:
    mask = (1 << w) - 1
    return ((x >> r) | (x << (w - r))) & mask


def _round_keys(key: tuple[int, int, int], rounds: int, w: int) -> list[int]:
    """The Simon key schedule on W-bit words (Python ints; W <= 32)."""
    mask = (1 << w) - 1
    c, z = SIMON_C & mask, SIMON_Z & mask
    keys = [k & mask for k in key]
    for i in range(3, rounds):
        bit = (z >> (i - 3)) & 1
        keys.append(c ^ bit ^ keys[i - 3] ^ _rotr(keys[i - 1], 3, w) ^ _rotr(keys[i - 1], 4, w))
    return keys


def _f(x: np.ndarray, w: int) -> np.ndarray:
    return (_rotl(x, 1, w) & _rotl(x, 8, w)) ^ _rotl(x, 2, w)


def _encrypt(value: np.ndarray, keys: list[int], w: int) -> np.ndarray:
    """One pass of the Feistel cipher over uint64 blocks of 2W bits."""
    mask = np.uint64((1 << w) - 1)
    shift = np.uint64(w)
    left, right = (value >> shift) & mask, value & mask
    for k1, k2 in zip(keys[0::2], keys[1::2]):
        left = left ^ _f(right, w) ^ np.uint64(k1)
        right = right ^ _f(left, w) ^ np.uint64(k2)
    return (left << shift) | right


def _walk(value: np.ndarray, keys: list[int], w: int, max_index: int) -> np.ndarray:
    """Cycle walking, as the kernel does for each element: re-encrypt until <= max_index."""
    value = value.copy()
    pending = np.ones(value.shape, bool)
    while pending.any():
        value[pending] = _encrypt(value[pending], keys, w)
        pending = value > np.uint64(max_index)
    return value


@functools.lru_cache(maxsize=8)
def _walk_table(keys: tuple[int, ...], w: int, max_index: int) -> np.ndarray:
    """`_walk` of every 2W-bit block at once, for small blocks where walks can be long (about
    2**(2W) / max_index encryptions): follow the cipher's cycles by pointer doubling, with the
    values <= max_index as fixed points, so 2W doublings reach the first one on each path."""
    blocks = np.arange(1 << (2 * w), dtype=np.uint64)
    cipher = _encrypt(blocks, list(keys), w)
    jump = np.where(blocks <= np.uint64(max_index), blocks, cipher)
    for _ in range(2 * w):
        jump = jump[jump]
    table = jump[cipher]
    table.flags.writeable = False
    return table


def index_shuffle(index: np.ndarray, seed: tuple[int, int] | np.ndarray, max_index: int,
                  rounds: int = 4) -> np.ndarray:
    """Position of each `index` (in [0, max_index]) in the permutation of [0, max_index] keyed by
    `seed` (2 words); equal to `tf.random.experimental.index_shuffle(index, seed, max_index)` for
    int64 inputs."""
    if rounds < 4 or rounds % 2:
        raise ValueError(f'rounds must be an even number >= 4, got {rounds}')
    index = np.asarray(index, np.int64)
    max_index = int(max_index) & 0xFFFFFFFFFFFFFFFF   # the kernel's static_cast<uint64_t>
    if max_index == 0:
        return np.zeros_like(index)
    w = _block_bits(max_index) // 2
    seed0, seed1 = (int(s) & 0xFFFFFFFF for s in np.asarray(seed).ravel())   # to uint32
    keys = _round_keys((SEED_PAD, seed0, seed1), rounds, w)
    value = index.astype(np.uint64)
    if 2 * w == MIN_BLOCK_BITS:
        block = value & np.uint64((1 << MIN_BLOCK_BITS) - 1)   # the cipher's own truncation
        new = _walk_table(tuple(keys), w, max_index)[block]
    else:
        new = _walk(np.atleast_1d(value), keys, w, max_index)
    return new.astype(np.int64).reshape(index.shape)


def train_indices(step: int, num_examples: int, global_batch_size: int, seed: int, lo: int,
                  hi: int) -> np.ndarray:
    """Indices of this host's slice [lo, hi) of global training batch `step` (int64), as
    `pipeline.train_indices`: epoch `step // steps_per_epoch` shuffled with key (seed, epoch)."""
    epoch, within = divmod(int(step), num_examples // global_batch_size)
    positions = within * global_batch_size + np.arange(lo, hi, dtype=np.int64)
    return index_shuffle(positions, (seed, epoch), num_examples - 1)
