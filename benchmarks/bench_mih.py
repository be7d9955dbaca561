"""Multi-index hashing beside the flat scans: the bars of issue 9 (item 4).

One group per (codes, queries, k), each holding three benchmarks searched in the same run,
on the same data, on one thread: ``MIH`` (:class:`hashsearch.index.mih.MultiIndexHashing`,
``policy="auto"``), ``Flat`` (our native scan, :class:`hashsearch.BinaryIndex`) and
``BFlat`` (FAISS ``IndexBinaryFlat``). MIH's results are checked equal to the flat scan's
(it is exact), and its ``extra_info`` records which path answered (``path``,
``queries_mih``, ``queries_flat``, ``reason``), the probing work per query (``lookups``,
``candidates``) and the pigeonhole arithmetic of the case: for uniform codes the expected
k-th neighbour distance ``D_k`` (the smallest d with ``n * P[Binomial(nbits, 1/2) <= d] >=
k``) and the substring radius ``floor(D_k / m)`` that proving it needs, with the number of
buckets that radius means (``m * sum_s C(b, s)``, ``b = nbits / m``). Where that is a
sizeable share of ``n`` the tables cannot win, and MIH must fall back (``path == "flat"``).

Data (seeded):

- ``clustered``: clusters of 16 codes, each its centre with up to 4 random bits flipped
  (as trained hashing codes of one class are; :func:`hashsearch.synthetic.bounded_clusters`,
  stored in random order); ``near-centre`` queries: a centre with 2
  bits flipped; k 1, 10, 100 (bar: k = 10 at 10M codes, MIH at least 30x faster than Flat);
- ``uniform`` codes with ``near-f`` queries (a stored code with f = 0, 2, 4 bits flipped),
  k 1 (bar: at least 100x faster), and ``uniform`` queries (no near neighbour), k 1, 10,
  100 (bar: at most 1.2x slower: the fallback).

Sizes: ``HASHSEARCH_BENCH_MIH_N`` (default ``1000000``; the bars are stated at
``10000000``), ``HASHSEARCH_BENCH_MIH_BITS`` (default ``64``), ``HASHSEARCH_BENCH_NQ``
(queries per round, default 200), ``HASHSEARCH_BENCH_THREADS`` (default 1).

Run::

    pytest benchmarks/bench_mih.py --benchmark-json=mih.json
    HASHSEARCH_BENCH_MIH_N=10000000 pytest benchmarks/bench_mih.py --benchmark-json=mih-10m.json
    HASHSEARCH_BENCH_MIH_N=20000 pytest benchmarks/bench_mih.py --benchmark-disable   # does it run?

``benchmarks/bench_index_types.py`` runs ``MIH`` too, beside every other index type, on
its own data sweep.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest

from hashsearch import BinaryIndex
from hashsearch.synthetic import bounded_clusters, random_codes

faiss = pytest.importorskip("faiss")
mih = pytest.importorskip("hashsearch.index.mih")


def _ints(name: str, default: str) -> list[int]:
    return [int(v) for v in os.environ.get(name, default).split(",") if v.strip()]


SIZES = _ints("HASHSEARCH_BENCH_MIH_N", "1000000")
BITS = _ints("HASHSEARCH_BENCH_MIH_BITS", "64")
NQ = _ints("HASHSEARCH_BENCH_NQ", "200")[0]
THREADS = _ints("HASHSEARCH_BENCH_THREADS", "1")[0]
CLUSTER = 16  # codes per cluster
SPREAD = 4  # most bits a code differs from its centre
TYPES = ("MIH", "Flat", "BFlat")

#: (codes, queries, k) of each group.
CASES = (
    [("clustered", "near-centre", k) for k in (1, 10, 100)]
    + [("uniform", f"near-{f}", 1) for f in (0, 2, 4)]
    + [("uniform", "uniform", k) for k in (1, 10, 100)]
)


# -- data ------------------------------------------------------------------------------
def exact_flips(codes: np.ndarray, nflip: int, seed: int) -> np.ndarray:
    """Copies of ``codes`` with exactly ``nflip`` distinct bits flipped in each row."""
    rng = np.random.default_rng(seed)
    nbits = codes.shape[1] * 8
    out = codes.copy()
    for row in range(out.shape[0]):
        for bit in rng.choice(nbits, nflip, replace=False):
            out[row, bit // 8] ^= np.uint8(1 << (bit % 8))
    return out


_DATA: dict = {}


def data(kind: str, n: int, nbits: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(codes, cluster centres or None), cached for the session."""
    key = (kind, n, nbits)
    if key not in _DATA:
        _DATA.clear()  # one database at a time
        if kind == "uniform":
            _DATA[key] = (random_codes(n, nbits, seed=41 + nbits), None)
        else:
            codes, _, centres = bounded_clusters(n, nbits, cluster_size=CLUSTER, radius=SPREAD, seed=43 + nbits)
            _DATA[key] = (codes, centres)
    return _DATA[key]


def queries(kind: str, query_kind: str, n: int, nbits: int) -> np.ndarray:
    codes, centres = data(kind, n, nbits)
    rng = np.random.default_rng(47 + nbits)
    if query_kind == "uniform":
        return random_codes(NQ, nbits, seed=48 + nbits)
    if query_kind == "near-centre":
        return exact_flips(centres[rng.choice(centres.shape[0], NQ)], 2, seed=49)
    picks = codes[rng.choice(n, NQ)]
    return exact_flips(picks, int(query_kind.split("-")[1]), seed=50)


_INDEXES: dict = {}


def built(kind: str, n: int, nbits: int, description: str):
    """(index, build seconds), cached per database."""
    key = (kind, n, nbits, description)
    if key not in _INDEXES:
        if all(k[:3] != key[:3] for k in _INDEXES):
            _INDEXES.clear()
        codes, _ = data(kind, n, nbits)
        start = time.perf_counter()
        if description == "MIH":
            index = mih.MultiIndexHashing(nbits, num_threads=THREADS)
            index.add(codes)
        elif description == "Flat":
            index = BinaryIndex(nbits, backend="native", num_threads=THREADS)
            index.add(codes)
        else:
            faiss.omp_set_num_threads(THREADS)
            index = faiss.IndexBinaryFlat(nbits)
            index.add(codes)
        _INDEXES[key] = (index, time.perf_counter() - start)
    return _INDEXES[key]


# -- the pigeonhole arithmetic ---------------------------------------------------------
def uniform_kth_distance(n: int, nbits: int, k: int) -> int:
    """Expected distance of the k-th nearest of n uniform codes: the smallest d with
    n * P[Binomial(nbits, 1/2) <= d] >= k."""
    below = 0.0
    for d in range(nbits + 1):
        below += math.comb(nbits, d) / 2.0**nbits
        if n * below >= k:
            return d
    return nbits


def pigeonhole(n: int, nbits: int, k: int, m: int) -> dict:
    """What proving uniform codes' k-th distance costs MIH with m tables."""
    dk = uniform_kth_distance(n, nbits, k)
    radius = dk // m
    b = nbits // m
    buckets = m * sum(math.comb(b, s) for s in range(radius + 1))
    return {
        "uniform_kth_distance": dk,
        "substring_radius": radius,
        "buckets_to_probe": buckets,
        "expected_candidates": buckets * n / 2.0**b,
    }


def _cases():
    for n in SIZES:
        for nbits in BITS:
            for kind, query_kind, k in CASES:
                for description in TYPES:
                    yield pytest.param(
                        n,
                        nbits,
                        kind,
                        query_kind,
                        k,
                        description,
                        id=f"{kind}-{query_kind}-n{n}-b{nbits}-k{k}-{description}",
                    )


@pytest.mark.parametrize(("n", "nbits", "kind", "query_kind", "k", "description"), list(_cases()))
def test_mih_beside_flat(benchmark, n, nbits, kind, query_kind, k, description):
    """k-NN of NQ queries by MIH, our flat scan and FAISS's, one thread."""
    q = queries(kind, query_kind, n, nbits)
    index, build_s = built(kind, n, nbits, description)
    benchmark.group = f"mih {kind}/{query_kind} n={n} bits={nbits} k={k}"
    faiss.omp_set_num_threads(THREADS)
    dist, _ = benchmark.pedantic(index.search, args=(q, k), rounds=3, iterations=1, warmup_rounds=1)
    flat, _ = built(kind, n, nbits, "Flat")
    exact_dist, exact_ids = flat.search(q, k)
    np.testing.assert_array_equal(dist, exact_dist)
    benchmark.extra_info.update(
        index_type=description,
        codes=kind,
        queries=query_kind,
        n=n,
        bits=nbits,
        k=k,
        nq=NQ,
        threads=THREADS,
        build_s=build_s,
    )
    if description == "MIH":
        _, got_ids = index.search(q, k)
        np.testing.assert_array_equal(got_ids, exact_ids)  # ties by position, as the flat scan
        stats = index.last_stats
        benchmark.extra_info.update(
            m=index.m,
            path=stats["path"],
            reason=stats["reason"],
            queries_mih=stats["queries_mih"],
            queries_flat=stats["queries_flat"],
            lookups_per_query=stats["lookups"] / NQ,
            candidates_per_query=stats["candidates"] / NQ,
            memory_bytes=index.memory_bytes(),
            pigeonhole=pigeonhole(n, nbits, k, index.m),
        )
