"""Exact k-NN over a code store on a Dask cluster.

:func:`search` cuts the store into *shard groups* (consecutive whole shards),
runs one task per group — each opens the store read-only, streams its rows
through the kernel in bounded memory and returns its local top-k — and merges
the partial results in a tree of :func:`hashsearch.merge_topk` tasks that
keeps the groups in database order. Results are identical to
``store.search(queries, k)`` and to a :class:`~hashsearch.BinaryIndex` holding the
same codes, ties included (equal distances by ascending row position).

The embedded default, with no ``client``, starts a ``LocalCluster`` of one
single-threaded worker process per core and closes it afterwards. To use an
existing cluster, pass a ``distributed.Client`` (or the scheduler address);
the store must then be reachable from every worker under the same path or URL:

>>> from dask.distributed import Client                          # doctest: +SKIP
>>> from hashsearch import CodeStore, distributed
>>> client = Client("tcp://scheduler:8786")                      # doctest: +SKIP
>>> store = CodeStore.open("s3://archive/gf1-codes.zarr",        # doctest: +SKIP
...                        storage_options={"anon": False})
>>> D, I = distributed.search(store, queries, k=10, client=client)  # doctest: +SKIP

Each task's kernel runs ``num_threads`` threads (default 1), so with one
worker thread per core the cores are not oversubscribed; give workers several
threads *or* the kernel several threads, not both. ``memory_limit`` bounds
each task's buffers, each task being one search in the sense of
:mod:`hashsearch.search.outofcore`. Only the rows committed when the search
starts are searched (a writer's buffered rows are not). See
``docs/distributed.md``.

This module owns the Dask side: shard groups, the task that searches one
group (:func:`search_task`, also run by the batch search), the reduction tree,
connecting to a cluster (:func:`connect`, :func:`total_threads`). The search
itself, the memory limit and backend resolution are
:mod:`hashsearch.search.outofcore`'s. It imports the base modules, ``backends``,
:mod:`hashsearch.search.outofcore` and ``store``; Dask inside functions.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hashsearch._system import available_cpus
from hashsearch._validate import as_codes, check_int, check_k
from hashsearch.backends import Backend
from hashsearch.search.outofcore import (
    TaskBackend,
    merge_parts,
    parse_memory_limit,
    plan_for,
    search_positions,
    task_backend,
)
from hashsearch.store._zarrio import StoreLocation

if TYPE_CHECKING:
    from hashsearch.store import CodeStore

__all__ = ["DEFAULT_SPLIT_EVERY", "connect", "local_cluster", "search", "search_task", "shard_groups", "total_threads"]

logger = logging.getLogger("hashsearch")

#: Partial results merged by one task of the reduction tree.
DEFAULT_SPLIT_EVERY = 8


def local_cluster(n_workers: int | None = None, **kwargs: Any) -> Any:
    """Start the embedded default: a ``LocalCluster`` of single-threaded worker processes.

    Args:
        n_workers: worker processes (default: one per core).
        **kwargs: more ``LocalCluster`` options.

    Returns:
        A ``distributed.LocalCluster`` (close it, or use it as a context manager).
    """
    from distributed import LocalCluster

    options: dict[str, Any] = {
        "n_workers": n_workers or available_cpus(),
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": ":0",  # random port: no clash with other clusters
    }
    options.update(kwargs)
    return LocalCluster(**options)


def shard_groups(nrows: int, shard_rows: int, shards_per_group: int) -> list[tuple[int, int]]:
    """Row ranges of consecutive groups of ``shards_per_group`` shards covering ``nrows`` rows."""
    check_int(shards_per_group, "shards_per_group")
    step = shard_rows * shards_per_group
    return [(lo, min(nrows, lo + step)) for lo in range(0, nrows, step)]


@contextlib.contextmanager
def connect(client: Any) -> Iterator[Any]:
    """The ``distributed.Client`` to submit to, closing what was started for it.

    Args:
        client: a Client (used as is, left open), a scheduler address (a Client
            is opened and closed), or None (a :func:`local_cluster` and its
            Client are started and closed).
    """
    from distributed import Client

    if client is None:
        with local_cluster() as cluster, Client(cluster) as started:
            logger.info("started a LocalCluster of %d workers", len(cluster.workers))
            yield started
    elif isinstance(client, str):
        with Client(client) as opened:
            yield opened
    else:
        yield client


def total_threads(client: Any) -> int:
    """Worker threads of the cluster behind ``client`` (at least 1)."""
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # older distributed without n_workers
        workers = client.scheduler_info()["workers"]
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def _open_reader(location: StoreLocation, nrows: int, uuid: str) -> CodeStore:
    """The store, opened read-only on a worker, checked to be the one searched.

    Raises:
        StoreError: another store (uuid) or fewer rows than when the search started.
    """
    from hashsearch.errors import StoreError
    from hashsearch.store import CodeStore

    store = CodeStore.open(location, "r")
    if store.uuid != uuid or store.committed_rows < nrows:
        store.close()
        raise StoreError(
            f"{location.describe()}: the store changed during the search "
            f"(expected store {uuid} with at least {nrows} rows, found {store.uuid} with {store.committed_rows})"
        )
    return store


def search_task(
    location: StoreLocation,
    nrows: int,
    uuid: str,
    start: int,
    stop: int,
    queries: np.ndarray,
    k: int,
    backend: TaskBackend,
    memory_limit: int,
    *,
    ids: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Dask task: the top-k of rows [start, stop) of a store, on a worker.

    One call of :func:`hashsearch.search.outofcore.search_positions` within
    ``memory_limit`` bytes (parsed; its meaning is outofcore's).

    Args:
        location, nrows, uuid: the store, and what it held when the search started.
        start, stop: rows searched. queries: uint8 (nq, code_size), validated.
        k: neighbours. backend: the kernel, made on the worker.
        ids: map the row positions to ids here.

    Returns:
        (D int32 (nq, k), row positions int64 (nq, k)), or the rows' ids with ``ids=True``.
    """
    store = _open_reader(location, nrows, uuid)
    try:
        source = store.code_source
        d, p = search_positions(source, queries, k, backend.make(), memory_limit=memory_limit, start=start, stop=stop)
        return (d, store.ids_at(p)) if ids else (d, p)
    finally:
        store.close()


def _resolve_ids(location: StoreLocation, nrows: int, uuid: str, result: tuple[np.ndarray, np.ndarray]) -> Any:
    """Task: turn the final row positions into ids."""
    store = _open_reader(location, nrows, uuid)
    try:
        return result[0], store.ids_at(result[1])
    finally:
        store.close()


def _as_store(store: Any, storage_options: dict[str, Any] | None) -> tuple[CodeStore, bool]:
    from hashsearch.store import CodeStore

    if isinstance(store, CodeStore):
        return store, False
    return CodeStore.open(store, "r", storage_options=storage_options), True


def search(
    store: CodeStore | str | os.PathLike[str],
    queries: Any,
    k: int,
    client: Any = None,
    *,
    shards_per_task: int | None = None,
    memory_limit: int | str | None = None,
    backend: str | Backend | None = "auto",
    num_threads: int | None = None,
    split_every: int = DEFAULT_SPLIT_EVERY,
    storage_options: dict[str, Any] | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest codes of each query over a code store, on Dask.

    Args:
        store: an open :class:`CodeStore`, or its path or URL. The store must be
            reachable by every worker under that path or URL.
        queries: uint8 (nq, code_size), or (code_size,) for one query.
        k: neighbours per query, >= 1.
        client: a ``distributed.Client``, a scheduler address, or None to start
            (and close) a LocalCluster of single-threaded worker processes.
        shards_per_task: shards per task (default: enough tasks for about four
            per worker thread).
        memory_limit: the limit of each task (bytes or "512MB"; default
            :data:`~hashsearch.search.outofcore.DEFAULT_MEMORY_LIMIT`): every task
            is one search in the sense of :mod:`hashsearch.search.outofcore`, so
            a worker running n tasks at once holds up to n limits.
        backend: backend name used by every task ("auto" picks per worker; an
            instance travels as its name).
        num_threads: kernel threads per task (default 1: one per worker thread).
        split_every: partial results merged per reduction task (>= 2).
        storage_options: fsspec options when ``store`` is a URL.
        progress: show a tqdm progress bar over the shard-group tasks.

    Returns:
        (D int32 (nq, k), I int64 (nq, k)): the same as ``store.search``.

    Raises:
        TypeError, ValueError: bad queries, k or options (an unparsable memory
            limit; an unknown backend); a store that workers cannot open (an
            in-memory zarr store).
        StoreError and subclasses: raised by a task (a damaged shard names its
            file; a limit too small names the minimum).
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    code_store, opened = _as_store(store, storage_options)
    try:
        q = as_codes(queries, code_store.nbits, "queries")
        k = check_k(k, code_store.ntotal, q.shape[0])
        if split_every < 2:
            raise ValueError(f"split_every must be >= 2, got {split_every}")
        task = task_backend(backend, num_threads)
        limit = parse_memory_limit(memory_limit)
        location = code_store.location
        if not location.shareable:
            raise ValueError(
                "distributed search needs a store that workers can open by path or URL, "
                f"not an in-process zarr store ({location.describe()})"
            )
        nrows = code_store.committed_rows
        if code_store.mode == "a" and code_store.ntotal > nrows:
            logger.warning(
                "%s: %d appended rows are not committed yet and are not searched (flush() first)",
                location.describe(),
                code_store.ntotal - nrows,
            )
        if q.shape[0]:
            # a limit too small for one block is refused here, before a cluster starts
            plan_for(code_store.code_source, q.shape[0], k, limit, nrows)
        uuid = code_store.uuid
        with connect(client) as dask_client:
            shard_rows = code_store.config.sizes()[0]
            if shards_per_task is None:
                tasks_wanted = 4 * total_threads(dask_client)
                nshards = -(-nrows // shard_rows)
                shards_per_task = max(1, -(-nshards // tasks_wanted))
            groups = shard_groups(nrows, shard_rows, shards_per_task) or [(0, 0)]
            q_future = dask_client.scatter(q, broadcast=True, hash=False)
            parts = [
                dask_client.submit(
                    search_task,
                    location,
                    nrows,
                    uuid,
                    lo,
                    hi,
                    q_future,
                    k,
                    task,
                    limit,
                    pure=False,
                    key=f"hashsearch-search-{uuid[:8]}-{lo}-{os.urandom(4).hex()}",
                )
                for lo, hi in groups
            ]
            logger.info("distributed search: %d queries, %d rows, %d tasks", q.shape[0], nrows, len(parts))
            if progress:
                for _ in tqdm(as_completed(parts), total=len(parts), unit="task", leave=False):
                    pass
            level: Sequence[Any] = parts
            while len(level) > 1:
                level = [
                    dask_client.submit(merge_parts, k, *level[i : i + split_every], pure=False)
                    if len(level[i : i + split_every]) > 1
                    else level[i]
                    for i in range(0, len(level), split_every)
                ]
            final = dask_client.submit(_resolve_ids, location, nrows, uuid, level[0], pure=False)
            return final.result()
    finally:
        if opened:
            code_store.close()
