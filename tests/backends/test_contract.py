"""The backend contract, run on every backend present and every native SIMD path.

Every case is checked against the oracle of ``tests/search_helpers.py`` (distances from
unpacked bits, stable ranking): distances exactly, positions exactly under the
tie rule (ascending database position), padding values, dtypes and shapes. The
NumPy reference is one of the backends under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from search_helpers import assert_same_arrays, oracle_distances, oracle_knn, oracle_range

from hashsearch.backends import PAD_DISTANCE, PAD_POSITION
from hashsearch.synthetic import random_codes, tied_codes

#: Every specialised code length of the kernels, odd ones (24, 72) and a long one.
NBITS = [8, 16, 24, 32, 64, 72, 128, 256, 1024]


def check_knn(backend, codes, queries, k, what=""):
    got = backend.knn(codes, queries, k)
    assert_same_arrays(got, oracle_knn(codes, queries, k), f"{backend.name} knn k={k} {what}")
    return got


def check_range(backend, codes, queries, radius, what=""):
    got = backend.range_search(codes, queries, radius)
    assert_same_arrays(got, oracle_range(codes, queries, radius), f"{backend.name} range r={radius} {what}")
    return got


def queries_with_hits(codes, extra, nbits, seed):
    """Queries that are copies of database codes (exact hits, ties) plus random ones."""
    picks = codes[np.linspace(0, codes.shape[0] - 1, 5).astype(int)]
    return np.ascontiguousarray(np.concatenate([picks, random_codes(extra, nbits, seed)]))


# -- k-NN ------------------------------------------------------------------------------
@pytest.mark.parametrize("nbits", NBITS)
def test_knn_random_codes(backend, nbits):
    codes = random_codes(600, nbits, seed=nbits)
    queries = queries_with_hits(codes, 18, nbits, seed=nbits + 1)
    for k in (1, 10, 599, 600, 605):
        check_knn(backend, codes, queries, k)


@pytest.mark.parametrize("nbits", NBITS)
def test_knn_many_ties_and_duplicates(backend, nbits):
    # 700 codes drawn from 5 distinct ones: every distance value is shared by ~140 codes.
    codes = tied_codes(700, nbits, n_unique=5, seed=nbits)
    queries = queries_with_hits(codes, 6, nbits, seed=nbits + 2)
    for k in (1, 3, 139, 140, 141, 699, 700, 1000):
        check_knn(backend, codes, queries, k)


@pytest.mark.parametrize("nbits", [8, 24, 64, 1024])
def test_knn_all_codes_equal(backend, nbits):
    codes = np.repeat(random_codes(1, nbits, seed=3), 300, axis=0)
    query = random_codes(1, nbits, seed=4)
    d = int(oracle_distances(query, codes[:1])[0, 0])
    for k in (1, 7, 300, 310):
        dist, pos = backend.knn(codes, query, k)
        kk = min(k, 300)
        np.testing.assert_array_equal(dist[0, :kk], d)
        np.testing.assert_array_equal(pos[0, :kk], np.arange(kk))  # ties: ascending position
        np.testing.assert_array_equal(dist[0, kk:], PAD_DISTANCE)
        np.testing.assert_array_equal(pos[0, kk:], PAD_POSITION)


def test_knn_padding_when_k_exceeds_ntotal(backend):
    codes = random_codes(5, 64, seed=1)
    dist, pos = backend.knn(codes, codes[:2].copy(), 8)
    assert dist.dtype == np.int32 and pos.dtype == np.int64
    assert dist.shape == pos.shape == (2, 8)
    assert (dist[:, 5:] == PAD_DISTANCE).all() and (pos[:, 5:] == -1).all()
    assert PAD_DISTANCE == 2**31 - 1 and PAD_POSITION == -1
    np.testing.assert_array_equal(pos[:, 0], [0, 1])
    np.testing.assert_array_equal(np.sort(pos[:, :5], axis=1), np.tile(np.arange(5), (2, 1)))


@pytest.mark.parametrize("nbits", [16, 24, 64, 256])
@pytest.mark.parametrize("kind", ["random", "tied"])
def test_knn_single_query_large_database(backend, nbits, kind):
    # nq = 1 over 50k codes: backends may cut the database into per-thread slices and
    # merge them; the merge must keep the tie rule across slice boundaries.
    n = 50_000
    codes = random_codes(n, nbits, seed=7) if kind == "random" else tied_codes(n, nbits, n_unique=40, seed=7)
    for query in (codes[n // 2 : n // 2 + 1].copy(), random_codes(1, nbits, seed=8)):
        for k in (1, 10, 1000, 2 * n // 3):
            check_knn(backend, codes, query, k, f"nbits={nbits} {kind}")


@pytest.mark.parametrize("nbits", [32, 64, 72])
def test_knn_large_batch(backend, nbits):
    codes = tied_codes(3000, nbits, n_unique=400, seed=nbits)
    queries = np.concatenate([codes[::10], random_codes(100, nbits, seed=5)])
    for k in (1, 10, 100):
        check_knn(backend, codes, queries, k)


@pytest.mark.parametrize("nq", [0, 1, 3])
def test_knn_empty_index(backend, nq):
    codes = np.empty((0, 8), dtype=np.uint8)
    for k in (1, 5):
        dist, pos = backend.knn(codes, random_codes(nq, 64, seed=2), k)
        assert dist.dtype == np.int32 and pos.dtype == np.int64
        assert dist.shape == pos.shape == (nq, k)
        assert (dist == PAD_DISTANCE).all() and (pos == PAD_POSITION).all()


def test_knn_no_queries(backend):
    dist, pos = backend.knn(random_codes(50, 32, seed=1), np.empty((0, 4), np.uint8), 3)
    assert dist.shape == pos.shape == (0, 3)
    assert dist.dtype == np.int32 and pos.dtype == np.int64


def test_knn_k_equal_one_finds_exact_copies(backend):
    codes = random_codes(1000, 128, seed=11)
    dist, pos = backend.knn(codes, codes[::7].copy(), 1)
    np.testing.assert_array_equal(dist[:, 0], 0)
    np.testing.assert_array_equal(pos[:, 0], np.arange(0, 1000, 7))


# -- range search ----------------------------------------------------------------------
@pytest.mark.parametrize("nbits", NBITS)
def test_range_search_radii(backend, nbits):
    codes = np.concatenate([random_codes(300, nbits, seed=nbits), tied_codes(200, nbits, 4, seed=nbits)])
    queries = queries_with_hits(codes, 6, nbits, seed=nbits + 3)
    mid = nbits // 2 - max(1, int(np.sqrt(nbits)) // 2)  # a radius that keeps some codes, not all
    for radius in (0, 1, mid, nbits // 2, nbits):
        lims, dist, pos = check_range(backend, codes, queries, radius, f"nbits={nbits}")
        assert lims[0] == 0 and lims[-1] == dist.size == pos.size
        for i in range(queries.shape[0]):
            assert (np.diff(pos[lims[i] : lims[i + 1]]) > 0).all()  # ascending positions
    # radius = nbits keeps every code of every query
    lims, _, pos = backend.range_search(codes, queries, nbits)
    np.testing.assert_array_equal(np.diff(lims), codes.shape[0])


@pytest.mark.parametrize("nbits", [24, 64])
def test_range_search_single_query_large_database(backend, nbits):
    codes = tied_codes(50_000, nbits, n_unique=60, seed=5)
    query = codes[123:124].copy()
    for radius in (0, nbits // 4, nbits // 2):
        check_range(backend, codes, query, radius)


def test_range_search_empty(backend):
    empty = np.empty((0, 4), np.uint8)
    for codes, queries in ((empty, random_codes(3, 32, seed=1)), (random_codes(3, 32, seed=1), empty)):
        lims, dist, pos = backend.range_search(codes, queries, 5)
        assert lims.dtype == np.int64 and dist.dtype == np.int32 and pos.dtype == np.int64
        np.testing.assert_array_equal(lims, np.zeros(queries.shape[0] + 1))
        assert dist.shape == pos.shape == (0,)


# -- distance matrix -------------------------------------------------------------------
@pytest.mark.parametrize("nbits", NBITS)
def test_distance_matrix(backend, nbits):
    a = random_codes(37, nbits, seed=nbits)
    b = np.concatenate([a[:5], random_codes(250, nbits, seed=nbits + 1)])
    for x, y in ((a, b), (b, a), (a[:1], b), (a, b[:1])):
        got = backend.distances(x, y)
        assert got.dtype == np.int32 and got.shape == (x.shape[0], y.shape[0])
        np.testing.assert_array_equal(got, oracle_distances(x, y))


def test_distance_matrix_empty(backend):
    a = random_codes(3, 16, seed=1)
    assert backend.distances(a, a[:0]).shape == (3, 0)
    assert backend.distances(a[:0], a).shape == (0, 3)


# -- threads and input handling --------------------------------------------------------
@pytest.mark.parametrize(("nq", "n"), [(1, 60_000), (2, 40_000), (64, 5_000)])
def test_results_identical_for_1_and_2_threads(backend, nq, n):
    codes = tied_codes(n, 64, n_unique=n // 20, seed=3)
    queries = codes[:: n // nq][:nq].copy()
    results = {}
    for threads in (1, 2):
        backend.num_threads = threads
        results[threads] = (
            backend.knn(codes, queries, 25),
            backend.range_search(codes, queries, 20),
            backend.distances(queries, codes[:3000]),
        )
    (knn1, range1, dist1), (knn2, range2, dist2) = results[1], results[2]
    assert_same_arrays(knn1, knn2, "knn, 1 vs 2 threads")
    assert_same_arrays(range1, range2, "range_search, 1 vs 2 threads")
    assert_same_arrays((dist1,), (dist2,), "distances, 1 vs 2 threads")
    assert_same_arrays(knn1, oracle_knn(codes, queries, 25), "knn vs oracle")


def test_read_only_and_unaligned_inputs(backend):
    codes = random_codes(2000, 64, seed=9)
    queries = codes[::50].copy()
    expected = oracle_knn(codes, queries, 5)
    ro_codes, ro_queries = codes.copy(), queries.copy()
    ro_codes.flags.writeable = ro_queries.flags.writeable = False
    assert_same_arrays(backend.knn(ro_codes, ro_queries, 5), expected, "read-only inputs")
    # C-contiguous but starting at an odd address (e.g. a slice of a file buffer).
    buf = np.zeros(codes.size + 1, dtype=np.uint8)
    unaligned = buf[1:].reshape(codes.shape)
    unaligned[:] = codes
    assert unaligned.flags.c_contiguous and unaligned.ctypes.data % 8
    assert_same_arrays(backend.knn(unaligned, queries, 5), expected, "unaligned codes")
    np.testing.assert_array_equal(backend.distances(queries, unaligned), oracle_distances(queries, codes))


def test_inputs_are_not_modified(backend):
    codes = tied_codes(500, 72, n_unique=30, seed=2)
    queries = codes[:20].copy()
    before = codes.copy(), queries.copy()
    backend.knn(codes, queries, 50)
    backend.range_search(codes, queries, 30)
    backend.distances(queries, codes)
    np.testing.assert_array_equal(codes, before[0])
    np.testing.assert_array_equal(queries, before[1])


# -- property tests --------------------------------------------------------------------
@given(
    nbytes=st.integers(1, 40),
    n=st.integers(0, 400),
    nq=st.integers(1, 9),
    k=st.integers(1, 450),
    n_unique=st.one_of(st.none(), st.integers(1, 8)),
    radius_frac=st.floats(0.0, 1.0),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_matches_oracle(backend, nbytes, n, nq, k, n_unique, radius_frac, threads, seed):
    nbits = 8 * nbytes
    codes = random_codes(n, nbits, seed) if n_unique is None else tied_codes(n, nbits, n_unique, seed)
    queries = np.concatenate([codes[: nq // 2], random_codes(nq - min(nq // 2, n), nbits, seed + 1)])
    radius = int(round(radius_frac * nbits))
    backend.num_threads = threads
    check_knn(backend, codes, queries, k)
    check_range(backend, codes, queries, radius)
    np.testing.assert_array_equal(backend.distances(queries, codes), oracle_distances(queries, codes))


def test_concurrent_searches_from_python_threads(backend):
    # Dask and web servers search from several Python threads at once (the GIL is
    # released by the compiled backends): every call must still get its own result.
    from concurrent.futures import ThreadPoolExecutor

    codes = tied_codes(20_000, 64, n_unique=500, seed=6)
    queries = [codes[i :: 997][:8].copy() for i in range(4)]
    expected = [oracle_knn(codes, q, 10) for q in queries]
    backend.num_threads = 1

    def run(i):
        return backend.knn(codes, queries[i % 4], 10)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, range(12)))
    for i, got in enumerate(results):
        assert_same_arrays(got, expected[i % 4], f"concurrent call {i}")
