"""Batch querying: millions of queries against millions of codes, resumable.

:func:`batch_search` answers a query set (an array, or a code store) block by
block against a database (a code store searched out of core, or an in-memory
:class:`~hashsearch.BinaryIndex`), in bounded memory, and writes the results into
a Zarr v3 group as it goes:

=======  =====================  ===============================================
array    dtype, shape           content
=======  =====================  ===============================================
D        int32 (nq, k)          Hamming distances, ascending per row
I        int64 (nq, k)          database ids (-1 pads rows when k > database)
done     uint8 (nblocks,)       1 once query block b's rows of D and I are written
=======  =====================  ===============================================

A block is marked done only after its D and I are written, so an interrupted
run (Ctrl-C, ``kill -9``, a lost machine) is resumed by running the same call
again: finished blocks are skipped, and the results are identical to an
uninterrupted run (every block is an exact search). The group's attributes
record what the results are for (database id and row count, a fingerprint of
the queries, k, block size); a rerun with other inputs is refused rather than
mixed in.

With a Dask ``client``, query blocks run as tasks on the workers (each streams
the database store), and the client writes results as they arrive.

>>> from hashsearch.search.batch import batch_search, load_results      # doctest: +SKIP
>>> result = batch_search("db.zarr", queries, k=10, output="results.zarr")  # doctest: +SKIP
>>> D, I = load_results("results.zarr")                         # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hashsearch._validate import as_codes, check_int, check_k
from hashsearch.backends import Backend
from hashsearch.errors import IncompatibleStoreError, StoreError
from hashsearch.search.outofcore import (
    default_query_block,
    parse_memory_limit,
    plan_for,
    positions_to_ids,
    resolve_backend,
    search_positions,
    task_backend,
)
from hashsearch.store._zarrio import StoreLocation, read_json, resolve_location

if TYPE_CHECKING:
    from hashsearch.index import BinaryIndex
    from hashsearch.search.outofcore import TaskBackend
    from hashsearch.store import CodeStore

__all__ = ["RESULTS_FORMAT", "BatchResult", "batch_search", "load_results"]

logger = logging.getLogger("hashsearch")

#: ``format`` attribute of a results group.
RESULTS_FORMAT = "hashsearch.batch-results"
_RESULTS_VERSION = 1
_DONE_CHUNK = 1 << 16


@dataclass
class BatchResult:
    """What a :func:`batch_search` run did.

    Attributes:
        output: path or URL of the results group.
        nq, k: queries and neighbours.
        ntotal: database rows searched.
        blocks: query blocks in all; ``skipped`` were already done, ``computed`` ran now.
        seconds: wall time of this run.
        comparisons: code comparisons made by this run (queries computed x ntotal).
    """

    output: str
    nq: int
    k: int
    ntotal: int
    query_block: int
    blocks: int
    skipped: int
    computed: int
    seconds: float
    comparisons: int

    @property
    def complete(self) -> bool:
        return self.skipped + self.computed == self.blocks

    @property
    def comparisons_per_s(self) -> float:
        return self.comparisons / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["complete"] = self.complete
        out["comparisons_per_s"] = self.comparisons_per_s
        return out


class _Queries:
    """A query set: an array in memory or the codes of a store."""

    def __init__(self, queries: Any, nbits: int, storage_options: dict[str, Any] | None) -> None:
        from hashsearch.store import CodeStore

        self._store: CodeStore | None = None
        self._array: np.ndarray | None = None
        self._owned = False
        if isinstance(queries, CodeStore):
            self._store = queries
        elif (isinstance(queries, str) or hasattr(queries, "__fspath__")) and str(queries).endswith(".npy"):
            self._array = as_codes(np.load(queries, mmap_mode="r", allow_pickle=False), nbits, "queries")
        elif isinstance(queries, str) or hasattr(queries, "__fspath__"):
            self._store = CodeStore.open(queries, "r", nbits=nbits, storage_options=storage_options)
            self._owned = True
        else:
            self._array = as_codes(queries, nbits, "queries")
        if self._store is not None and self._store.nbits != nbits:
            raise IncompatibleStoreError(
                f"{self._store.location.describe()}: query codes have {self._store.nbits} bits, "
                f"the database {nbits}"
            )

    def __len__(self) -> int:
        return len(self._store) if self._store is not None else len(self._array)  # type: ignore[arg-type]

    def block(self, lo: int, hi: int) -> np.ndarray:
        """Queries [lo, hi): uint8 (hi - lo, code_size), C-contiguous (checked once, at construction)."""
        if self._store is not None:
            return self._store.read_codes(lo, hi)
        return self._array[lo:hi]  # type: ignore[index]

    def fingerprint(self) -> dict[str, Any]:
        if self._store is not None:
            return {"store": self._store.uuid, "nrows": len(self._store)}
        h = hashlib.sha256()
        arr = self._array
        assert arr is not None
        step = max(1, (16 << 20) // max(1, arr.shape[1]))
        for lo in range(0, arr.shape[0], step):
            h.update(np.ascontiguousarray(arr[lo : lo + step]).data.cast("B"))
        return {"sha256": h.hexdigest(), "nrows": int(arr.shape[0])}

    def close(self) -> None:
        if self._owned and self._store is not None:
            self._store.close()


def _database_fingerprint(db: Any) -> dict[str, Any]:
    from hashsearch.store import CodeStore

    if isinstance(db, CodeStore):
        return {"store": db.uuid, "nrows": db.committed_rows, "path": db.location.describe()}
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(db.codes).data.cast("B"))
    h.update(np.ascontiguousarray(db.ids).data.cast("B"))
    return {"index_sha256": h.hexdigest(), "nrows": db.ntotal}


def _block_rows(b: int, query_block: int, nq: int) -> range:
    """The query rows of block ``b``."""
    return range(b * query_block, min(nq, (b + 1) * query_block))


def _index_searcher(
    index: BinaryIndex, k: int, backend: str | Backend | None, num_threads: int | None
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """How one query block is searched in an in-memory index, with the kernel the
    arguments ask for (see :func:`~hashsearch.search.outofcore.resolve_backend`):
    ``"auto"`` keeps the index's own backend (``num_threads`` applied to a copy of
    it), a name or an instance is used instead of it.

    Raises:
        ValueError: an instance whose thread count differs from ``num_threads``;
            an unknown name. BackendUnavailableError: the named backend cannot run here.
    """
    own = index.backend_impl
    impl = resolve_backend(backend, num_threads, current=own)
    if impl is own:
        return lambda q: index.search(q, k)
    codes, ids = index.codes, index.ids
    k = check_k(k, codes.shape[0])

    def search(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        distances, positions = impl.knn(codes, q, k)
        return distances, positions_to_ids(positions, ids.__getitem__)

    return search


def _store_searcher(
    store: CodeStore, k: int, backend: str | Backend | None, num_threads: int | None, limit: int
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """How one query block is searched in a store here: one out-of-core search of
    the committed rows within ``limit`` bytes, positions mapped to ids."""
    impl = resolve_backend(backend, num_threads)
    source, nrows = store.code_source, store.committed_rows

    def search(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        distances, positions = search_positions(source, q, k, impl, memory_limit=limit, start=0, stop=nrows)
        return distances, store.ids_at(positions)

    return search


def _open_output(
    location: StoreLocation,
    attrs: dict[str, Any],
    nq: int,
    k: int,
    query_block: int,
    nblocks: int,
    *,
    resume: bool,
    overwrite: bool,
) -> tuple[Any, np.ndarray]:
    """Create the results group, or reopen a matching one; returns (group, done flags)."""
    import zarr

    zstore = location.open(read_only=False)
    doc = read_json(zstore, "zarr.json", location)
    if doc is not None and not overwrite:
        old = (doc.get("attributes") or {}).get("hashsearch_batch")
        where = location.describe("zarr.json")
        if not isinstance(old, dict) or old.get("format") != RESULTS_FORMAT:
            raise StoreError(f"{where}: exists and is not a batch-results group (pass overwrite=True to replace it)")
        if not resume:
            raise StoreError(
                f"{location.describe()} already holds results (resume=True continues, overwrite=True replaces)"
            )
        keys = ("version", "nq", "k", "nbits", "query_block", "database", "queries")
        mismatched = [key for key in keys if old.get(key) != attrs.get(key)]
        if mismatched:
            raise IncompatibleStoreError(
                f"{where}: these results were computed for other inputs ({', '.join(mismatched)} differ); "
                "use another output or overwrite=True"
            )
        group: Any = zarr.open_group(zstore, mode="r+", zarr_format=3, use_consolidated=False)
        done = np.asarray(group["done"][:], dtype=np.uint8)
        if done.shape != (nblocks,):
            raise IncompatibleStoreError(f"{location.describe('done')}: {done.shape[0]} blocks, expected {nblocks}")
        return group, done
    root = location.local_root
    if root is not None and root.exists() and doc is None and (root.is_file() or any(root.iterdir())):
        raise StoreError(f"{location.describe()} exists and is not a Zarr group; refusing to write into it")
    group = zarr.create_group(zstore, attributes={"hashsearch_batch": attrs}, zarr_format=3, overwrite=True)
    common: dict[str, Any] = {"fill_value": 0, "config": {"write_empty_chunks": True}, "compressors": None}
    for name, dtype in (("D", "int32"), ("I", "int64")):
        group.create_array(
            name, shape=(nq, k), dtype=dtype, chunks=(query_block, k), dimension_names=("query", "rank"), **common
        )
    done_chunk = min(max(nblocks, 1), _DONE_CHUNK)
    group.create_array(
        "done", shape=(nblocks,), dtype="uint8", chunks=(done_chunk,), dimension_names=("block",), **common
    )
    return group, np.zeros(nblocks, np.uint8)


def load_results(output: Any, *, storage_options: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a finished results group: (D int32 (nq, k), I int64 (nq, k)).

    Raises:
        StoreError: not a results group, or some blocks are not done (rerun
            :func:`batch_search` to finish them).
    """
    import zarr

    location = resolve_location(output, storage_options)
    zstore = location.open(read_only=True)
    doc = read_json(zstore, "zarr.json", location)
    attrs = ((doc or {}).get("attributes") or {}).get("hashsearch_batch")
    if not isinstance(attrs, dict) or attrs.get("format") != RESULTS_FORMAT:
        raise StoreError(f"{location.describe('zarr.json')}: not a batch-results group")
    group: Any = zarr.open_group(zstore, mode="r", zarr_format=3, use_consolidated=False)
    done = np.asarray(group["done"][:])
    if not done.all():
        raise StoreError(
            f"{location.describe()}: {int((done == 0).sum())} of {done.size} query blocks are not done; "
            "rerun the batch search to finish"
        )
    return np.asarray(group["D"][:]), np.asarray(group["I"][:])


def batch_search(
    database: CodeStore | BinaryIndex | str,
    queries: Any,
    k: int,
    output: Any,
    *,
    query_block: int | None = None,
    memory_limit: int | str | None = None,
    backend: str | Backend | None = "auto",
    num_threads: int | None = None,
    client: Any = None,
    resume: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    max_blocks: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> BatchResult:
    """Search every query against the database, writing (D, I) to a Zarr group as it goes.

    Args:
        database: a :class:`CodeStore` (or its path/URL), streamed out of core;
            or a :class:`BinaryIndex` in memory (not with ``client``).
        queries: uint8 (nq, code_size) array (or the path of a ``.npy`` file of
            one), or a code store (or its path) whose codes are the queries.
        k: neighbours per query, >= 1.
        output: path, URL or zarr Store of the results group (created, or resumed).
        query_block: queries per block (the unit of progress); default from
            ``memory_limit``, at most 65536.
        memory_limit: the limit of one query block's search (bytes or "2GB";
            default :data:`~hashsearch.search.outofcore.DEFAULT_MEMORY_LIMIT`),
            here or in a Dask task alike: its queries, top-k lists and database
            blocks (see :mod:`hashsearch.search.outofcore`). The default
            ``query_block`` keeps the queries and results within half of it.
            With an in-memory index it only sizes the default query block.
        backend, num_threads: the kernel (threads: default all cores locally,
            1 per task on Dask). With an in-memory index, ``"auto"`` keeps the
            index's backend (with ``num_threads`` when given); another name or
            an instance searches the index's codes with that kernel.
        client: a ``distributed.Client`` or scheduler address to run the blocks
            on; None runs them here.
        resume: continue a matching results group (else refuse to touch it).
        overwrite: replace an existing group at ``output``.
        progress: tqdm progress bar over queries.
        max_blocks: stop after computing this many blocks (run in installments).
        storage_options: fsspec options for URLs (database, queries, output).

    Returns:
        :class:`BatchResult` (timings, comparisons, blocks skipped and computed).

    Raises:
        TypeError, ValueError: bad input or options (an unparsable or too small
            memory limit; a backend instance whose threads differ from ``num_threads``).
        StoreError: the output exists and is something else, or holds results for
            other inputs (:class:`IncompatibleStoreError`).
    """
    from tqdm.auto import tqdm

    from hashsearch.index import BinaryIndex
    from hashsearch.store import CodeStore

    t0 = time.perf_counter()
    k = check_k(k)
    limit = parse_memory_limit(memory_limit)
    owned_db = False
    if isinstance(database, (CodeStore, BinaryIndex)):
        db = database
    else:
        db = CodeStore.open(database, "r", storage_options=storage_options)
        owned_db = True
    qs: _Queries | None = None
    try:
        if client is not None and not isinstance(db, CodeStore):
            raise ValueError("with a Dask client the database must be a CodeStore (workers stream it)")
        # the kernel is resolved (or its name checked, for Dask) before anything is written
        task = task_backend(backend, num_threads) if client is not None else None
        if isinstance(db, CodeStore):
            search_block = _store_searcher(db, k, backend, num_threads, limit) if client is None else None
        else:
            search_block = _index_searcher(db, k, backend, num_threads)
        qs = _Queries(queries, db.nbits, storage_options)
        nq = len(qs)
        nbytes = db.nbits // 8
        if query_block is None:
            query_block = default_query_block(nq, k, nbytes, limit)
        query_block = check_int(query_block, "query_block")
        nblocks = -(-nq // query_block)
        ntotal = db.committed_rows if isinstance(db, CodeStore) else db.ntotal
        # Everything that can refuse the search does so before the results group exists:
        # an absurd k (check_k's padding limit) and a memory limit too small for one block.
        k = check_k(k, ntotal, min(nq, query_block))
        if isinstance(db, CodeStore) and nq:
            plan_for(db.code_source, min(nq, query_block), k, limit, ntotal)
        attrs = {
            "format": RESULTS_FORMAT,
            "version": _RESULTS_VERSION,
            "nq": nq,
            "k": k,
            "nbits": db.nbits,
            "query_block": query_block,
            "database": _database_fingerprint(db),
            "queries": qs.fingerprint(),
        }
        location = resolve_location(output, storage_options)
        group, done = _open_output(location, attrs, nq, k, query_block, nblocks, resume=resume, overwrite=overwrite)
        todo = [b for b in range(nblocks) if not done[b]]
        skipped = nblocks - len(todo)
        if max_blocks is not None:
            todo = todo[: max(0, int(max_blocks))]
        logger.info("batch search: %d queries in %d blocks (%d done), %d database rows", nq, nblocks, skipped, ntotal)
        out_d, out_i, out_done = group["D"], group["I"], group["done"]

        def write(b: int, distances: np.ndarray, ids: np.ndarray) -> None:
            rows = _block_rows(b, query_block, nq)
            out_d[rows.start : rows.stop] = distances
            out_i[rows.start : rows.stop] = ids
            done[b] = 1  # recorded only once the block's results are written
            chunk = _DONE_CHUNK
            c0 = b // chunk * chunk
            out_done[c0 : min(nblocks, c0 + chunk)] = done[c0 : min(nblocks, c0 + chunk)]

        computed = 0
        initial = sum(len(_block_rows(b, query_block, nq)) for b in range(nblocks) if done[b])
        with tqdm(total=nq, initial=initial, unit="queries", unit_scale=True, disable=not progress) as bar:
            if search_block is not None:
                for b in todo:
                    rows = _block_rows(b, query_block, nq)
                    write(b, *search_block(qs.block(rows.start, rows.stop)))
                    computed += 1
                    bar.update(len(rows))
            else:
                assert isinstance(db, CodeStore) and task is not None
                computed = _run_on_dask(client, db, qs, todo, k, query_block, nq, task, limit, write, bar)
        seconds = time.perf_counter() - t0
        done_queries = sum(len(_block_rows(b, query_block, nq)) for b in todo[:computed])
        return BatchResult(
            output=location.describe(),
            nq=nq,
            k=k,
            ntotal=ntotal,
            query_block=query_block,
            blocks=nblocks,
            skipped=skipped,
            computed=computed,
            seconds=seconds,
            comparisons=done_queries * ntotal,
        )
    finally:
        if qs is not None:
            qs.close()
        if owned_db:
            db.close()  # type: ignore[union-attr]


def _run_on_dask(
    client: Any,
    db: CodeStore,
    qs: _Queries,
    todo: list[int],
    k: int,
    query_block: int,
    nq: int,
    backend: TaskBackend,
    limit: int,
    write: Any,
    bar: Any,
) -> int:
    """Run the query blocks ``todo`` as Dask tasks (:func:`~hashsearch.search.distributed.search_task`,
    each given the whole ``limit``), writing each block's results as it arrives."""
    from distributed import as_completed

    from hashsearch.search.distributed import connect, search_task, total_threads

    if not db.location.shareable:
        raise ValueError("with a Dask client the database store must be on a path or URL workers can open")
    with connect(client) as dask_client:
        in_flight = 2 * total_threads(dask_client)
        pending = list(todo)
        futures: dict[Any, int] = {}
        nrows = db.committed_rows

        def submit(b: int) -> None:
            rows = _block_rows(b, query_block, nq)
            fut = dask_client.submit(
                search_task,
                db.location,
                nrows,
                db.uuid,
                0,
                nrows,
                qs.block(rows.start, rows.stop),
                k,
                backend,
                limit,
                ids=True,
                pure=False,
            )
            futures[fut] = b

        while pending and len(futures) < in_flight:
            submit(pending.pop(0))
        computed = 0
        queue = as_completed(list(futures))
        for fut in queue:
            b = futures.pop(fut)
            d, ids = fut.result()
            write(b, d, ids)
            computed += 1
            bar.update(len(_block_rows(b, query_block, nq)))
            if pending:
                submit(pending.pop(0))
                newest = next(reversed(futures))
                queue.add(newest)
        return computed
