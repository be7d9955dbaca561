"""What is specific to the Numba backend (its results are checked by the contract suite)."""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from hashsearch.backends import _numba_kernels as kernels  # noqa: E402
from hashsearch.backends.numba_backend import MIN_SLICE, NumbaBackend, _as_words  # noqa: E402
from hashsearch.synthetic import random_codes  # noqa: E402


@pytest.mark.parametrize(
    ("nbytes", "dtype"),
    [
        (1, np.uint8),
        (2, np.uint8),
        (3, np.uint8),
        (4, np.uint32),
        (8, np.uint64),
        (9, np.uint8),
        (12, np.uint32),
        (128, np.uint64),
    ],
)
def test_word_type_follows_the_code_width(nbytes, dtype):
    codes = random_codes(5, 8 * nbytes, seed=1)
    words = _as_words(codes)
    assert words.dtype == dtype and words.shape == (5, nbytes // np.dtype(dtype).itemsize)
    assert not words.flags.writeable
    np.testing.assert_array_equal(words.view(np.uint8), codes)  # a view, same bytes
    assert np.shares_memory(words, codes)


def test_unaligned_codes_are_copied_to_aligned_words():
    buf = np.zeros(8 * 10 + 1, dtype=np.uint8)
    codes = buf[1:].reshape(10, 8)
    codes[:] = random_codes(10, 64, seed=2)
    words = _as_words(codes)
    assert words.ctypes.data % 8 == 0 and not np.shares_memory(words, codes)
    np.testing.assert_array_equal(words.view(np.uint8), codes)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.uint64])
def test_popcount_intrinsic(dtype):
    @numba.njit
    def count_all(x):
        out = np.empty(x.shape[0], np.int64)
        for i in range(x.shape[0]):
            out[i] = kernels.popcount(x[i])
        return out

    info = np.iinfo(dtype)
    values = np.array([0, 1, 2, 3, info.max, info.max - 1, info.max // 2 + 1, 0x55 & info.max], dtype=dtype)
    values = np.concatenate([values, np.random.default_rng(0).integers(0, info.max, 50, dtype=dtype, endpoint=True)])
    expected = [bin(int(v)).count("1") for v in values]
    np.testing.assert_array_equal(count_all(values), expected)


def test_thread_count_is_capped_and_numba_setting_restored():
    codes = random_codes(3000, 64, seed=3)
    backend = NumbaBackend(num_threads=1000)  # more than Numba's pool: capped, not an error
    assert backend.num_threads == 1000
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        dist, pos = backend.knn(codes, codes[:4], 3)
        assert numba.get_num_threads() == 1  # the caller's setting is restored
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(pos[:, 0], np.arange(4))


def test_few_queries_use_database_slices():
    # The contract suite's single-query tests (50k codes, 2 threads) go through the
    # slice-and-merge path only if this holds.
    backend = NumbaBackend(num_threads=2)
    if backend._threads() < 2:
        pytest.skip("Numba's thread pool has a single thread here")
    assert 2 * MIN_SLICE <= 50_000
    tile, slices = backend._layout(50_000, 1, 1000)
    assert (tile, slices) == (1, 2)
    tile, slices = backend._layout(50_000, 100, 1000)
    assert slices == 1 and -(-100 // tile) % 2 == 0  # an even number of tiles for 2 threads
