"""The engine demo: index 1M random codes, query them, and time it beside FAISS.

Queries are stored codes with a few bits flipped, so every query has a known
answer (its source code at distance ``flips``) and the demo checks it finds it.
``hashsearch demo`` runs this and prints the report; :func:`run_engine_demo`
returns it as a dict.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hashsearch.backends import default_num_threads
from hashsearch.index import BinaryIndex
from hashsearch.synthetic import random_codes

__all__ = ["EngineDemoConfig", "run_engine_demo"]

logger = logging.getLogger("hashsearch")


@dataclass(frozen=True)
class EngineDemoConfig:
    """Parameters of the engine demo.

    Attributes:
        n: codes in the database.
        nbits: bits per code.
        nq: queries in the batch search.
        k: neighbours per query.
        flips: bits flipped in each query relative to its source code.
        single_repeats: single-query searches timed (the median is reported).
        num_threads: kernel threads (None: all available CPUs).
        backend: hashsearch backend name or "auto".
        compare_faiss: also time ``faiss.IndexBinaryFlat`` on the same data.
        seed: RNG seed of the codes and queries.
    """

    n: int = 1_000_000
    nbits: int = 64
    nq: int = 1000
    k: int = 10
    flips: int = 3
    single_repeats: int = 50
    num_threads: int | None = None
    backend: str = "auto"
    compare_faiss: bool = True
    seed: int = 0


def _make_queries(codes: np.ndarray, nq: int, flips: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    source = rng.choice(codes.shape[0], size=nq, replace=codes.shape[0] < nq)
    queries = codes[source].copy()
    nbits = codes.shape[1] * 8
    for row in range(nq):
        for bit in rng.choice(nbits, size=min(flips, nbits), replace=False):
            queries[row, bit // 8] ^= np.uint8(1 << (bit % 8))
    return queries, source.astype(np.int64)


def _median_time(fn: Any, repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _time_engine(
    add: Any, search: Any, codes: np.ndarray, queries: np.ndarray, config: EngineDemoConfig
) -> tuple[float, float, float, np.ndarray, np.ndarray]:
    """Time one engine the same way for hashsearch and FAISS.

    Returns:
        (add seconds, median single-query seconds, batch seconds, D, I of the batch).
    """
    t0 = time.perf_counter()
    add(codes)
    add_s = time.perf_counter() - t0
    single_s = _median_time(lambda: search(queries[:1], config.k), config.single_repeats)
    t0 = time.perf_counter()
    D, ids = search(queries, config.k)
    batch_s = time.perf_counter() - t0
    return add_s, single_s, batch_s, D, ids


def run_engine_demo(config: EngineDemoConfig = EngineDemoConfig()) -> dict[str, Any]:
    """Build an index of random codes, search it, and time hashsearch (and FAISS).

    Returns:
        A report: the configuration, the backend and SIMD path, timings in seconds
        (``add_s``, ``single_query_s``, ``batch_s``), throughput
        (``comparisons_per_s``), correctness checks (``found_source``: fraction of
        queries whose source code was returned at distance ``flips`` or less), and,
        with FAISS, its timings, the speed-ups and whether the distances agree.
    """
    threads = config.num_threads or default_num_threads()
    rng = np.random.default_rng(config.seed + 1)
    t0 = time.perf_counter()
    codes = random_codes(config.n, config.nbits, seed=config.seed)
    queries, source = _make_queries(codes, config.nq, config.flips, rng)
    gen_s = time.perf_counter() - t0
    logger.info("generated %d codes of %d bits in %.2f s", config.n, config.nbits, gen_s)

    index = BinaryIndex(config.nbits, backend=config.backend, num_threads=threads)
    add_s, single_s, batch_s, D, _ = _time_engine(index.add, index.search, codes, queries, config)
    t0 = time.perf_counter()
    lims, _, range_ids = index.range_search(queries, config.flips)
    range_s = time.perf_counter() - t0
    found = np.array([source[q] in range_ids[lims[q] : lims[q + 1]] for q in range(config.nq)])

    report: dict[str, Any] = {
        "config": asdict(config) | {"num_threads": threads},
        "backend": index.backend,
        "simd_level": index.simd_level,
        "generate_s": gen_s,
        "add_s": add_s,
        "single_query_s": single_s,
        "batch_s": batch_s,
        "batch_queries_per_s": config.nq / batch_s,
        "comparisons_per_s": config.nq * config.n / batch_s,
        "range_search_s": range_s,
        "range_results": int(lims[-1]),
        "found_source": float(found.mean()),
        "top1_distance_max": int(D[:, 0].max()) if config.nq and config.n else None,
    }
    if config.compare_faiss:
        faiss_report = _faiss_side(config, codes, queries, D, threads)
        report.update(faiss_report)
        if "faiss_batch_s" in faiss_report:
            report["speedup_single_query"] = faiss_report["faiss_single_query_s"] / single_s
            report["speedup_batch"] = faiss_report["faiss_batch_s"] / batch_s
    return report


def _faiss_side(
    config: EngineDemoConfig, codes: np.ndarray, queries: np.ndarray, D: np.ndarray, threads: int
) -> dict[str, Any]:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss is a core dependency
        return {"faiss": f"not available: {exc}"}
    faiss.omp_set_num_threads(threads)
    flat = faiss.IndexBinaryFlat(config.nbits)
    add_s, single_s, batch_s, fD, _ = _time_engine(flat.add, flat.search, codes, queries, config)
    return {
        "faiss_version": faiss.__version__,
        "faiss_add_s": add_s,
        "faiss_single_query_s": single_s,
        "faiss_batch_s": batch_s,
        "faiss_distances_equal": bool(np.array_equal(fD, D)),
    }
