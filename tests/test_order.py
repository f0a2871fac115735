"""`ascjax.data.order` (numpy only) against the TensorFlow ops it reproduces, bit for bit."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.ops import gen_random_index_shuffle_ops

from ascjax.data import order, pipeline

MAX_INDICES = [0, 1, 2, 3, 7, 100, 1023, 1024, 2749, 2**16 - 1, 2**16, 2**20 + 5, 2**40 + 3]
SEEDS = [(0, 0), (0, 1), (42, 3), (2**31 - 1, 7), (2**31 - 1, 2**31 - 1), (2**40 + 5, -1)]
FULL_RANGE_UP_TO = 2749
SAMPLES = 2000


def _indices(max_index: int) -> np.ndarray:
    """Every index for small ranges; the ends plus a random sample for large ones."""
    if max_index <= FULL_RANGE_UP_TO:
        return np.arange(max_index + 1, dtype=np.int64)
    sample = np.random.default_rng(max_index).integers(0, max_index, SAMPLES, dtype=np.int64)
    return np.concatenate([[0, 1, max_index - 1, max_index], sample])


def _tf_shuffle(index: np.ndarray, seed, max_index: int) -> np.ndarray:
    return tf.random.experimental.index_shuffle(
        tf.constant(index, tf.int64), tf.constant(seed, tf.int64),
        tf.constant(max_index, tf.int64)).numpy()


@pytest.mark.parametrize('max_index', MAX_INDICES)
@pytest.mark.parametrize('seed', SEEDS)
def test_index_shuffle_matches_tf(max_index, seed):
    index = _indices(max_index)
    got = order.index_shuffle(index, seed, max_index)
    assert got.dtype == np.int64 and got.shape == index.shape
    np.testing.assert_array_equal(got, _tf_shuffle(index, seed, max_index))


@pytest.mark.parametrize('rounds', [4, 6, 8])
def test_rounds_match_raw_op(rounds):
    """The raw op takes the 3-word key the wrapper builds and any even number of rounds."""
    index, max_index = np.arange(3000, dtype=np.int64), 2**12 + 17
    key = (order.SEED_PAD, 11, 5)
    want = gen_random_index_shuffle_ops.random_index_shuffle(
        tf.constant(index), tf.constant(key, tf.int64), tf.constant(max_index, tf.int64),
        rounds=rounds).numpy()
    np.testing.assert_array_equal(order.index_shuffle(index, key[1:], max_index, rounds), want)


def test_scalar_index():
    assert order.index_shuffle(np.int64(5), (5, 9), 9).shape == ()
    assert order.index_shuffle(5, (5, 9), 9) == _tf_shuffle(np.int64(5), (5, 9), 9)


@pytest.mark.parametrize('max_index', [0, 1, 2, 3, 7, 100, 1023, 1024, 2749])
@pytest.mark.parametrize('seed', SEEDS[:3])
def test_permutation(max_index, seed):
    index = np.arange(max_index + 1)
    np.testing.assert_array_equal(np.sort(order.index_shuffle(index, seed, max_index)), index)


# (num_examples, global_batch_size, seed, step, lo, hi): first and later epochs, host slices.
TRAIN_CASES = [
    (2750, 32, 0, 0, 0, 32),
    (2750, 32, 0, 85, 0, 32),              # 85 steps per epoch: first batch of epoch 1
    (2750, 32, 0, 84, 0, 32),              # last batch of epoch 0
    (2750, 32, 7, 1000, 16, 32),
    (13965, 64, 42, 5000, 32, 64),
    (13965, 256, 2**31 - 1, 123456, 64, 128),
    (100, 8, 3, 37, 4, 8),
    (10, 10, 1, 5, 0, 10),                 # one step per epoch
]


@pytest.mark.parametrize('num_examples,batch,seed,step,lo,hi', TRAIN_CASES)
def test_train_indices_match_pipeline(num_examples, batch, seed, step, lo, hi):
    want = pipeline.train_indices(step, num_examples, batch, seed, lo, hi).numpy()
    got = order.train_indices(step, num_examples, batch, seed, lo, hi)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_train_indices_epoch_is_disjoint_batches():
    batches = [order.train_indices(s, 100, 8, 3, 0, 8) for s in range(12, 24)]   # epoch 1
    assert len(np.unique(np.concatenate(batches))) == 12 * 8
