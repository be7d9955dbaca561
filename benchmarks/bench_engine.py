"""Engine benchmarks: exact k-NN of the native core and Numba beside FAISS, and the roofline.

Every group (database size n, code length, batch nq, k, threads) holds one benchmark
per backend, run in the same session on the same data with the same thread count:

- ``native``: :class:`hashsearch.backends.native.NativeBackend` (``num_threads``);
- ``numba``: :class:`hashsearch.backends.numba_backend.NumbaBackend` (``num_threads``;
  skipped with the reason when it cannot be imported);
- ``faiss``: ``faiss.IndexBinaryFlat`` with ``faiss.omp_set_num_threads``.

Grids (codes and queries are uniform random bytes from a seeded generator):

- ``test_knn``: n in {75k, 1M} x bits in {32, 64} x nq in {1, 1000} x k in {10, 100,
  1000} x threads in {1, 2};
- ``test_knn_wide``: wide codes, n in {75k, 1M} x bits in {256, 512, 1024} x nq in
  {1, 100} x k in {10, 1000} x threads in {1, 2};
- ``test_roofline``: the popcount roofline (``hashsearch._core.roofline``: XOR +
  POPCNT only over the same bytes, no distances, thresholds or selection) for every
  (n, bits, batch, threads) of the two grids above with nq > 1: a search's
  comparisons/s over the roofline's is how much of the CPU's popcount throughput it
  reaches;
- ``test_memory_bandwidth``: the roofline with one query over 128 MB of codes (4x this
  CPU's last-level cache): streaming read bandwidth, the bound of single queries;
- ``test_result_floor``: allocating and writing the arrays a k-NN search returns
  (int32 distances and int64 ids, nq x k) for nq = 1000 and k in K_VALUES, with no search:
  what any implementation pays for large k before it finds a single neighbour (the
  floor of issue 12's large-k goal; see benchmarks/README.md).

1M-code cases are marked ``large``. Each benchmark records ``n``, ``bits``, ``nq``,
``k``, ``threads`` and ``comparisons`` (n * nq) in ``extra_info`` (benchmarks/make_docs.py
reads them). Run::

    pytest benchmarks/bench_engine.py                      # everything (several minutes)
    pytest benchmarks/bench_engine.py -m "not large"       # 75k codes only
    pytest benchmarks/bench_engine.py --benchmark-json=engine.json && python benchmarks/report.py engine.json

The session ends with a table of our time over FAISS's per group (conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import hashsearch
from hashsearch.backends import backend_class
from hashsearch.synthetic import random_codes

faiss = pytest.importorskip("faiss")

N_VALUES = [75_000, 1_000_000]
BITS = [32, 64]
NQ_VALUES = [1, 1000]
K_VALUES = [10, 100, 1000]
THREADS = [1, 2]
#: Every backend this build can run (``hashsearch.available_backends()``: native, numba,
#: numpy, cuda where present) plus FAISS. Test ids are ``...-{backend}``, so the native,
#: numba and faiss cases keep their ids whatever else is available.
BACKENDS = [*hashsearch.available_backends(), "faiss"]

#: The NumPy reference is left out of the cases above this many comparisons (n * nq):
#: at 1M codes x 1000 queries it takes minutes a round. It stays in every smaller case.
NUMPY_MAX_COMPARISONS = 100_000_000

WIDE_BITS = [256, 512, 1024]
WIDE_NQ_VALUES = [1, 100]
WIDE_K_VALUES = [10, 1000]

#: Codes of the bandwidth case: 1M x 1024 bits = 128 MB.
STREAM_N, STREAM_BITS = 1_000_000, 1024

_DATA: dict[tuple[int, int], np.ndarray] = {}
_QUERIES: dict[tuple[int, int], np.ndarray] = {}
_FAISS: dict[tuple[int, int], object] = {}


def _codes(n: int, bits: int) -> np.ndarray:
    key = (n, bits)
    if key not in _DATA:
        _DATA[key] = random_codes(n, bits, seed=20180601 + bits)
    return _DATA[key]


def _queries(nq: int, bits: int) -> np.ndarray:
    key = (nq, bits)
    if key not in _QUERIES:
        _QUERIES[key] = random_codes(nq, bits, seed=7 + nq + bits)
    return _QUERIES[key]


def _faiss_index(n: int, bits: int):
    key = (n, bits)
    if key not in _FAISS:
        _FAISS.clear()  # one FAISS copy of a database at a time
        index = faiss.IndexBinaryFlat(bits)
        index.add(_codes(n, bits))
        _FAISS[key] = index
    return _FAISS[key]


def _search_function(backend: str, n: int, bits: int, threads: int):
    """A search function (queries, k) -> results for `backend`.

    Numba compiles (or loads its cache) in the benchmark's warm-up round, outside timing.
    """
    codes = _codes(n, bits)
    if backend == "faiss":
        index = _faiss_index(n, bits)

        def search(queries, k):
            faiss.omp_set_num_threads(threads)
            return index.search(queries, k)

        return search
    cls = backend_class(backend)
    reason = cls.unavailable_reason()
    if reason:
        pytest.skip(reason)
    engine = cls(num_threads=threads)

    def search(queries, k):
        return engine.knn(codes, queries, k)

    return search


def _rounds(n: int, nq: int) -> int:
    work = n * nq
    if work <= 100_000:
        return 200
    if work <= 1_000_000:
        return 60
    if work <= 100_000_000:
        return 5
    return 3


def _marks(n: int) -> list:
    return [pytest.mark.large] if n >= 1_000_000 else []


def _params(bits_values, nq_values, k_values):
    for n in N_VALUES:
        for bits in bits_values:
            for nq in nq_values:
                for k in k_values:
                    for threads in THREADS:
                        for backend in BACKENDS:
                            if backend == "numpy" and n * nq > NUMPY_MAX_COMPARISONS:
                                continue
                            yield pytest.param(
                                n, bits, nq, k, threads, backend,
                                id=f"n{n}-b{bits}-nq{nq}-k{k}-t{threads}-{backend}",
                                marks=_marks(n),
                            )


def _run_knn(benchmark, n, bits, nq, k, threads, backend):
    benchmark.group = f"n={n} bits={bits} nq={nq} k={k} threads={threads}"
    benchmark.extra_info.update(n=n, bits=bits, nq=nq, k=k, threads=threads, comparisons=n * nq)
    search = _search_function(backend, n, bits, threads)
    queries = _queries(nq, bits)
    distances, positions = benchmark.pedantic(
        search, args=(queries, k), rounds=_rounds(n, nq), iterations=1, warmup_rounds=1
    )
    assert distances.shape == (nq, k)
    # Same distances as FAISS (ids may differ inside runs of equal distances).
    if backend != "faiss":
        ref_d, _ = _faiss_index(n, bits).search(queries[: min(nq, 20)], k)
        np.testing.assert_array_equal(np.asarray(distances)[: min(nq, 20)], ref_d)


@pytest.mark.parametrize(("n", "bits", "nq", "k", "threads", "backend"), list(_params(BITS, NQ_VALUES, K_VALUES)))
def test_knn(benchmark, n, bits, nq, k, threads, backend):
    """Exact k-NN of nq random queries over n random codes."""
    _run_knn(benchmark, n, bits, nq, k, threads, backend)


@pytest.mark.parametrize(
    ("n", "bits", "nq", "k", "threads", "backend"), list(_params(WIDE_BITS, WIDE_NQ_VALUES, WIDE_K_VALUES))
)
def test_knn_wide(benchmark, n, bits, nq, k, threads, backend):
    """Exact k-NN over wide codes (256..1024 bits)."""
    _run_knn(benchmark, n, bits, nq, k, threads, backend)


def _native_core():
    reason = backend_class("native").unavailable_reason()
    if reason:
        pytest.skip(reason)
    from hashsearch import _core

    return _core


def _roofline_params():
    for n in N_VALUES:
        for bits, nq in [(b, max(NQ_VALUES)) for b in BITS] + [(b, max(WIDE_NQ_VALUES)) for b in WIDE_BITS]:
            for threads in THREADS:
                yield pytest.param(n, bits, nq, threads, id=f"n{n}-b{bits}-nq{nq}-t{threads}", marks=_marks(n))


@pytest.mark.parametrize(("n", "bits", "nq", "threads"), list(_roofline_params()))
def test_roofline(benchmark, n, bits, nq, threads):
    """XOR + POPCNT only over the bytes of an (n, bits, nq) search: the popcount roofline."""
    core = _native_core()
    benchmark.group = f"roofline n={n} bits={bits} nq={nq} threads={threads}"
    benchmark.extra_info.update(kind="roofline", n=n, bits=bits, nq=nq, threads=threads, comparisons=n * nq)
    codes, queries = _codes(n, bits), _queries(nq, bits)
    total = benchmark.pedantic(
        core.roofline, args=(queries, codes, threads), rounds=_rounds(n, nq), iterations=1, warmup_rounds=1
    )
    sample = min(nq, 4)
    expected = core.roofline(queries[:sample], codes, 1)
    assert total >= expected  # the checksum covers every pair (exact sums: tests/backends)


@pytest.mark.parametrize("k", K_VALUES)
def test_result_floor(benchmark, k):
    """Allocate and fill (1000, k) int32 + int64 result arrays: the output cost of a search."""
    nq = 1000
    src_d = np.arange(nq * k, dtype=np.int32).reshape(nq, k)
    src_i = np.arange(nq * k, dtype=np.int64).reshape(nq, k)

    def write() -> tuple[np.ndarray, np.ndarray]:
        d = np.empty((nq, k), dtype=np.int32)
        i = np.empty((nq, k), dtype=np.int64)
        np.copyto(d, src_d)
        np.copyto(i, src_i)
        return d, i

    benchmark.group = f"result floor nq={nq} k={k}"
    benchmark.extra_info.update(kind="result-floor", nq=nq, k=k, threads=1, bytes=nq * k * 12)
    d, i = benchmark.pedantic(write, rounds=20, iterations=1, warmup_rounds=2)
    assert d[-1, -1] == nq * k - 1 and i[-1, -1] == nq * k - 1


@pytest.mark.parametrize("threads", THREADS)
def test_memory_bandwidth(benchmark, threads):
    """One query's roofline over 128 MB of codes: streaming read bandwidth (bytes/s)."""
    core = _native_core()
    codes = _codes(STREAM_N, STREAM_BITS)
    query = _queries(1, STREAM_BITS)
    benchmark.group = f"memory bandwidth n={STREAM_N} bits={STREAM_BITS} threads={threads}"
    benchmark.extra_info.update(kind="bandwidth", n=STREAM_N, bits=STREAM_BITS, nq=1, threads=threads,
                                bytes=codes.nbytes, comparisons=STREAM_N)
    benchmark.pedantic(core.roofline, args=(query, codes, threads), rounds=10, iterations=1, warmup_rounds=1)
