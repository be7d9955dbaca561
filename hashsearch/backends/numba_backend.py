"""The Numba backend: compiled kernels without a C++ build.

``backend="auto"`` uses it when the native extension ``hashsearch._core`` is not
built. Same results as the NumPy reference (exact distances; ties by ascending
database position; identical for every thread count) at a fraction of its cost:

- Hamming distance over words: codes of ``nbytes`` bytes are viewed as uint64
  words when ``nbytes % 8 == 0``, else as uint32 words when ``nbytes % 4 == 0``,
  else as bytes, and each word costs one ``POPCNT``
  (LLVM's ``ctpop``; loops over 1..4 words are written out so they vectorise);
- k-NN by counting selection over the distances 0..nbits (see
  :mod:`hashsearch.backends._numba_kernels`), so the cost hardly depends on k;
- parallel with ``prange`` over tiles of queries, each tile scanning the database
  block by block so one block of codes in cache serves every query of the tile;
  when there are fewer query tiles than threads the database is also cut into
  slices whose top-k lists are merged by (distance, position).

Compilation: the kernels are compiled lazily, on the first search that needs a
given word type (uint64, uint32, uint8), and cached on disk next to the kernel
module (``cache=True``; Numba falls back to ``NUMBA_CACHE_DIR`` or a user cache
directory where the package directory is read-only). Importing this module
costs only the import of Numba (about 0.3 s). The first use of a word type in a
fresh install compiles it (measured on 2 cores: k-NN about 4.5 s, range search
1.7 s, distance matrix 0.8 s); later processes load the cached machine code (about
0.1 s per kernel). Each first use is logged at DEBUG with its time and whether it
was compiled or loaded. Eager compilation with explicit signatures was rejected:
every cold start would compile three word types x four kernels (about 20 s)
although a process searches one code length.

Threads: each call runs with ``numba.set_num_threads(num_threads)`` (capped to
Numba's pool, ``NUMBA_NUM_THREADS``) and restores the caller's setting after, so
backends with different thread counts coexist. Numba's ``workqueue`` layer
(used when neither OpenMP nor TBB is available) cannot run two parallel kernels
at once, so calls are serialised by a lock there; with OpenMP or TBB concurrent
calls from several Python threads run in parallel (the kernels release the GIL).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from hashsearch.backends.base import PAD_DISTANCE, PAD_POSITION, Backend

__all__ = ["NumbaBackend"]

logger = logging.getLogger("hashsearch")

try:  # numba (and its llvmlite) may be missing or built for another NumPy
    import numba

    from hashsearch.backends import _numba_kernels as _kernels

    _IMPORT_ERROR: str | None = None
except Exception as exc:
    numba = None
    _kernels = None  # type: ignore[assignment]
    _IMPORT_ERROR = f"numba cannot be imported ({type(exc).__name__}: {exc})"

#: Bytes of codes per distance block (the block's codes and int32 distances stay in
#: L1 while every query of a tile scans them): 2048 codes of 64 bits, 256 of 1024.
BLOCK_BYTES = 16 << 10
#: Fewest and most codes per block (multiples of the kernels' 64-distance chunks).
MIN_BLOCK, MAX_BLOCK = 256, 2048
#: Most queries per work item (they share each block of codes while it is in cache).
MAX_TILE = 16
#: Bytes of selection state (candidate buffers) a work item may allocate.
TILE_STATE_BYTES = 32 << 20
#: Smallest database slice worth a thread of its own when queries are few.
MIN_SLICE = 1 << 14
#: Pairwise distances: columns per work item.
PAIRWISE_BLOCK = 4096

_WORD_TYPES = (np.uint64, np.uint32, np.uint8)

# (kernel name, word dtype) pairs already compiled or loaded in this process.
_ready: set[tuple[str, str]] = set()

# The workqueue threading layer (used when neither TBB nor OpenMP is present)
# must not be entered by two threads at once; the others are thread-safe.
_launch_lock = threading.Lock()
_layer_is_threadsafe: bool | None = None


def _as_words(codes: np.ndarray) -> np.ndarray:
    """View C-contiguous uint8 codes (n, nbytes) as read-only words (n, nbytes / w).

    ``w`` is the largest of 8, 4, 1 bytes dividing ``nbytes``; misaligned input
    is copied. The view is read-only so every call hits the same compiled kernel.
    """
    nbytes = codes.shape[1]
    for dtype in _WORD_TYPES:
        size = np.dtype(dtype).itemsize
        if nbytes % size == 0:
            break
    if codes.ctypes.data % size:
        codes = codes.copy()
    words = codes.view(dtype)
    words.flags.writeable = False
    return words


def _call(kernel: Any, words: np.ndarray, *args: Any) -> None:
    """Call a kernel; on its first use for this word type, log the compile or cache-load time."""
    key = (kernel.__name__, words.dtype.name)
    if key in _ready:
        kernel(words, *args)
        return
    misses = sum(kernel.stats.cache_misses.values())
    start = time.perf_counter()
    kernel(words, *args)
    how = "compiled" if sum(kernel.stats.cache_misses.values()) > misses else "loaded from cache"
    _ready.add(key)
    logger.debug("numba kernel %s for %s words %s in %.2f s", key[0], key[1], how, time.perf_counter() - start)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _block(nbytes: int) -> int:
    """Codes per distance block for codes of ``nbytes`` bytes."""
    return max(MIN_BLOCK, min(MAX_BLOCK, BLOCK_BYTES // nbytes // 64 * 64))


class NumbaBackend(Backend):
    """Exact Hamming kernels compiled by Numba (parallel over queries and database slices).

    Args:
        num_threads: threads the kernels use (>= 1); None for the default.
            Values above Numba's thread pool (``NUMBA_NUM_THREADS``, the CPU
            count unless set) are capped to it; results never depend on it.
    """

    name = "numba"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why Numba cannot run here (it cannot be imported), or None."""
        return _IMPORT_ERROR

    # -- work layout ------------------------------------------------------------------
    def _threads(self) -> int:
        return max(1, min(self.num_threads, numba.config.NUMBA_NUM_THREADS))

    def _layout(self, n: int, nq: int, state_per_query: int) -> tuple[int, int]:
        """Return (queries per tile, database slices) for ``nq`` queries over ``n`` codes."""
        threads = self._threads()
        max_tile = max(1, min(MAX_TILE, TILE_STATE_BYTES // max(1, state_per_query)))
        # Enough tiles to give every thread the same number of them.
        rounds = _ceil_div(nq, threads * max_tile)
        tile = max(1, _ceil_div(nq, threads * rounds))
        ntiles = _ceil_div(nq, tile) if nq else 0
        slices = 1
        if 0 < ntiles < threads:
            slices = max(1, min(_ceil_div(threads, ntiles), n // MIN_SLICE))
        return tile, slices

    @contextlib.contextmanager
    def _launch(self) -> Iterator[None]:
        """Run a parallel kernel with ``num_threads`` threads, restoring Numba's setting after."""
        global _layer_is_threadsafe
        lock = _launch_lock if not _layer_is_threadsafe else contextlib.nullcontext()
        with lock:
            previous = numba.get_num_threads()
            numba.set_num_threads(self._threads())
            try:
                yield
            finally:
                numba.set_num_threads(previous)
                if _layer_is_threadsafe is None:
                    with contextlib.suppress(ValueError):
                        _layer_is_threadsafe = numba.threading_layer() != "workqueue"

    # -- kernels ----------------------------------------------------------------------
    def knn(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n, nq = codes.shape[0], queries.shape[0]
        nbits = 8 * codes.shape[1]
        distances = np.full((nq, k), PAD_DISTANCE, dtype=np.int32)
        positions = np.full((nq, k), PAD_POSITION, dtype=np.int64)
        if n == 0 or nq == 0:
            return distances, positions
        block = _block(codes.shape[1])
        cap = min(n, 2 * k + block)
        tile, slices = self._layout(n, nq, 12 * cap + 8 * (nbits + 2))
        db, qw = _as_words(codes), _as_words(queries)
        if slices == 1:
            out_d, out_p = distances[None], positions[None]
        else:
            out_d = np.full((slices, nq, k), PAD_DISTANCE, dtype=np.int32)
            out_p = np.full((slices, nq, k), PAD_POSITION, dtype=np.int64)
        args = (np.int64(k), np.int64(nbits), np.int64(tile), np.int64(slices), np.int64(block))
        with self._launch():
            _call(_kernels.knn_kernel, db, qw, *args, out_d, out_p)
            if slices > 1:
                _kernels.merge_slices(out_d, out_p, np.int64(nbits), distances, positions)
        return distances, positions

    def range_search(
        self, codes: np.ndarray, queries: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, nq = codes.shape[0], queries.shape[0]
        lims = np.zeros(nq + 1, dtype=np.int64)
        if n == 0 or nq == 0:
            return lims, np.empty(0, np.int32), np.empty(0, np.int64)
        tile, slices = self._layout(n, nq, 1)
        db, qw = _as_words(codes), _as_words(queries)
        args = (np.int64(radius), np.int64(tile), np.int64(slices), np.int64(_block(codes.shape[1])))
        counts = np.zeros((nq, slices), dtype=np.int64)
        out_d, out_p = np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64)
        with self._launch():
            _call(_kernels.range_kernel, db, qw, *args, False, counts, out_d, out_p)
        ends = np.cumsum(counts.ravel()).reshape(nq, slices)
        lims[1:] = ends[:, -1]
        total = int(lims[-1])
        if total:
            out_d, out_p = np.empty(total, dtype=np.int32), np.empty(total, dtype=np.int64)
            with self._launch():
                _kernels.range_kernel(db, qw, *args, True, ends - counts, out_d, out_p)
        return lims, out_d, out_p

    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)
        if out.size == 0:
            return out
        with self._launch():
            _call(_kernels.pairwise_kernel, _as_words(a), _as_words(b), np.int64(PAIRWISE_BLOCK), out)
        return out
