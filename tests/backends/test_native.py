"""Tests of the compiled core ``hashsearch._core`` against the oracle of ``search_helpers``.

Every SIMD level this CPU supports runs the same cases (``set_simd_level``), and one
subprocess checks the ``HASHSEARCH_SIMD`` variable. Data has many duplicate codes and
hence many ties, so the tie rule (ascending database position) is what makes the
expected positions unique: distances and positions must match exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from search_helpers import assert_same_arrays, oracle_distances, oracle_knn, oracle_range

from hashsearch.backends import PAD_DISTANCE

_core = pytest.importorskip("hashsearch._core", reason="the compiled extension is not built")

LEVELS = list(_core.simd_levels())
NBITS = [8, 16, 24, 32, 40, 64, 72, 128, 136, 256, 512, 1024]


@pytest.fixture(autouse=True)
def _restore_simd_level():
    level = _core.simd_level()
    yield
    _core.set_simd_level(level)


# -- data -------------------------------------------------------------------------------
def make_codes(rng: np.random.Generator, n: int, nbytes: int, distinct: int) -> np.ndarray:
    """n codes drawn from `distinct` random codes with a few flipped bits: many exact
    duplicates and many equal distances."""
    base = rng.integers(0, 256, size=(distinct, nbytes), dtype=np.uint8)
    codes = base[rng.integers(0, distinct, size=n)]
    flip = rng.random(size=(n, nbytes)) < 0.02
    bits = flip.astype(np.uint8) << rng.integers(0, 8, size=(n, nbytes)).astype(np.uint8)
    return np.ascontiguousarray(codes ^ bits)


def oracle_knn_each(codes, queries, ks) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """oracle_knn for every k of ks from one oracle call: the k nearest are the first k
    of the max(ks) nearest (the order by (distance, position) is total)."""
    d, p = oracle_knn(codes, queries, max(ks))
    return {k: (d[:, :k], p[:, :k]) for k in ks}


def run_knn(codes, queries, k, threads):
    d = np.empty((queries.shape[0], k), dtype=np.int32)
    p = np.empty((queries.shape[0], k), dtype=np.int64)
    _core.knn(codes, queries, k, d, p, threads)
    return d, p


_DATA: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def dataset(nbits: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n, nbytes), queries (300, nbytes)), cached per nbits."""
    if nbits not in _DATA:
        rng = np.random.default_rng(1000 + nbits)
        nbytes = nbits // 8
        n = 1500 if nbits <= 256 else 600
        codes = make_codes(rng, n, nbytes, distinct=40)
        queries = np.concatenate(
            [make_codes(rng, 150, nbytes, distinct=40), rng.integers(0, 256, (150, nbytes), dtype=np.uint8)]
        )
        _DATA[nbits] = (codes, queries)
    return _DATA[nbits]


# -- k-NN -------------------------------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("nbits", NBITS)
def test_knn_matches_reference(level, nbits):
    _core.set_simd_level(level)
    codes, queries = dataset(nbits)
    n = codes.shape[0]
    expected = oracle_knn_each(codes, queries, (1, 10, n, n + 7))
    for k, (want_d, want_p) in expected.items():
        for threads in (1, 2):
            got_d, got_p = run_knn(codes, queries, k, threads)
            np.testing.assert_array_equal(got_d, want_d, err_msg=f"k={k} threads={threads}")
            np.testing.assert_array_equal(got_p, want_p, err_msg=f"k={k} threads={threads}")
        # one query at a time, two threads: the database is split between them
        got_d, got_p = run_knn(codes, queries[:1], k, 2)
        np.testing.assert_array_equal(got_d, want_d[:1])
        np.testing.assert_array_equal(got_p, want_p[:1])


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("nbits", [24, 32, 64, 136])
def test_knn_large_database(level, nbits):
    """Batches over a database large enough for sampled thresholds (k >= 32)."""
    _core.set_simd_level(level)
    rng = np.random.default_rng(nbits)
    nbytes = nbits // 8
    codes = make_codes(rng, 20000, nbytes, distinct=3000)
    queries = np.concatenate([codes[rng.integers(0, 20000, 40)], rng.integers(0, 256, (24, nbytes), dtype=np.uint8)])
    expected = oracle_knn_each(codes, queries, (1, 50, 1000))
    for k, (want_d, want_p) in expected.items():
        for threads in (1, 2):
            got_d, got_p = run_knn(codes, queries, k, threads)
            np.testing.assert_array_equal(got_d, want_d, err_msg=f"k={k} threads={threads}")
            np.testing.assert_array_equal(got_p, want_p, err_msg=f"k={k} threads={threads}")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("nbits", [24, 32, 64])
def test_knn_few_queries_split_database(level, nbits):
    """One or three queries and two threads: the database is cut into slices whose
    partial results are merged by (distance, position)."""
    _core.set_simd_level(level)
    rng = np.random.default_rng(50 + nbits)
    nbytes = nbits // 8
    codes = make_codes(rng, 300_000, nbytes, distinct=5000)
    queries = np.concatenate([codes[[7, 123_456]], rng.integers(0, 256, (1, nbytes), dtype=np.uint8)])
    expected = oracle_knn_each(codes, queries, (1, 50, 1000))
    for k, (want_d, want_p) in expected.items():
        for nq in (1, 3):
            got_d, got_p = run_knn(codes, queries[:nq], k, 2)
            np.testing.assert_array_equal(got_d, want_d[:nq], err_msg=f"k={k} nq={nq}")
            np.testing.assert_array_equal(got_p, want_p[:nq], err_msg=f"k={k} nq={nq}")


@pytest.mark.parametrize("level", LEVELS)
def test_knn_threshold_estimate_too_low(level):
    """A sample of the database that is much closer to the query than the rest: the
    sampled threshold is too low and the query must be searched again, still exact."""
    _core.set_simd_level(level)
    n, nbytes = 40000, 4
    codes = np.full((n, nbytes), 255, dtype=np.uint8)
    runs = 32
    for r in range(runs):  # where the sample is taken (runs of 64 spread evenly)
        start = r * ((n - 64) // (runs - 1))
        codes[start : start + 64] = 0
    codes[::7] = 1
    queries = np.zeros((3, nbytes), dtype=np.uint8)
    want_d, want_p = oracle_knn(codes, queries, 3000)
    for threads in (1, 2):
        got_d, got_p = run_knn(codes, queries, 3000, threads)
        np.testing.assert_array_equal(got_d, want_d)
        np.testing.assert_array_equal(got_p, want_p)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("nbits", [32, 64, 136])
def test_knn_large_k_without_sample(level, nbits):
    """A database too short for a sampled threshold and k in the thousands: the first
    threshold drop goes from nbits + 1 far down (histogram, then a second split)."""
    _core.set_simd_level(level)
    rng = np.random.default_rng(300 + nbits)
    nbytes = nbits // 8
    codes = make_codes(rng, 9000, nbytes, distinct=700)
    queries = np.concatenate([codes[rng.integers(0, 9000, 6)], rng.integers(0, 256, (6, nbytes), dtype=np.uint8)])
    expected = oracle_knn_each(codes, queries, (700, 4000, 9000 - 3, 9000))
    for k, (want_d, want_p) in expected.items():
        for threads in (1, 2):
            got_d, got_p = run_knn(codes, queries, k, threads)
            np.testing.assert_array_equal(got_d, want_d, err_msg=f"k={k} threads={threads}")
            np.testing.assert_array_equal(got_p, want_p, err_msg=f"k={k} threads={threads}")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("nbits", [32, 64])
def test_knn_dense_hits_and_ties_at_the_kth_distance(level, nbits):
    """Random codes (a sampled threshold) with runs of codes close to the query away from
    the sample: whole bitmap words of hits, the k-th distance reached in the middle of a
    run, and hundreds of ties at it, some before and some after the threshold drops."""
    _core.set_simd_level(level)
    rng = np.random.default_rng(400 + nbits)
    nbytes = nbits // 8
    n = 40000
    codes = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    query = rng.integers(0, 256, (1, nbytes), dtype=np.uint8)
    near = np.repeat(query, 700, axis=0)
    near[::2, 0] ^= 1  # half at distance 1, half at 0
    near[::3, 1] ^= 3  # and some at 2 or 3
    step = (n - 64) // 31  # the sample: 32 runs of 64 codes, `step` apart (engine.cpp)
    for run, skew in ((1, 13), (13, 5), (25, 40)):  # 700 near codes in the gap after a run
        start = run * step + 64 + skew
        codes[start : start + 700] = near
    queries = np.concatenate([query, codes[rng.integers(0, n, 7)]])
    expected = oracle_knn_each(codes, queries, (50, 600, 1000, 2500))
    for k, (want_d, want_p) in expected.items():
        for threads in (1, 2):
            for nq in (1, 8):
                got_d, got_p = run_knn(codes, queries[:nq], k, threads)
                np.testing.assert_array_equal(got_d, want_d[:nq], err_msg=f"k={k} nq={nq} threads={threads}")
                np.testing.assert_array_equal(got_p, want_p[:nq], err_msg=f"k={k} nq={nq} threads={threads}")


@pytest.mark.parametrize("level", LEVELS)
def test_knn_large_output_streamed(level):
    """Outputs of 4 MB and more are ordered in a staging row and streamed out."""
    _core.set_simd_level(level)
    rng = np.random.default_rng(11)
    codes = make_codes(rng, 3000, 4, distinct=200)
    queries = np.concatenate([codes[:200], rng.integers(0, 256, (200, 4), dtype=np.uint8)])
    k = 1100  # 400 x 1100 x 12 bytes > 4 MB
    want_d, want_p = oracle_knn(codes, queries, k)
    for threads in (1, 2):
        got_d, got_p = run_knn(codes, queries, k, threads)
        np.testing.assert_array_equal(got_d, want_d)
        np.testing.assert_array_equal(got_p, want_p)


@pytest.mark.parametrize("level", LEVELS)
def test_knn_empty_database_and_queries(level):
    _core.set_simd_level(level)
    codes = np.zeros((0, 4), dtype=np.uint8)
    queries = np.zeros((5, 4), dtype=np.uint8)
    d, p = run_knn(codes, queries, 3, 2)
    assert (d == PAD_DISTANCE).all() and (p == -1).all()
    d, p = run_knn(np.zeros((10, 4), np.uint8), np.zeros((0, 4), np.uint8), 3, 2)
    assert d.shape == (0, 3) and p.shape == (0, 3)


# -- range search -----------------------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("nbits", [8, 24, 32, 72, 256, 1024])
def test_range_search_matches_reference(level, nbits):
    _core.set_simd_level(level)
    codes, queries = dataset(nbits)
    queries = np.ascontiguousarray(queries[::10])
    for radius in (0, nbits // 2 - 2, nbits):
        want = oracle_range(codes, queries, radius)
        for threads in (1, 2):
            got = _core.range_search(codes, queries, radius, threads)
            assert_same_arrays(got, want, f"radius={radius} threads={threads}")


@pytest.mark.parametrize("level", LEVELS)
def test_range_search_large_database_one_query(level):
    _core.set_simd_level(level)
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 256, (200_000, 8), dtype=np.uint8)
    queries = codes[:2].copy()
    assert_same_arrays(_core.range_search(codes, queries[:1], 26, 2), oracle_range(codes, queries[:1], 26))
    lims, d, p = _core.range_search(np.zeros((0, 8), np.uint8), queries, 3, 2)
    np.testing.assert_array_equal(lims, [0, 0, 0])


# -- pairwise ---------------------------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("nbits", NBITS)
def test_pairwise_matches_reference(level, nbits):
    _core.set_simd_level(level)
    codes, queries = dataset(nbits)
    out = np.empty((50, codes.shape[0] - 3), dtype=np.int32)
    _core.pairwise(queries[:50], codes[:-3], out, 2)
    np.testing.assert_array_equal(out, oracle_distances(queries[:50], codes[:-3]))


# -- levels and environment -------------------------------------------------------------
def test_simd_levels():
    assert LEVELS[-1] == "generic"
    assert set(LEVELS) <= {"avx512", "avx2", "popcnt", "generic"}
    with pytest.raises(ValueError, match="unknown"):
        _core.set_simd_level("sse9")
    _core.set_simd_level("generic")
    assert _core.simd_level() == "generic"


def _python(code: str, env_value: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("HASHSEARCH_SIMD", None)
    if env_value is not None:
        env["HASHSEARCH_SIMD"] = env_value
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_env_variable_lowers_level():
    code = (
        "import logging; logging.basicConfig(level=logging.WARNING)\n"
        "from hashsearch import _core\n"
        "print(_core.simd_level(), ','.join(_core.simd_levels()))"
    )
    for level in LEVELS:
        out = _python(code, level)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[0] == level
    out = _python(code, "no-such-level")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == LEVELS[0]
    assert "HASHSEARCH_SIMD=no-such-level ignored" in out.stderr


# -- input checks -----------------------------------------------------------------------
def test_invalid_arrays_raise_value_error():
    codes = np.zeros((10, 4), dtype=np.uint8)
    queries = np.zeros((2, 4), dtype=np.uint8)
    d = np.empty((2, 3), dtype=np.int32)
    p = np.empty((2, 3), dtype=np.int64)
    with pytest.raises(ValueError, match="dtype"):
        _core.knn(codes.astype(np.int8), queries, 3, d, p, 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.knn(np.zeros((10, 8), np.uint8)[:, ::2], queries, 3, d, p, 1)
    with pytest.raises(ValueError, match="widths"):
        _core.knn(codes, np.zeros((2, 8), np.uint8), 3, d, p, 1)
    with pytest.raises(ValueError, match="shape"):
        _core.knn(codes, queries, 4, d, p, 1)
    with pytest.raises(ValueError, match="int64"):
        _core.knn(codes, queries, 3, d, p.astype(np.int32), 1)
    with pytest.raises(ValueError, match="k must be"):
        _core.knn(codes, queries, 0, d, p, 1)
    with pytest.raises(ValueError, match="num_threads"):
        _core.knn(codes, queries, 3, d, p, 0)
    with pytest.raises(ValueError, match="radius"):
        _core.range_search(codes, queries, -1, 1)
    with pytest.raises(ValueError, match="2-D"):
        _core.range_search(codes[0], queries, 1, 1)
    with pytest.raises(ValueError, match="shape"):
        _core.pairwise(codes, queries, np.empty((2, 10), np.int32), 1)
    with pytest.raises(ValueError, match="at most"):
        _core.pairwise(np.zeros((1, 70000), np.uint8), np.zeros((1, 70000), np.uint8), np.empty((1, 1), np.int32), 1)
    readonly = np.empty((2, 3), dtype=np.int32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _core.knn(codes, queries, 3, readonly, p, 1)


# -- roofline (benchmarks) --------------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("nbits", [8, 24, 32, 64, 256, 512, 768, 1024, 2048])
def test_roofline_is_the_sum_of_all_distances(level, nbits):
    # The roofline kernel streams the same bytes as a search; its checksum is the sum of
    # every query-code distance (database tails that end inside a register included).
    _core.set_simd_level(level)
    rng = np.random.default_rng(nbits)
    a = rng.integers(0, 256, size=(9, nbits // 8), dtype=np.uint8)
    b = rng.integers(0, 256, size=(1001, nbits // 8), dtype=np.uint8)
    expected = int(oracle_distances(a, b).sum())
    for threads in (1, 2):
        assert _core.roofline(a, b, threads) == expected
    assert _core.roofline(a[:0], b, 1) == 0 and _core.roofline(a, b[:0], 1) == 0
