"""Stateless searches over bare arrays, and merging the top-k lists of database parts."""

from __future__ import annotations

import numpy as np
import pytest
from search_helpers import assert_same_arrays, oracle_distances, oracle_knn, oracle_range

from hashsearch import hamming_distances, knn_search, merge_topk, range_search
from hashsearch.backends import PAD_DISTANCE, PAD_POSITION
from hashsearch.functional import offset_positions
from hashsearch.synthetic import random_codes, tied_codes


def test_knn_search_matches_oracle(backend):
    codes = tied_codes(400, 40, n_unique=50, seed=1)
    queries = codes[::40].copy()
    got = knn_search(codes, queries, 12, backend=backend)
    assert_same_arrays(got, oracle_knn(codes, queries, 12), "knn_search")
    # nbits inferred from the width, 1-D query, explicit nbits and threads
    got1 = knn_search(codes, queries[0], 12, nbits=40, backend=backend, num_threads=1)
    assert_same_arrays(got1, oracle_knn(codes, queries[:1], 12), "knn_search 1-D")


def test_range_search_and_hamming_distances_match_oracle(backend):
    codes = tied_codes(300, 24, n_unique=30, seed=2)
    queries = random_codes(7, 24, seed=3)
    assert_same_arrays(range_search(codes, queries, 9, backend=backend), oracle_range(codes, queries, 9), "range")
    np.testing.assert_array_equal(hamming_distances(queries, codes, backend=backend), oracle_distances(queries, codes))
    assert hamming_distances(queries[0], codes[1], backend=backend).shape == (1, 1)


def test_functional_errors():
    codes = random_codes(10, 64, seed=1)
    with pytest.raises(ValueError, match="expected 4 bytes for nbits=32"):
        knn_search(codes, codes[:1], 1, nbits=32)
    with pytest.raises(ValueError, match="shape"):
        knn_search(codes[0], codes[:1], 1)  # a 1-D database is rejected
    with pytest.raises(ValueError, match="k must be >= 1"):
        knn_search(codes, codes[:1], 0)
    with pytest.raises(ValueError, match="radius must be >= 0"):
        range_search(codes, codes[:1], -1)
    with pytest.raises(TypeError, match="packed uint8"):
        hamming_distances(codes.astype(np.int16), codes)
    with pytest.raises(ValueError, match="nbytes >= 1"):
        knn_search(np.empty((3, 0), np.uint8), np.empty((1, 0), np.uint8), 1)


def test_offset_positions_keeps_padding():
    pos = np.array([[0, 3, -1], [2, -1, -1]], dtype=np.int64)
    np.testing.assert_array_equal(offset_positions(pos, 10), [[10, 13, -1], [12, -1, -1]])


@pytest.mark.parametrize("k", [1, 5, 40, 333, 500])
@pytest.mark.parametrize("bounds", [(0, 100, 250, 300), (0, 0, 7, 300), (0, 1, 2, 3, 300)], ids=str)
def test_merge_of_parts_equals_whole_search(backend, k, bounds):
    # Many ties (20 distinct codes): the merge must keep ascending positions across parts.
    codes = tied_codes(300, 32, n_unique=20, seed=4)
    queries = np.concatenate([codes[:5], random_codes(5, 32, seed=5)])
    parts = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        dist, pos = knn_search(codes[start:stop], queries, k, nbits=32, backend=backend)
        parts.append((dist, offset_positions(pos, start)))
    merged = merge_topk(parts, k)
    assert_same_arrays(merged, oracle_knn(codes, queries, k), f"merge of parts {bounds}")


def test_merge_topk_of_ids_and_unequal_widths():
    d1 = np.array([[1, 3, PAD_DISTANCE]], dtype=np.int32)
    i1 = np.array([[70, 71, -1]], dtype=np.int64)
    d2 = np.array([[1, 2]], dtype=np.int32)
    i2 = np.array([[5, 6]], dtype=np.int64)
    dist, ids = merge_topk([(d1, i1), (d2, i2)], 4)
    np.testing.assert_array_equal(dist, [[1, 1, 2, 3]])
    np.testing.assert_array_equal(ids, [[70, 5, 6, 71]])  # equal distance: earlier part first
    dist, ids = merge_topk([(d2, i2)], 4)
    np.testing.assert_array_equal(dist, [[1, 2, PAD_DISTANCE, PAD_DISTANCE]])
    np.testing.assert_array_equal(ids, [[5, 6, PAD_POSITION, PAD_POSITION]])
    assert dist.dtype == np.int32 and ids.dtype == np.int64


def test_merge_topk_errors():
    with pytest.raises(ValueError, match="at least one part"):
        merge_topk([], 3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        merge_topk([(np.zeros((1, 1), np.int32), np.zeros((1, 1), np.int64))], 0)
