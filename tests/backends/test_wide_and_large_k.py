"""Contract cases for the engine's wide-code and large-k paths, and the k limit.

- Wide codes (264..1032 bits): the native kernels have register-tiled paths for codes
  of one or two 64-byte words (full or partial) and a generic one beyond; the
  database is long enough for several scan chunks and query groups of every size.
- Large k over a batch: k >= 32 over >= 16k codes starts the native scan from a
  sampled threshold, records hits densely and orders them at the end; checked
  against the oracle, ties included.
- ``k`` far above ``ntotal`` is refused with a ValueError that gives k, ntotal and
  the result's size, before any allocation (``hashsearch._validate.check_k``), by
  every entry point (the index types, the functional search, the store's out-of-core
  search and the Dask search); a k moderately above ntotal still pads.
"""

from __future__ import annotations

import numpy as np
import pytest
from search_helpers import assert_same_arrays, oracle_distances, oracle_knn, oracle_range

from hashsearch import BinaryIndex
from hashsearch._validate import MAX_PADDING_BYTES, check_k
from hashsearch.backends import PAD_DISTANCE, PAD_POSITION
from hashsearch.functional import knn_search
from hashsearch.synthetic import random_codes, tied_codes

#: One and two 64-byte words, full and partial, and one past them (the generic path).
WIDE_NBITS = [264, 384, 512, 520, 768, 1016, 1024, 1032]


@pytest.mark.parametrize("nbits", WIDE_NBITS)
def test_wide_codes_knn_range_and_distances(backend, nbits):
    codes = np.concatenate([random_codes(2500, nbits, seed=nbits), tied_codes(1500, nbits, 12, seed=nbits + 1)])
    # 11 queries: groups of 4, 2 and 1 share the scanned codes; copies of codes give ties.
    queries = np.ascontiguousarray(np.concatenate([codes[::800], random_codes(6, nbits, seed=nbits + 2)]))
    for k in (1, 10, 150, 4000):
        assert_same_arrays(backend.knn(codes, queries, k), oracle_knn(codes, queries, k), f"knn k={k}")
    radius = nbits // 2 - int(np.sqrt(nbits))
    assert_same_arrays(
        backend.range_search(codes, queries, radius), oracle_range(codes, queries, radius), f"range r={radius}"
    )
    np.testing.assert_array_equal(backend.distances(queries, codes), oracle_distances(queries, codes))


@pytest.mark.parametrize("nbits", [8, 16, 32, 64, 128, 256, 512])
@pytest.mark.parametrize("kind", ["random", "tied"])
def test_large_k_batch(backend, nbits, kind):
    n = 20_000
    codes = random_codes(n, nbits, seed=nbits) if kind == "random" else tied_codes(n, nbits, 300, seed=nbits)
    queries = np.ascontiguousarray(np.concatenate([codes[:: n // 8], random_codes(12, nbits, seed=nbits + 5)]))
    for k in (100, 1000, 5000):
        assert_same_arrays(backend.knn(codes, queries, k), oracle_knn(codes, queries, k), f"k={k} {kind}")


def test_k_far_above_ntotal_is_refused_before_allocating():
    codes = random_codes(1000, 64, seed=1)
    index = BinaryIndex(64, backend="numpy")
    index.add(codes)
    queries = random_codes(3, 64, seed=2)
    with pytest.raises(ValueError, match=r"k=1099511627776 is far above ntotal=1000") as info:
        index.search(queries, 2**40)
    message = str(info.value)
    assert "TiB" in message and "3 x 1099511627776" in message
    with pytest.raises(ValueError, match="far above ntotal=1000"):
        knn_search(codes, queries, 2**40)
    assert index.ntotal == 1000  # the index is unchanged


def test_k_above_ntotal_within_the_limit_pads():
    codes = random_codes(10, 32, seed=3)
    dist, pos = knn_search(codes, codes[:2], 50, backend="numpy")
    assert dist.shape == pos.shape == (2, 50)
    assert (dist[:, 10:] == PAD_DISTANCE).all() and (pos[:, 10:] == PAD_POSITION).all()


def test_check_k_limit_is_on_the_padding():
    # The largest k allowed pads exactly MAX_PADDING_BYTES; one more is refused.
    most = 1000 + MAX_PADDING_BYTES // 12
    assert check_k(most, ntotal=1000, nq=1) == most
    with pytest.raises(ValueError, match=f"use k <= {most}"):
        check_k(most + 1, ntotal=1000, nq=1)
    # Any k is fine while it stays within ntotal, and without an ntotal there is no bound.
    assert check_k(10**9, ntotal=10**9, nq=10**6) == 10**9
    assert check_k(2**40) == 2**40
    with pytest.raises(ValueError, match=">= 1"):
        check_k(0, ntotal=5)


def test_k_far_above_ntotal_is_refused_by_every_entry_point(tmp_path):
    # The store's out-of-core search, the Dask search (before any cluster starts) and
    # the index types all refuse it with check_k's message.
    from hashsearch import CodeStore, distributed, index_factory

    codes = random_codes(1000, 64, seed=4)
    queries = random_codes(2, 64, seed=5)
    with CodeStore.create(tmp_path / "a.zarr", nbits=64) as store:
        store.append(codes)
    store = CodeStore.open(tmp_path / "a.zarr")
    with pytest.raises(ValueError, match="far above ntotal=1000"):
        store.search(queries, 2**40)
    with pytest.raises(ValueError, match="far above ntotal=1000"):
        distributed.search(store, queries, 2**40)
    for spec in ("Flat", "MIH", "BFlat"):
        index = index_factory(64, spec)
        index.add(codes)
        with pytest.raises(ValueError, match="far above ntotal=1000"):
            index.search(queries, 2**40)
    assert store.ntotal == 1000


def test_batch_search_refuses_before_writing_its_results(tmp_path):
    # batch_search (and `hashsearch index search`) refuses an absurd k and a memory limit
    # too small for one block before the results group exists: nothing is left behind.
    from hashsearch import BinaryIndex, CodeStore
    from hashsearch.search.batch import batch_search

    codes = random_codes(1000, 64, seed=4)
    queries = random_codes(3, 64, seed=5)
    with CodeStore.create(tmp_path / "a.zarr", nbits=64) as store:
        store.append(codes)
    store = CodeStore.open(tmp_path / "a.zarr")
    index = BinaryIndex(64)
    index.add(codes)
    for n, database in enumerate((store, index)):
        out = tmp_path / f"k{n}.zarr"
        with pytest.raises(ValueError, match="far above ntotal=1000"):
            batch_search(database, queries, 2**40, out, progress=False)
        assert not out.exists()
    out = tmp_path / "small.zarr"
    with pytest.raises(ValueError, match="too small"):
        batch_search(store, queries, 10, out, memory_limit=1000, progress=False)
    assert not out.exists()
