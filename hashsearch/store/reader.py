"""Reading a code store: rows, blocks, ids at result positions, refresh.

:class:`StoreReader` reads rows ``[start, stop)`` of any field: the rows on
disk shard by shard (each shard checked by its
:class:`~hashsearch.store._zarrio.ShardChecker`, a failed read retried, then
reported naming the file), and, for the writer, the rows it still holds in
memory (its :class:`RowBuffer`). It is also the
:class:`~hashsearch.search.outofcore.CodeSource` that the out-of-core search
streams. Readers take no lock: they see the rows committed when the store was
opened, or when :meth:`StoreReader.refresh` last ran.

This module owns :class:`StoreBlock`, :class:`RowBuffer` and
:class:`StoreReader`. It may import the base modules, :mod:`.layout`, :mod:`.metadata`,
:mod:`.plan <hashsearch.search.plan>` (read-ahead) and
:mod:`hashsearch.search.outofcore` (the id mapping); never the writer.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hashsearch._validate import check_int
from hashsearch.errors import CorruptStoreError
from hashsearch.search.outofcore import positions_to_ids
from hashsearch.search.plan import prefetch
from hashsearch.store._zarrio import ShardChecker
from hashsearch.store.layout import FIELDS, StoreState
from hashsearch.store.metadata import id_policy_from_metadata, read_metadata

__all__ = ["RowBuffer", "StoreBlock", "StoreReader", "read_with_retries"]

logger = logging.getLogger("hashsearch")

#: Attempts at reading a shard before it is declared corrupt (a shard being
#: replaced by a writer can fail a partial read once).
_READ_ATTEMPTS = 3


@dataclass
class StoreBlock:
    """Rows ``[start, stop)`` of a store; fields not asked for are None.

    Attributes:
        codes: uint8 (n, code_size).
        ids: int64 (n,).
        labels: int64 (n,) (stores with labels).
        source: uint8 (n,) indices into ``store.source_names`` (stores with source).
    """

    start: int
    stop: int
    codes: np.ndarray | None = None
    ids: np.ndarray | None = None
    labels: np.ndarray | None = None
    source: np.ndarray | None = None

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass
class RowBuffer:
    """Rows ``[start, start + length)`` held in memory past the rows on disk (the
    writer's last, partial shard): one array of ``shard_rows`` rows per field."""

    start: int
    length: int = 0
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def stop(self) -> int:
        return self.start + self.length


def read_with_retries(read: Callable[[], Any], where: Callable[[], str]) -> Any:
    """``read()``, tried :data:`_READ_ATTEMPTS` times (a writer may be replacing the shard).

    Raises:
        CorruptStoreError: every attempt failed; the message is ``where()`` and the last error.
    """
    for attempt in range(_READ_ATTEMPTS - 1):
        try:
            return read()
        except Exception:  # zarr raises ValueError, OSError, codec errors
            time.sleep(0.01 * (attempt + 1))
    try:
        return read()
    except Exception as exc:
        raise CorruptStoreError(f"{where()} ({exc})") from exc


def _rows_message(checker: ShardChecker, shard: int, lo: int, hi: int) -> str:
    return f"{checker.describe(shard)}: cannot read rows {lo}..{hi - 1}"


class StoreReader:
    """Reads the rows of one open store (and of its writer's buffer, if any).

    Args:
        state: the store's shared state.
        buffer: the writer's in-memory rows; None for a read-only store.
    """

    def __init__(self, state: StoreState, buffer: RowBuffer | None = None) -> None:
        self.state = state
        self.buffer = buffer

    # -- sizes (also the CodeSource protocol of the out-of-core search) ------------------
    @property
    def nbits(self) -> int:
        return self.state.nbits

    @property
    def code_size(self) -> int:
        return self.state.code_size

    @property
    def shard_rows(self) -> int:
        return self.state.shard_rows

    @property
    def chunk_rows(self) -> int:
        return self.state.chunk_rows

    @property
    def ntotal(self) -> int:
        """Rows visible: committed rows, or for the writer every row appended so far."""
        return self.buffer.stop if self.buffer is not None else self.state.committed

    @property
    def disk_rows(self) -> int:
        """Rows readable from disk (the rest of :attr:`ntotal` is the writer's buffer)."""
        return self.buffer.start if self.buffer is not None else self.state.committed

    @property
    def ids_are_positions(self) -> bool:
        return self.state.id_policy.positions

    # -- reading ---------------------------------------------------------------------
    def fields(self, fields: Sequence[str]) -> list[str]:
        """``fields`` checked: known names of arrays this store has.

        Raises:
            ValueError: an unknown field, or one this store does not keep.
        """
        out = []
        for f in fields:
            if f not in FIELDS:
                raise ValueError(f"unknown field {f!r}; fields are {list(FIELDS)}")
            if f not in self.state.files.arrays:
                raise ValueError(f"this store has no {f!r} array")
            out.append(f)
        return out

    def check_range(self, start: int | None, stop: int | None) -> tuple[int, int]:
        """``[start, stop)`` with defaults filled in (the whole store), checked.

        Raises:
            IndexError: outside ``[0, ntotal)``.
        """
        n = self.ntotal
        start = 0 if start is None else int(start)
        stop = n if stop is None else int(stop)
        if not 0 <= start <= stop <= n:
            raise IndexError(f"rows [{start}, {stop}) are outside the store's {n} rows")
        return start, stop

    def read_array(self, name: str, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows [start, stop) of one array from disk (shard by shard, checked)."""
        from zarr.core.buffer.cpu import NDBuffer

        arr = self.state.files.arrays[name]
        if out is None:
            out = np.empty((stop - start, *tuple(arr.shape[1:])), dtype=arr.dtype)
        checker = self.state.files.checkers[name]
        checker.check(start, stop)
        shard = self.shard_rows
        pos = start
        while pos < stop:
            hi = min(stop, (pos // shard + 1) * shard)
            target = out[pos - start : hi - start]
            base = pos // shard * shard
            if not checker.read_direct(pos // shard, pos - base, hi - base, target):
                read_with_retries(
                    functools.partial(arr.get_basic_selection, slice(pos, hi), out=NDBuffer.from_numpy_array(target)),
                    functools.partial(_rows_message, checker, pos // shard, pos, hi),
                )
            pos = hi
        return out

    def read_into(self, field: str, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """Rows [start, stop) of one (checked) field into ``out``: from disk, then from the buffer."""
        disk = self.disk_rows
        if start < disk:
            self.read_array(field, start, min(stop, disk), out=out[: min(stop, disk) - start])
        if stop > disk:
            assert self.buffer is not None
            lo = max(start, disk)
            out[lo - start :] = self.buffer.columns[field][lo - self.buffer.start : stop - self.buffer.start]
        return out

    def read(self, start: int, stop: int, fields: Sequence[str]) -> StoreBlock:
        """Rows [start, stop) (checked) of the (checked) fields, in fresh arrays."""
        block = StoreBlock(start, stop)
        for f in fields:
            arr = self.state.files.arrays[f]
            out = np.empty((stop - start, *tuple(arr.shape[1:])), dtype=arr.dtype)
            setattr(block, f, self.read_into(f, start, stop, out))
        return block

    def iter_blocks(
        self, block_rows: int | None, start: int, stop: int, fields: Sequence[str], prefetch_blocks: int
    ) -> Iterator[StoreBlock]:
        """Blocks of ``block_rows`` rows (default one shard) over [start, stop), read ahead."""
        rows = self.shard_rows if block_rows is None else check_int(block_rows, "block_rows")
        ranges = [(lo, min(stop, lo + rows)) for lo in range(start, stop, rows)]
        for _lo, _hi, block in prefetch(ranges, lambda a, b, _buf: self.read(a, b, fields), depth=prefetch_blocks):
            yield block

    # -- the CodeSource protocol: codes for the out-of-core search ------------------------
    def read_codes(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """Codes of disk rows [start, stop) into ``out`` (uint8 (stop - start, code_size))."""
        return self.read_array("codes", start, stop, out=out)

    def advise(self, start: int, stop: int) -> None:
        """Ask the OS to start reading the codes of disk rows [start, stop)."""
        self.state.files.checkers["codes"].advise_willneed(start, min(stop, self.disk_rows))

    def memory_codes(self, start: int, stop: int) -> np.ndarray:
        """Codes of rows [start, stop) past :attr:`disk_rows` (the writer's buffer), a view."""
        assert self.buffer is not None
        return self.buffer.columns["codes"][start - self.buffer.start : stop - self.buffer.start]

    def ids_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Ids of ``rows`` (sorted, unique, int64, in [0, ntotal)): int64, same shape."""
        ids = np.empty(rows.shape, np.int64)
        on_disk = rows < self.disk_rows
        if on_disk.any():
            ids[on_disk] = self._ids_on_disk(rows[on_disk])
        if (~on_disk).any():
            assert self.buffer is not None
            ids[~on_disk] = self.buffer.columns["ids"][rows[~on_disk] - self.buffer.start]
        return ids

    def ids_at(self, positions: np.ndarray) -> np.ndarray:
        """Map row positions (any shape, -1 for padding) to ids, keeping -1."""
        return positions_to_ids(positions, None if self.ids_are_positions else self.ids_of_rows)

    def _ids_on_disk(self, rows: np.ndarray) -> np.ndarray:
        arr = self.state.files.arrays["ids"]
        checker = self.state.files.checkers["ids"]
        shard = self.shard_rows
        disk = self.disk_rows
        for s in np.unique(rows // shard):
            lo = int(s) * shard
            checker.check(lo, min(disk, lo + shard))
        ids = read_with_retries(
            lambda: arr.get_coordinate_selection(rows),
            lambda: f"{self.state.location.describe('ids')}: cannot read ids",
        )
        return np.asarray(ids, dtype=np.int64)

    # -- refresh ---------------------------------------------------------------------
    def refresh(self) -> int:
        """Pick up rows committed since the store was opened (read-only stores).

        Returns:
            The committed row count now.
        """
        state = self.state
        meta = read_metadata(state.zstore, state.location, state.nbits)
        state.meta = meta
        state.committed = int(meta["nrows"])
        state.id_policy = id_policy_from_metadata(meta)
        if any(arr.shape[0] < state.committed for arr in state.files.arrays.values()):
            state.open_files()
        logger.debug("%s: refreshed, %d committed rows", state.location.describe(), state.committed)
        return state.committed
