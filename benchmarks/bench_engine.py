"""Engine benchmarks: exact k-NN of the native core and Numba beside FAISS.

Every group (database size n, code length, batch nq, k, threads) holds one benchmark
per backend, run in the same session on the same data with the same thread count:

- ``native``: :class:`hashsearch.backends.native.NativeBackend` (``num_threads``);
- ``numba``: :class:`hashsearch.backends.numba_backend.NumbaBackend` (``num_threads``;
  skipped with the reason when it cannot be imported);
- ``faiss``: ``faiss.IndexBinaryFlat`` with ``faiss.omp_set_num_threads``.

Grid: n in {75k, 1M} x bits in {32, 64} x nq in {1, 1000} x k in {10, 100, 1000} x
threads in {1, 2}. Codes and queries are uniform random bytes from a seeded generator.
1M-code cases are marked ``large``. Run::

    pytest benchmarks/bench_engine.py                      # everything (a few minutes)
    pytest benchmarks/bench_engine.py -m "not large"       # 75k codes only
    pytest benchmarks/bench_engine.py --benchmark-json=engine.json && python benchmarks/report.py engine.json

The session ends with a table of our time over FAISS's per group (conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from hashsearch.backends import backend_class
from hashsearch.synthetic import random_codes

faiss = pytest.importorskip("faiss")

N_VALUES = [75_000, 1_000_000]
BITS = [32, 64]
NQ_VALUES = [1, 1000]
K_VALUES = [10, 100, 1000]
THREADS = [1, 2]
BACKENDS = ["native", "numba", "faiss"]

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


def _params():
    for n in N_VALUES:
        for bits in BITS:
            for nq in NQ_VALUES:
                for k in K_VALUES:
                    for threads in THREADS:
                        for backend in BACKENDS:
                            marks = [pytest.mark.large] if n >= 1_000_000 else []
                            yield pytest.param(
                                n, bits, nq, k, threads, backend,
                                id=f"n{n}-b{bits}-nq{nq}-k{k}-t{threads}-{backend}",
                                marks=marks,
                            )


@pytest.mark.parametrize(("n", "bits", "nq", "k", "threads", "backend"), list(_params()))
def test_knn(benchmark, n, bits, nq, k, threads, backend):
    """Exact k-NN of nq random queries over n random codes."""
    benchmark.group = f"n={n} bits={bits} nq={nq} k={k} threads={threads}"
    benchmark.extra_info.update(n=n, bits=bits, nq=nq, k=k, threads=threads)
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
