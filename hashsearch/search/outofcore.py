"""The one out-of-core search path: exact k-NN over codes that stay on disk.

Every search over a code store goes through here: :meth:`CodeStore.search`
(one process), :func:`hashsearch.search.distributed.search` (one call of
:func:`search_positions` per Dask task), :func:`hashsearch.search.batch.batch_search`
(one per query block, here or on Dask) and ``hashsearch index search`` (which calls
the batch search). This module owns, once for all of them:

- **the memory limit**: :data:`DEFAULT_MEMORY_LIMIT`, its parser
  :func:`parse_memory_limit`, and its meaning (below);
- **backend resolution**: :func:`resolve_backend` (a kernel here) and
  :func:`task_backend` (what a Dask task gets: a name and a thread count);
- **the block plan**: how rows are cut into blocks that fit the limit
  (:func:`plan_for`, on the arithmetic of :mod:`hashsearch.search.plan`);
- **the streaming loop and the merge**: :func:`search_positions` reads blocks
  on a reader thread one block ahead of the kernel and merges each block's
  top-k into the running one; :func:`merge_parts` merges partial results kept
  in database order (the Dask reduction tree);
- **the id mapping**: :func:`positions_to_ids` (row positions to ids, -1 kept).

**What the memory limit bounds.** ``memory_limit`` is the number of bytes *one
search* may hold for its own buffers, where one search is one set of queries
against one range of rows: :meth:`CodeStore.search`, one Dask task of the
distributed search, or one query block of the batch search (here or in a Dask
task). It counts the queries, the top-k bookkeeping (the running result, one
block's result and the temporaries of one merge: :func:`~hashsearch.search.plan.result_bytes`),
the two block buffers of codes (one searched, one being read) and zarr's read
temporaries (about two shards, or two blocks when blocks are smaller than a
shard); a tenth of it is kept in reserve for what this estimate misses. It does
not count the kernels' working memory (a few KB per thread for the native
kernel; up to about 64 MB for the NumPy reference), the interpreter and the
libraries, the final mapping of result positions to ids (a few small inner chunks
of ids), nor a writer's buffered rows (already in memory). The limit means the
same everywhere: a Dask task gets the whole limit, and so does each query block
of a local batch search (blocks run one after the other). A limit too small for
even one inner chunk is refused with the minimum in the message.

This is the engine side of the store: it may import the base modules
(``_validate``, ``errors``), ``backends``, ``functional`` and
:mod:`hashsearch.search.plan`, never ``store`` (the store imports this module;
it reaches the store's rows through the :class:`CodeSource` protocol), ``index``,
or the Dask and batch drivers.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hashsearch._validate import as_codes, check_int, check_k
from hashsearch.backends import PAD_POSITION, Backend, backend_class, make_backend
from hashsearch.errors import BackendUnavailableError
from hashsearch.functional import merge_topk, offset_positions
from hashsearch.search.plan import BlockPlan, empty_result, plan_blocks, prefetch, result_bytes

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_TASK_THREADS",
    "MAX_QUERY_BLOCK",
    "CodeSource",
    "TaskBackend",
    "default_query_block",
    "describe_bytes",
    "merge_parts",
    "parse_memory_limit",
    "plan_for",
    "positions_to_ids",
    "resolve_backend",
    "search",
    "search_positions",
    "task_backend",
]

#: The memory limit of one search when none is given (bytes; see the module docstring).
DEFAULT_MEMORY_LIMIT = 512 * 2**20
#: Kernel threads of one Dask task when none are given (one task per worker thread).
DEFAULT_TASK_THREADS = 1
#: Largest default query block of the batch search (the unit of progress and resumption).
MAX_QUERY_BLOCK = 1 << 16
#: Largest block of codes read at once: smaller blocks start the pipeline sooner
#: (the first read is not overlapped with compute) at a small cost per kernel call.
_MAX_BLOCK_BYTES = 16 << 20

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


# -- the memory limit -------------------------------------------------------------------
def parse_memory_limit(value: int | str | None) -> int:
    """The memory limit in bytes: None for :data:`DEFAULT_MEMORY_LIMIT`, an int of
    bytes, or a string such as ``"512MB"`` (10**6) or ``"2 GiB"`` (2**30).

    Raises:
        TypeError: neither None, int nor str (a bool included).
        ValueError: unparsable, or not positive.
    """
    if value is None:
        return DEFAULT_MEMORY_LIMIT
    if isinstance(value, bool):
        raise TypeError("memory sizes must be an int (bytes) or a string such as '512MB'")
    if isinstance(value, (int, np.integer)):
        n = int(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", value)
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError(f"cannot parse memory size {value!r} (examples: 1000000, '512MB', '2GiB')")
        n = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    else:
        raise TypeError(f"memory sizes must be an int (bytes) or a string, got {type(value).__name__}")
    if n <= 0:
        raise ValueError(f"memory size must be positive, got {value!r}")
    return n


def describe_bytes(n: int) -> str:
    """``n`` bytes for people: ``"512 MiB"``, ``"1.5 GiB"``, ``"800 B"``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} B"


# -- backends ---------------------------------------------------------------------------
def resolve_backend(
    backend: str | Backend | None = "auto", num_threads: int | None = None, *, current: Backend | None = None
) -> Backend:
    """The kernel a search runs here, never changing a backend the caller owns.

    Args:
        backend: a name, ``"auto"`` (or None), or an instance.
        num_threads: kernel threads; None for the backend's default.
        current: the backend of an in-memory index being searched, if any:
            ``"auto"`` then means that backend (with ``num_threads`` threads
            when given, as a new instance of the same kind).

    Raises:
        ValueError: an instance whose thread count differs from ``num_threads``
            (set ``backend.num_threads``, or pass the backend by name); an unknown name.
        BackendUnavailableError: the named backend cannot run here.
    """
    if num_threads is not None:
        num_threads = check_int(num_threads, "num_threads")
    if isinstance(backend, Backend):
        if num_threads is not None and num_threads != backend.num_threads:
            raise ValueError(
                f"backend {backend.name!r} is an instance with num_threads={backend.num_threads}, "
                f"but num_threads={num_threads} was given: set backend.num_threads or pass the backend by name"
            )
        return backend
    if current is not None and (backend is None or (isinstance(backend, str) and backend.strip().lower() == "auto")):
        if num_threads is None or num_threads == current.num_threads:
            return current
        return make_backend(current.name, num_threads)
    return make_backend(backend, num_threads)


@dataclass(frozen=True)
class TaskBackend:
    """The backend of a Dask task: a name (``"auto"`` picks on the worker) and threads."""

    name: str
    num_threads: int

    def make(self) -> Backend:
        """The kernel, on the worker."""
        return make_backend(self.name, self.num_threads)


def task_backend(backend: str | Backend | None = "auto", num_threads: int | None = None) -> TaskBackend:
    """What each Dask task resolves: an instance travels as its name (its thread
    count does not), threads default to :data:`DEFAULT_TASK_THREADS`.

    Raises:
        TypeError: ``backend`` is neither a name nor a Backend. ValueError: an
            unknown name (availability is decided on the workers).
    """
    if isinstance(backend, Backend):
        name = backend.name
    elif backend is None or isinstance(backend, str):
        name = (backend or "auto").strip().lower()
    else:
        raise TypeError(f"backend must be a name or a Backend instance, got {type(backend).__name__}")
    if name != "auto":
        # ValueError for an unknown name, before any task starts; availability is the workers' to decide
        with contextlib.suppress(BackendUnavailableError):
            backend_class(name)
    threads = DEFAULT_TASK_THREADS if num_threads is None else check_int(num_threads, "num_threads")
    return TaskBackend(name, threads)


# -- what is searched -------------------------------------------------------------------
class CodeSource(Protocol):
    """Rows of packed codes that the out-of-core search streams (a store's reader).

    Rows ``[0, disk_rows)`` are read from disk in blocks; rows
    ``[disk_rows, ntotal)`` (a writer's buffered rows) are already in memory.
    """

    @property
    def code_size(self) -> int: ...  # bytes per code

    @property
    def shard_rows(self) -> int: ...

    @property
    def chunk_rows(self) -> int: ...

    @property
    def ntotal(self) -> int: ...

    @property
    def disk_rows(self) -> int: ...

    @property
    def ids_are_positions(self) -> bool: ...

    def read_codes(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """Codes of disk rows [start, stop) into ``out`` (uint8 (stop - start, code_size))."""
        ...

    def advise(self, start: int, stop: int) -> None:
        """Hint that disk rows [start, stop) are read next (may do nothing)."""
        ...

    def memory_codes(self, start: int, stop: int) -> np.ndarray:
        """Codes of rows [start, stop) at or past ``disk_rows``."""
        ...

    def ids_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Ids of sorted, unique, valid rows (int64)."""
        ...


def plan_for(source: CodeSource, nq: int, k: int, memory_limit: int, nrows: int) -> BlockPlan:
    """The blocks of ``nrows`` disk rows of ``source`` that one search of ``nq``
    queries for ``k`` neighbours streams within ``memory_limit`` bytes.

    Raises:
        ValueError: the limit is too small (the message gives the minimum).
    """
    fixed = result_bytes(nq, k) + nq * source.code_size
    return plan_blocks(
        max(0, nrows),
        source.code_size,
        source.shard_rows,
        source.chunk_rows,
        memory_limit,
        fixed,
        max_rows=max(1, _MAX_BLOCK_BYTES // source.code_size),
    )


# -- searching --------------------------------------------------------------------------
def search_positions(
    source: CodeSource,
    queries: np.ndarray,
    k: int,
    backend: Backend,
    *,
    memory_limit: int,
    start: int = 0,
    stop: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k *row positions* among rows [start, stop) of ``source``; inputs validated.

    Args:
        source: the rows.
        queries: uint8 (nq, code_size), C-contiguous.
        k: neighbours, >= 1.
        backend: the kernel.
        memory_limit: bytes (parsed; see the module docstring).
        start, stop: row range (default all of ``source.ntotal``).
        progress: tqdm progress bar over the rows.

    Returns:
        (D int32 (nq, k), positions int64 (nq, k)): global row positions, equal
        distances by ascending position, padded with PAD_DISTANCE / -1.
    """
    from tqdm.auto import tqdm

    stop = source.ntotal if stop is None else stop
    nq = queries.shape[0]
    disk_stop = min(stop, source.disk_rows)
    plan = plan_for(source, nq, k, memory_limit, disk_stop - start)
    ranges = [(start + a, start + b) for a, b in plan.ranges()]
    best = empty_result(nq, k)
    block_rows = plan.block_rows
    code_size = source.code_size

    def read(lo: int, hi: int, buf: np.ndarray) -> np.ndarray:
        source.advise(hi, min(disk_stop, hi + block_rows))  # the OS fetches the next block meanwhile
        return source.read_codes(lo, hi, buf[: hi - lo])

    blocks = prefetch(ranges, read, lambda: np.empty((block_rows, code_size), np.uint8))
    with tqdm(total=max(0, stop - start), unit="codes", unit_scale=True, disable=not progress, leave=False) as bar:
        for lo, hi, codes in blocks:
            d, p = backend.knn(codes, queries, k)
            best = merge_topk([best, (d, offset_positions(p, lo))], k)
            bar.update(hi - lo)
        if stop > disk_stop:  # rows held in memory (a writer's buffer)
            lo = max(start, disk_stop)
            d, p = backend.knn(np.ascontiguousarray(source.memory_codes(lo, stop)), queries, k)
            best = merge_topk([best, (d, offset_positions(p, lo))], k)
            bar.update(stop - lo)
    return best


def search(
    source: CodeSource,
    queries: Any,
    k: int,
    *,
    nbits: int,
    memory_limit: int | str | None = None,
    backend: str | Backend | None = "auto",
    num_threads: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest codes of ``source`` (the entry of :meth:`CodeStore.search`).

    Validates the queries (``nbits``-bit codes) and ``k``, parses the limit,
    resolves the backend, streams every row and maps positions to ids.

    Returns:
        (D int32 (nq, k), I int64 (nq, k)) ids, padded with 2**31 - 1 / -1.
    """
    q = as_codes(queries, nbits, "queries")
    k = check_k(k, source.ntotal, q.shape[0])
    limit = parse_memory_limit(memory_limit)
    impl = resolve_backend(backend, num_threads)
    distances, positions = search_positions(source, q, k, impl, memory_limit=limit, progress=progress)
    return distances, positions_to_ids(positions, None if source.ids_are_positions else source.ids_of_rows)


def merge_parts(k: int, *parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Merge partial (D, positions) results given in database order (ties stay ordered)."""
    return merge_topk(list(parts), k)


def positions_to_ids(positions: np.ndarray, ids_of_rows: Callable[[np.ndarray], np.ndarray] | None) -> np.ndarray:
    """Map row positions to ids, keeping -1 (padding) as -1.

    Args:
        positions: int64 array of any shape, values -1 or valid rows.
        ids_of_rows: given the sorted unique valid rows (int64), their ids; None
            when ids are the positions.

    Returns:
        int64 array of the same shape (a new array).
    """
    positions = np.asarray(positions, dtype=np.int64)
    if ids_of_rows is None:
        return positions.copy()
    flat = positions.ravel()
    valid = flat >= 0
    rows, inverse = np.unique(flat[valid], return_inverse=True)
    out = np.full(flat.shape, PAD_POSITION, np.int64)
    if rows.size:
        out[valid] = np.asarray(ids_of_rows(rows), dtype=np.int64)[inverse]
    return out.reshape(positions.shape)


def default_query_block(nq: int, k: int, code_size: int, memory_limit: int) -> int:
    """Queries per block of the batch search when none is given: the block's queries,
    its top-k bookkeeping and its results take at most half of ``memory_limit`` (the
    database blocks get the other half); at most :data:`MAX_QUERY_BLOCK`."""
    per_query = result_bytes(1, k) + code_size + k * 12
    rows = max(1, (memory_limit // 2) // per_query)
    return int(max(1, min(nq, rows, MAX_QUERY_BLOCK)))
