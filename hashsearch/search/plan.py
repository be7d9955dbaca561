"""Block plans and read-ahead: the mechanics of bounded-memory streaming.

:func:`plan_blocks` cuts a range of rows into blocks of whole shards (or of
inner chunks when memory is tight) so that a given budget covers the block
buffers, zarr's read temporaries and a fixed part (queries, top-k bookkeeping:
:func:`result_bytes`); :func:`prefetch` fills the next block on a reader
thread while the caller works on the current one, reusing two buffers.

No policy lives here: which limit applies, what it means and its default are
:mod:`hashsearch.search.outofcore`'s. This module imports NumPy and
:mod:`hashsearch.backends` (the padding values) only.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hashsearch.backends import PAD_DISTANCE, PAD_POSITION

__all__ = ["BlockPlan", "empty_result", "plan_blocks", "prefetch", "result_bytes"]


def result_bytes(nq: int, k: int) -> int:
    """Bytes of the top-k bookkeeping for ``nq`` queries: the running result, one block's
    result and the temporaries of one merge (concatenation and sort order)."""
    per = 4 + 8  # int32 distance + int64 position
    return nq * k * (per * 2 + per * 2 + 8 * 2) + nq * 64


@dataclass(frozen=True)
class BlockPlan:
    """How a database of ``nrows`` rows is cut into blocks.

    Attributes:
        block_rows: rows per block (the last one may be shorter); a multiple of the
            shard size when at least one shard fits, else of the inner-chunk size.
        nblocks: number of blocks.
        nrows: rows covered.
    """

    block_rows: int
    nblocks: int
    nrows: int

    def ranges(self) -> Iterator[tuple[int, int]]:
        """(start, stop) of every block, in database order."""
        for start in range(0, self.nrows, self.block_rows):
            yield start, min(self.nrows, start + self.block_rows)


def plan_blocks(
    nrows: int,
    row_bytes: int,
    shard_rows: int,
    chunk_rows: int,
    memory_limit: int,
    fixed_bytes: int = 0,
    *,
    buffers: int = 2,
    max_rows: int | None = None,
) -> BlockPlan:
    """Choose the block size that fits ``memory_limit``.

    The budget covers ``fixed_bytes`` (queries, top-k bookkeeping), ``buffers``
    block buffers (the one being searched and the one being read) and the read
    temporaries of zarr (about two shards, or two blocks when blocks are smaller
    than a shard).

    Args:
        nrows: rows to cover.
        row_bytes: bytes per row of every array read per block.
        shard_rows: rows per shard; blocks are multiples of it when possible.
        chunk_rows: rows per inner chunk; the smallest unit of a block.
        memory_limit: bytes allowed.
        fixed_bytes: bytes needed whatever the block size.
        buffers: block buffers alive at once.
        max_rows: cap on rows per block (e.g. to get enough blocks for parallelism).

    Raises:
        ValueError: not even one inner chunk fits; the message gives the minimum.
    """
    # 10 % of the budget is left for what the estimate misses (zarr's codec objects,
    # the allocator's slack)
    budget = memory_limit * 9 // 10 - fixed_bytes  # integers: the minimum named below is exact
    shard_bytes = shard_rows * row_bytes
    # blocks of whole shards: buffers blocks + 2 shards of zarr temporaries
    if budget >= (buffers + 2) * shard_bytes:
        rows = (budget - 2 * shard_bytes) // (buffers * row_bytes)
        rows = max(shard_rows, rows // shard_rows * shard_rows)
    else:
        # blocks of inner chunks: (buffers + 2) blocks in all
        rows = budget // ((buffers + 2) * row_bytes) // chunk_rows * chunk_rows
        if rows < chunk_rows:
            need = -(-(fixed_bytes + (buffers + 2) * chunk_rows * row_bytes) * 10 // 9)  # the least that fits
            raise ValueError(
                f"memory_limit={memory_limit} bytes is too small: at least {need} bytes are needed "
                f"(queries and results {fixed_bytes}, plus {buffers + 2} chunks of {chunk_rows} rows); "
                "raise memory_limit or search fewer queries at a time"
            )
    if max_rows is not None:
        unit = shard_rows if rows >= shard_rows else chunk_rows
        rows = min(rows, max(unit, max_rows // unit * unit))
    nrows = int(nrows)
    rows = int(max(1, min(rows, max(nrows, 1))))
    nblocks = -(-nrows // rows) if nrows else 0
    return BlockPlan(block_rows=rows, nblocks=nblocks, nrows=nrows)


def prefetch(
    ranges: list[tuple[int, int]],
    read: Callable[[int, int, Any], Any],
    make_buffer: Callable[[], Any] | None = None,
    *,
    depth: int = 1,
) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(start, stop, data)`` for each range, reading ahead in a thread.

    ``read(start, stop, buffer)`` fills (or returns) the data of one range. With
    ``make_buffer``, ``depth + 1`` buffers are allocated once and reused: the
    reader fills a buffer only after the consumer has asked for the block that
    follows the one the buffer last held, so a yielded block stays valid until
    the next one is requested. ``depth=0`` reads in the calling thread.
    Exceptions raised by ``read`` are re-raised in the consumer; closing the
    generator early stops the reader.
    """
    if not ranges:
        return
    if depth < 1:
        buf = make_buffer() if make_buffer else None
        for start, stop in ranges:
            yield start, stop, read(start, stop, buf)
        return
    free: queue.Queue[Any] = queue.Queue()
    for _ in range(depth + 1):
        free.put(make_buffer() if make_buffer else None)
    ready: queue.Queue[Any] = queue.Queue()
    stop_event = threading.Event()
    done = object()

    def reader() -> None:
        try:
            for start, stop in ranges:
                while True:
                    if stop_event.is_set():
                        return
                    try:
                        buf = free.get(timeout=0.1)
                        break
                    except queue.Empty:
                        continue
                ready.put((start, stop, buf, read(start, stop, buf)))
            ready.put(done)
        except BaseException as exc:  # handed to the consumer
            ready.put(exc)

    thread = threading.Thread(target=reader, name="hashsearch-prefetch", daemon=True)
    thread.start()
    try:
        held: list[Any] = []  # the buffer of the block the consumer holds
        while True:
            item = ready.get()
            if held:
                free.put(held.pop())  # the consumer is done with the previous block
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            start, stop, buf, data = item
            held.append(buf)
            yield start, stop, data
    finally:
        stop_event.set()
        thread.join()


def empty_result(nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(D, I) of a search over nothing: PAD_DISTANCE and PAD_POSITION everywhere."""
    return np.full((nq, k), PAD_DISTANCE, np.int32), np.full((nq, k), PAD_POSITION, np.int64)
