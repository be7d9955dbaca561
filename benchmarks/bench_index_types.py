"""Index types beside the exact flat scan: latency per query, recall@k, memory.

Every group (codes, queries, n, bits, k) holds one benchmark per index type,
built from :func:`hashsearch.index_factory` strings and searched in the same run,
on the same data, with the same thread count (``HASHSEARCH_BENCH_THREADS``,
default 1: FAISS's OpenMP pool, our flat kernels and multi-index hashing alike).
Each benchmark records in ``extra_info``: recall@k against the exact flat scan (a
returned code counts when its distance is at most the exact k-th distance, so tie
order does not matter), the share of queries whose nearest distance is exact, the
build time, the index's own memory estimate (``info()["memory_bytes"]``), the
queries per round and, for multi-index hashing, which path answered
(``search_path``: "mih", "flat" or "mixed", from ``last_stats``: the evidence of its
fallback).

Data (all seeded, :mod:`hashsearch.synthetic`):

- ``uniform`` codes, with ``uniform`` queries (no near neighbour) and ``near-f``
  queries: stored codes with f = 0, 2, 4, 8 random bits flipped;
- ``clustered`` codes (clusters of about 16 codes, each bit flipped from the centre
  with probability 2 / nbits: about 2 bits from it, nearly all within 4, like trained
  hashing codes), ``near-centre`` queries: stored codes with 2 more bits flipped
  (about 4 bits from their centre);
- ``clustered-4`` codes: the issue's bar literally (:func:`hashsearch.synthetic.bounded_clusters`:
  clusters of exactly 16 codes, every code within 4 bits of its centre), ``centre``
  queries: a cluster's centre with 0, 1 or 2 bits flipped;
- ``model`` codes: a ``.npy`` of packed codes from a trained encoder (for example
  ``hashsearch encode`` of the fake-data trainer's model), when
  ``HASHSEARCH_BENCH_MODEL_CODES`` names one; queries are stored codes, 2 bits flipped.

Sizes (environment variables, so the same file serves a laptop check and a server run):

- ``HASHSEARCH_BENCH_N``: database sizes, comma-separated (default ``1000000``;
  the issue's report also wants ``10000000``);
- ``HASHSEARCH_BENCH_BITS`` (default ``64,128``), ``HASHSEARCH_BENCH_K``
  (default ``1,10,100``), ``HASHSEARCH_BENCH_NQ`` (queries per round, default 200);
- ``HASHSEARCH_BENCH_TYPES``: factory strings to run, comma-separated (default:
  Flat, BFlat, BIVF{~4 sqrt(n)}, BHNSW32, BHash{b}, BHash{nbits/16}x16, MIH when present);
- ``HASHSEARCH_BENCH_QUICK=1``: 20k codes, 50 queries, 64 bits, k 1 and 10 (a check
  that everything runs, in seconds).

Run::

    pytest benchmarks/bench_index_types.py --benchmark-json=index-types.json
    python benchmarks/index_types_report.py index-types.json     # rewrites docs/index-types.md
    HASHSEARCH_BENCH_QUICK=1 pytest benchmarks/bench_index_types.py --benchmark-disable   # does it run?
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from hashsearch import index_factory
from hashsearch.index.base import IndexType
from hashsearch.synthetic import bounded_clusters, clustered_codes, flip_random_bits, random_codes

faiss = pytest.importorskip("faiss")


def _ints(name: str, default: str) -> list[int]:
    return [int(v) for v in os.environ.get(name, default).split(",") if v.strip()]


@dataclass(frozen=True)
class BenchConfig:
    """What the benchmark sweeps (read from the environment, see the module docstring)."""

    sizes: tuple[int, ...]
    bits: tuple[int, ...]
    ks: tuple[int, ...]
    nq: int
    threads: int
    types: tuple[str, ...] | None
    model_codes: str | None
    flips: tuple[int, ...] = field(default=(0, 2, 4, 8))

    @classmethod
    def from_env(cls) -> BenchConfig:
        quick = os.environ.get("HASHSEARCH_BENCH_QUICK", "") == "1"
        types = os.environ.get("HASHSEARCH_BENCH_TYPES")
        return cls(
            sizes=tuple(_ints("HASHSEARCH_BENCH_N", "20000" if quick else "1000000")),
            bits=tuple(_ints("HASHSEARCH_BENCH_BITS", "64" if quick else "64,128")),
            ks=tuple(_ints("HASHSEARCH_BENCH_K", "1,10" if quick else "1,10,100")),
            nq=_ints("HASHSEARCH_BENCH_NQ", "50" if quick else "200")[0],
            threads=_ints("HASHSEARCH_BENCH_THREADS", "1")[0],
            types=tuple(t.strip() for t in types.split(",") if t.strip()) if types else None,
            model_codes=os.environ.get("HASHSEARCH_BENCH_MODEL_CODES") or None,
        )


CONFIG = BenchConfig.from_env()
HAVE_MIH = importlib.util.find_spec("hashsearch.index.mih") is not None


def default_types(n: int, nbits: int) -> list[str]:
    """The index types compared for n codes of nbits bits."""
    nlist = max(16, 1 << round(math.log2(4 * math.sqrt(n))))
    types = ["Flat", "BFlat", f"BIVF{nlist}", "BHNSW32", "BHash16", f"BHash{nbits // 16}x16"]
    if HAVE_MIH:
        types.append("MIH")
    return types


# -- data ------------------------------------------------------------------------------
def database(kind: str, n: int, nbits: int) -> np.ndarray:
    if kind == "uniform":
        return random_codes(n, nbits, seed=20260 + nbits)
    if kind == "clustered":
        codes, _ = clustered_codes(n, nbits, n_clusters=max(1, n // 16), flip_prob=2.0 / nbits, seed=31 + nbits)
        return codes
    if kind == "clustered-4":
        codes, _, centres = bounded_clusters(n, nbits, cluster_size=16, radius=4, seed=41 + nbits)
        _CENTRES[(n, nbits)] = centres
        return codes
    codes = np.load(CONFIG.model_codes)
    if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] * 8 != nbits:
        pytest.skip(f"{CONFIG.model_codes}: not packed {nbits}-bit codes")
    return np.ascontiguousarray(codes[:n])


def flip_bits(codes: np.ndarray, nflip: int, seed: int) -> np.ndarray:
    """Copies of ``codes`` with ``nflip`` distinct random bits flipped in each."""
    out = codes.copy()
    rng = np.random.default_rng(seed)
    nbits = codes.shape[1] * 8
    for row in range(out.shape[0]):
        for bit in rng.choice(nbits, nflip, replace=False):
            out[row, bit // 8] ^= np.uint8(1 << (bit % 8))
    return out


def queries(codes_kind: str, query_kind: str, codes: np.ndarray, nq: int, nbits: int) -> np.ndarray:
    rng = np.random.default_rng(7 + nbits)
    if query_kind == "uniform":
        return random_codes(nq, nbits, seed=99 + nbits)
    picks = codes[rng.choice(codes.shape[0], nq, replace=codes.shape[0] < nq)]
    if query_kind == "near-centre":  # a stored code 2 bits from its centre: ~2 bits from the centre again
        return flip_bits(picks, 2, seed=5)
    if query_kind == "centre":  # a centre of clustered-4 codes, 0-2 bits flipped
        centres = _CENTRES[(codes.shape[0], nbits)]
        return flip_random_bits(centres[rng.choice(centres.shape[0], nq, replace=centres.shape[0] < nq)], 2, seed=6)
    return flip_bits(picks, int(query_kind.split("-")[1]), seed=11)


def datasets() -> list[tuple[str, str]]:
    """(codes kind, query kind) pairs."""
    pairs = [("uniform", "uniform")] + [("uniform", f"near-{f}") for f in CONFIG.flips]
    pairs.append(("clustered", "near-centre"))
    pairs.append(("clustered-4", "centre"))
    if CONFIG.model_codes:
        pairs.append(("model", "near-2"))
    return pairs


# -- cached state: one database (and its indexes) at a time -----------------------------
_CENTRES: dict[tuple[int, int], np.ndarray] = {}  # (n, bits) -> centres of the clustered-4 codes
_CURRENT: dict[str, object] = {"key": None, "codes": None, "indexes": {}, "truth": {}}


def _state(codes_kind: str, n: int, nbits: int) -> dict:
    key = (codes_kind, n, nbits)
    if _CURRENT["key"] != key:
        _CURRENT.update(key=key, codes=database(codes_kind, n, nbits), indexes={}, truth={})
    return _CURRENT


def built_index(state: dict, description: str, nbits: int) -> tuple[IndexType, float]:
    indexes = state["indexes"]
    if description not in indexes:
        faiss.omp_set_num_threads(CONFIG.threads)
        # our types take their threads as a parameter (FAISS's come from omp_set_num_threads)
        params = {"num_threads": CONFIG.threads} if description == "Flat" or description.startswith("MIH") else {}
        index = index_factory(nbits, description, **params)
        start = time.perf_counter()
        index.add(state["codes"])
        indexes[description] = (index, time.perf_counter() - start)
    return indexes[description]


def truth(state: dict, query_kind: str, q: np.ndarray, k: int, nbits: int) -> tuple[np.ndarray, np.ndarray]:
    key = (query_kind, k)
    if key not in state["truth"]:
        flat, _ = built_index(state, "Flat", nbits)
        state["truth"][key] = flat.search(q, k)
    return state["truth"][key]


def recall(dist: np.ndarray, ids: np.ndarray, exact_dist: np.ndarray) -> tuple[float, float]:
    """(recall@k counting ties at the k-th exact distance, share of queries with the exact nearest)."""
    hits = (ids >= 0) & (dist <= exact_dist[:, -1:])
    return float(hits.sum() / exact_dist.size), float((dist[:, 0] == exact_dist[:, 0]).mean())


def _cases():
    for n in CONFIG.sizes:
        for nbits in CONFIG.bits:
            for codes_kind, query_kind in datasets():
                for k in CONFIG.ks:
                    for description in CONFIG.types or default_types(n, nbits):
                        yield pytest.param(
                            n,
                            nbits,
                            codes_kind,
                            query_kind,
                            k,
                            description,
                            id=f"{codes_kind}-{query_kind}-n{n}-b{nbits}-k{k}-{description}",
                        )


@pytest.mark.parametrize(("n", "nbits", "codes_kind", "query_kind", "k", "description"), list(_cases()))
def test_search(benchmark, n, nbits, codes_kind, query_kind, k, description):
    """k-NN of ``nq`` queries with one index type; recall against the exact flat scan."""
    state = _state(codes_kind, n, nbits)
    q = queries(codes_kind, query_kind, state["codes"], CONFIG.nq, nbits)
    exact_dist, _ = truth(state, query_kind, q, k, nbits)
    index, build_s = built_index(state, description, nbits)
    faiss.omp_set_num_threads(CONFIG.threads)
    benchmark.group = f"{codes_kind}/{query_kind} n={n} bits={nbits} k={k}"
    dist, ids = benchmark.pedantic(index.search, args=(q, k), rounds=5, iterations=1, warmup_rounds=1)
    rec, top1 = recall(dist, ids, exact_dist)
    info = index.info()
    stats = getattr(index, "last_stats", None) or {}
    benchmark.extra_info.update(
        index_type=description,
        codes=codes_kind,
        queries=query_kind,
        n=int(state["codes"].shape[0]),  # a model's codes may be fewer than asked
        bits=nbits,
        k=k,
        nq=int(q.shape[0]),
        threads=CONFIG.threads,
        exact=info["exact"],
        recall=rec,
        top1_exact=top1,
        build_s=build_s,
        memory_bytes=info["memory_bytes"],
        params=info["params"],
        search_path=stats.get("path"),
        search_reason=stats.get("reason"),
    )
    assert dist.shape == ids.shape == (q.shape[0], k)
    if info["exact"]:
        np.testing.assert_array_equal(dist, exact_dist)
