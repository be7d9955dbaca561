"""Store benchmarks: out-of-core search vs codes in RAM, append throughput, batch querying.

Targets (issue 3), measured on local disk with 2 kernel threads:

- out-of-core search of 100M x 64-bit codes, 100 queries, k = 10: at most 2x the
  same search with the codes in RAM (``backend=store`` vs ``backend=ram`` in group
  ``store-search n=100000000 ...``; FAISS ``IndexBinaryFlat`` in RAM beside them).
  ``store`` reads from the page cache (the store was read before); ``store-cold``
  evicts the store's files from the page cache before every round, so the codes
  come from the disk;
- append throughput at least 50M codes per minute (``extra_info.codes_per_min``);
- 1M queries x 10M codes (64 bits, k = 10) written to a Zarr results group: wall
  time, comparisons/s, and 1 vs 2 Dask workers (``extra_info``).

Databases are created once in a cache folder (``$HASHSEARCH_BENCH_CACHE``, default
``/tmp/hashsearch-bench``; 100M codes take 0.8 GB there) and reused; the repo gets
no data. The first run of a size spends a while creating it (not timed).

Quick versions run by default (a few seconds each); the full-size ones are marked
``slow`` (deselected by the project's default ``-m "not slow and not gpu"``)::

    pytest benchmarks/bench_store.py                                  # quick sizes
    pytest benchmarks/bench_store.py -m slow --benchmark-json=store.json   # full sizes
    python benchmarks/report.py store.json                            # ratios to FAISS

Run the full ones on a quiet machine: they take about 10-25 minutes, most of it the
1M x 10M batch (run three times: 2 kernel threads locally, then 1 and 2 Dask workers).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from hashsearch import BinaryIndex, CodeStore
from hashsearch.synthetic import random_codes

CACHE = Path(os.environ.get("HASHSEARCH_BENCH_CACHE", "/tmp/hashsearch-bench"))
THREADS = 2
NBITS = 64
K = 10
NQ = 100
#: Rows generated and appended per step when a cached database is built.
_BUILD_STEP = 1 << 22


def cached_store(n: int, nbits: int = NBITS, seed: int = 0) -> Path:
    """A store of ``n`` random codes in the cache folder, created on first use."""
    path = CACHE / f"codes-n{n}-b{nbits}-s{seed}.zarr"
    marker = path / "COMPLETE"
    if marker.exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    with CodeStore.create(path, nbits) as store:
        for lo in range(0, n, _BUILD_STEP):
            store.append(random_codes(min(_BUILD_STEP, n - lo), nbits, seed=seed * 1000 + lo // _BUILD_STEP))
    marker.write_text("ok\n")
    return path


def _queries(nq: int, seed: int = 7) -> np.ndarray:
    return random_codes(nq, NBITS, seed=seed)


_RAM: dict[Path, BinaryIndex] = {}
_FAISS: dict[Path, object] = {}


def _ram_index(path: Path) -> BinaryIndex:
    if path not in _RAM:
        _RAM.clear()
        _RAM[path] = BinaryIndex.load(path, "native", num_threads=THREADS)
    return _RAM[path]


def _faiss_index(path: Path):
    faiss = pytest.importorskip("faiss")
    if path not in _FAISS:
        _FAISS.clear()
        index = faiss.IndexBinaryFlat(NBITS)
        index.add(np.ascontiguousarray(_ram_index(path).codes))
        _FAISS[path] = index
    return _FAISS[path]


def _search_case(benchmark, n: int, backend: str) -> None:
    path = cached_store(n)
    queries = _queries(NQ)
    benchmark.group = f"store-search n={n} bits={NBITS} nq={NQ} k={K} threads={THREADS}"
    benchmark.extra_info.update(n=n, nq=NQ, k=K, threads=THREADS)
    if backend == "ram":
        index = _ram_index(path)
        index.search(queries, K)
        benchmark.pedantic(index.search, args=(queries, K), rounds=5, iterations=1)
    elif backend == "faiss":
        import faiss

        index = _faiss_index(path)
        faiss.omp_set_num_threads(THREADS)
        benchmark.pedantic(index.search, args=(queries, K), rounds=3, iterations=1)
    else:
        store = CodeStore.open(path)
        kwargs = {"backend": "native", "num_threads": THREADS}
        if backend == "store-cold":
            # every round reads the codes from disk: the store's files leave the page cache first
            result = benchmark.pedantic(
                store.search, args=(queries, K), kwargs=kwargs, setup=lambda: _evict(path), rounds=3, iterations=1
            )
        else:
            store.search(queries[:1], K, **kwargs)  # warm the page cache
            result = benchmark.pedantic(store.search, args=(queries, K), kwargs=kwargs, rounds=5, iterations=1)
        # the same search in RAM, timed here too, for the ratio the target is about
        index = _ram_index(path)
        best = min(_timed(index.search, queries, K) for _ in range(5))
        benchmark.extra_info["ram_s"] = best
        benchmark.extra_info["ratio_to_ram"] = benchmark.stats.stats.min / best
        np.testing.assert_array_equal(result[1], index.search(queries, K)[1])


def _evict(path: Path) -> None:
    """Drop the (clean) pages of every file of a store from the OS page cache."""
    for file in path.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


@pytest.mark.parametrize("backend", ["store", "store-cold", "ram", "faiss"])
def test_search_quick(benchmark, backend):
    _search_case(benchmark, 4_000_000, backend)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["store", "store-cold", "ram", "faiss"])
def test_search_100m(benchmark, backend):
    _search_case(benchmark, 100_000_000, backend)


def _append_case(benchmark, tmp_path: Path, n: int) -> None:
    step = 1 << 20  # e.g. what an encoder hands over per batch
    codes = random_codes(step, NBITS, seed=3)  # appended again and again: generation is not timed
    benchmark.group = f"store-append n={n} bits={NBITS}"

    def run() -> None:
        path = tmp_path / "append.zarr"
        with CodeStore.create(path, NBITS, overwrite=True) as store:
            for lo in range(0, n, step):
                store.append(codes[: min(step, n - lo)])

    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["codes_per_min"] = n / benchmark.stats.stats.min * 60
    shutil.rmtree(tmp_path / "append.zarr", ignore_errors=True)


def test_append_quick(benchmark, tmp_path):
    _append_case(benchmark, tmp_path, 5_000_000)


@pytest.mark.slow
def test_append_50m(benchmark, tmp_path):
    _append_case(benchmark, tmp_path, 50_000_000)


def _batch_case(benchmark, tmp_path: Path, nq: int, n: int, mode: str, query_block: int) -> None:
    from hashsearch.search.batch import batch_search

    path = cached_store(n, seed=1)
    queries = random_codes(nq, NBITS, seed=11)
    benchmark.group = f"store-batch nq={nq} n={n} bits={NBITS} k={K}"
    out = tmp_path / "results.zarr"
    cluster = client = None
    if mode.startswith("dask"):
        from distributed import Client

        from hashsearch.search.distributed import local_cluster

        cluster = local_cluster(n_workers=int(mode[-1]))
        client = Client(cluster)
    try:

        def run():
            return batch_search(
                path, queries, K, out, client=client, overwrite=True, progress=False, query_block=query_block,
                num_threads=THREADS if client is None else 1,
            )

        result = benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        if client is not None:
            client.close()
            cluster.close()
    benchmark.extra_info.update(
        mode=mode,
        query_block=query_block,
        blocks=result.blocks,
        wall_s=result.seconds,
        comparisons=result.comparisons,
        comparisons_per_s=result.comparisons_per_s,
    )
    shutil.rmtree(out, ignore_errors=True)


@pytest.mark.parametrize("backend", ["local-2threads", "dask-1", "dask-2"])
def test_batch_quick(benchmark, tmp_path, backend):
    _batch_case(benchmark, tmp_path, 20_000, 1_000_000, backend, query_block=2000)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local-2threads", "dask-1", "dask-2"])
def test_batch_1m_x_10m(benchmark, tmp_path, backend):
    _batch_case(benchmark, tmp_path, 1_000_000, 10_000_000, backend, query_block=1 << 15)
