"""Writing a code store: buffered appends, commits and crash recovery.

Consistency rules (the reason this module exists):

- ``nrows`` (the group attribute) is the truth. Arrays may be longer after an
  interrupted append (rows past ``nrows`` are invisible and are cut off by the
  next writer, :meth:`StoreWriter.recover`).
- Appends are buffered to shard boundaries: only whole shards are written,
  except by :meth:`StoreWriter.flush`, which writes the last, partial shard (a
  later append rewrites that shard whole).
- The row count is committed (one atomic rewrite of the group's ``zarr.json``)
  only after every array's data is written, and only at the end of an
  ``append()`` call: a reader never sees part of an append, and a writer killed
  at any point (``kill -9`` included) leaves a store that opens with its last
  committed rows. Zarr writes each file to a temporary name and renames it, so
  a shard is replaced whole; on object stores a PUT is atomic.
- Bad input raises before anything is written: a rejected append changes
  nothing. A write that fails leaves the writer *broken* (every later write is
  refused; the committed rows are intact).

This module owns :class:`StoreWriter`. It may import the base modules,
:mod:`.layout`, :mod:`.metadata`, :mod:`.reader` (the writer reads its partial shard back and
scans stored ids) and :mod:`._lock`; never the facade or the searches.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import numpy as np

from hashsearch._validate import as_codes
from hashsearch.errors import StoreError
from hashsearch.store._lock import WriteLock
from hashsearch.store.layout import StoreState
from hashsearch.store.metadata import check_encoder, now
from hashsearch.store.reader import RowBuffer, StoreReader

__all__ = ["StoreWriter"]

logger = logging.getLogger("hashsearch")

#: Largest piece written by one zarr call (bounds zarr's encode temporaries).
_WRITE_BYTES = 64 << 20


def _abandon_writer(lock: WriteLock, where: str, unflushed: list[int]) -> None:
    """Finalizer of a writer that was never closed: release the lock, say what was lost."""
    if unflushed[0]:
        logger.warning(
            "%s: a CodeStore opened for appending was not closed; its last %d appended rows "
            "were never committed (use `with CodeStore...:` or call close())",
            where,
            unflushed[0],
        )
    lock.release()


class StoreWriter:
    """Appends to one store while holding its write lock.

    Creating the writer recovers the store (:meth:`recover`) and registers a
    finalizer that releases the lock if the writer is dropped without
    :meth:`release`.

    Args:
        state: the store's shared state (opened writable, lock held).
        lock: the write lock.
    """

    def __init__(self, state: StoreState, lock: WriteLock) -> None:
        self.state = state
        self.lock = lock
        shard = state.shard_rows
        # rows < buffer.start are on disk; the buffer holds [buffer.start, buffer.stop)
        self.buffer = RowBuffer(start=state.committed // shard * shard)
        self.reader = StoreReader(state, self.buffer)
        self.broken: str | None = None
        self._disk_rows = state.committed
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self._unflushed = [0]  # rows appended but not committed, seen by the finalizer
        self._finalizer = weakref.finalize(self, _abandon_writer, lock, state.location.describe(), self._unflushed)
        self.recover()

    @property
    def ntotal(self) -> int:
        return self.buffer.stop

    def release(self) -> None:
        """Give the lock back (after a final :meth:`flush`); drop the buffer."""
        self._finalizer.detach()
        self.lock.release()
        self.buffer.columns = {}

    def check_usable(self) -> None:
        """Raises StoreError when an earlier write failed."""
        if self.broken is not None:
            raise StoreError(
                f"{self.state.location.describe()}: an earlier write failed ({self.broken}); "
                "the committed rows are intact: close and reopen the store"
            )

    # -- recovery ---------------------------------------------------------------------
    def recover(self) -> None:
        """Writer start-up: cut rows past the commit (an interrupted append), drop
        temporary files, and load the committed rows of the last partial shard."""
        state = self.state
        for name, arr in state.files.arrays.items():
            if arr.shape[0] > state.committed:
                logger.warning(
                    "%s: dropping %d uncommitted rows of %r left by an interrupted append",
                    state.location.describe(),
                    arr.shape[0] - state.committed,
                    name,
                )
                arr.resize((state.committed, *tuple(arr.shape[1:])))
        if state.location.local_root is not None:
            for tmp in state.location.local_root.rglob("*.partial"):
                logger.info("removing temporary file %s left by an interrupted write", tmp)
                tmp.unlink(missing_ok=True)
        tail = state.committed - self.buffer.start
        if tail:
            self._ensure_buffers()
            for name in state.files.arrays:
                self.reader.read_array(name, self.buffer.start, state.committed, out=self.buffer.columns[name][:tail])
            self.buffer.length = tail

    def _ensure_buffers(self) -> None:
        columns = self.buffer.columns
        if columns:
            return
        rows = self.state.shard_rows
        for name, arr in self.state.files.arrays.items():
            columns[name] = np.empty((rows, *tuple(arr.shape[1:])), arr.dtype)

    # -- appending --------------------------------------------------------------------
    def append(self, codes: Any, ids: Any, labels: Any, source: Any) -> None:
        """See :meth:`hashsearch.CodeStore.append`."""
        self.check_usable()
        meta = self.state.meta
        new_codes = as_codes(codes, self.state.nbits, "codes")
        m = new_codes.shape[0]
        new_labels = self._check_labels(labels, m, bool(meta.get("labels")))
        new_source = self._check_source(source, m, bool(meta.get("source")))
        total = self.ntotal
        policy = self.state.id_policy
        new_ids = policy.propose(ids, m, find_clash=self._stored_one_of, what="store")
        if m == 0:
            return
        columns: dict[str, np.ndarray] = {"codes": new_codes, "ids": new_ids}
        if new_labels is not None:
            columns["labels"] = new_labels
        if new_source is not None:
            columns["source"] = new_source
        # everything is checked: from here on, only writes
        policy.accept(new_ids, total, total - 1 if total and policy.increasing else None)
        self._pending.append(
            (total + m, {"next_id": policy.next_id, "max_id": policy.max_id, "ids_are_positions": policy.positions})
        )
        try:
            self._push(columns, m)
            self._commit_ready()
        except BaseException as exc:
            self.broken = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._unflushed[0] = self.ntotal - self.state.committed

    @staticmethod
    def _check_labels(labels: Any, m: int, has_labels: bool) -> np.ndarray | None:
        if not has_labels:
            if labels is not None:
                raise ValueError("this store has no labels array (create it with with_labels=True)")
            return None
        if labels is None:
            raise ValueError("this store keeps a label per code: pass labels=")
        arr = np.asarray(labels)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"labels must be integers, got dtype {arr.dtype}")
        if arr.ndim != 1 or arr.shape[0] != m:
            raise ValueError(f"labels must have shape ({m},), got {arr.shape}")
        if arr.dtype == np.uint64 and m and arr.max() > np.iinfo(np.int64).max:
            raise ValueError("labels do not fit in int64")
        return np.ascontiguousarray(arr, dtype=np.int64)

    def _check_source(self, source: Any, m: int, has_source: bool) -> np.ndarray | None:
        names = self.state.config.source_names
        if not has_source:
            if source is not None:
                raise ValueError("this store has no source array (create it with with_source=True)")
            return None
        if source is None:
            raise ValueError(f"this store keeps a source per code: pass source= (one of {list(names)})")
        if isinstance(source, str):
            if source not in names:
                raise ValueError(f"unknown source {source!r}; this store's sources are {list(names)}")
            return np.full(m, names.index(source), dtype=np.uint8)
        arr = np.asarray(source)
        if arr.ndim != 1 or arr.shape[0] != m:
            raise ValueError(f"source must be one name or have shape ({m},), got {arr.shape}")
        if arr.dtype.kind in "US" or arr.dtype == object:
            lookup = {n: i for i, n in enumerate(names)}
            try:
                return np.fromiter((lookup[str(v)] for v in arr), dtype=np.uint8, count=m)
            except KeyError as exc:
                raise ValueError(f"unknown source {exc.args[0]!r}; this store's sources are {list(names)}") from None
        if arr.dtype.kind not in "iu":
            raise TypeError(f"source must be names or integer indices, got dtype {arr.dtype}")
        if m and (arr.min() < 0 or arr.max() >= len(names)):
            raise ValueError(f"source indices must be in 0..{len(names) - 1} ({list(names)})")
        return np.ascontiguousarray(arr, dtype=np.uint8)

    def _stored_one_of(self, new_ids: np.ndarray) -> int | None:
        """One of ``new_ids`` (int64) that is already in the store, or None (scans the stored ids)."""
        sorted_new = np.sort(new_ids)

        def clash(stored: np.ndarray) -> int | None:
            if stored.size == 0:
                return None
            where = np.minimum(np.searchsorted(sorted_new, stored), sorted_new.size - 1)
            hit = sorted_new[where] == stored
            return int(stored[np.argmax(hit)]) if hit.any() else None

        logger.debug("checking %d new ids against the %d stored ones", new_ids.size, self.ntotal)
        buf = self.buffer
        found = clash(buf.columns["ids"][: buf.length]) if buf.length else None
        for block in self.reader.iter_blocks(None, 0, buf.start, ("ids",), prefetch_blocks=1):
            if found is not None:
                break
            found = clash(block.ids)  # type: ignore[arg-type]
        return found

    def _push(self, columns: dict[str, np.ndarray], m: int) -> None:
        shard = self.state.shard_rows
        buf = self.buffer
        pos = 0
        if buf.length:
            take = min(m, shard - buf.length)
            self._ensure_buffers()
            for name, values in columns.items():
                buf.columns[name][buf.length : buf.length + take] = values[:take]
            buf.length += take
            pos = take
            if buf.length == shard:
                self._write_rows(buf.start, {n: b[:shard] for n, b in buf.columns.items()})
                buf.start += shard
                buf.length = 0
        full = (m - pos) // shard * shard
        if full:
            row_bytes = self.state.code_size + 8 * (len(columns) - 1)
            step = max(shard, _WRITE_BYTES // (row_bytes * shard) * shard)
            for lo in range(pos, pos + full, step):
                hi = min(pos + full, lo + step)
                self._write_rows(buf.start, {n: v[lo:hi] for n, v in columns.items()})
                buf.start += hi - lo
            pos += full
        rest = m - pos
        if rest:
            self._ensure_buffers()
            for name, values in columns.items():
                buf.columns[name][:rest] = values[pos:]
            buf.length = rest

    def _write_rows(self, start: int, columns: dict[str, np.ndarray]) -> None:
        """Write rows [start, start + n) of every array (resizing them first)."""
        n = len(columns["codes"])
        stop = start + n
        files = self.state.files
        for arr in files.arrays.values():
            if arr.shape[0] < stop:
                arr.resize((stop, *tuple(arr.shape[1:])))
        for name, arr in files.arrays.items():
            arr[start:stop] = columns[name]
        shard = self.state.shard_rows
        for checker in files.checkers.values():
            for s in range(start // shard, (stop - 1) // shard + 1):
                checker.forget(s)
        self._disk_rows = max(self._disk_rows, stop)

    # -- committing -------------------------------------------------------------------
    def _commit_ready(self) -> None:
        """Commit the rows of every append whose rows are all on disk."""
        ready = [p for p in self._pending if p[0] <= self._disk_rows]
        if not ready:
            return
        nrows, state = ready[-1]
        self._pending = self._pending[len(ready) :]
        self.commit(nrows, state)

    def commit(self, nrows: int, changes: dict[str, Any]) -> None:
        """Rewrite the group's attributes with ``changes`` and ``nrows`` (one atomic write)."""
        state = self.state
        meta = dict(state.meta)
        meta.update(changes)
        meta["nrows"] = int(nrows)
        meta["updated"] = now()
        state.files.group.update_attributes({"hashsearch": meta})
        state.meta = meta
        state.committed = int(nrows)
        self._unflushed[0] = self.ntotal - state.committed
        logger.debug("%s: committed %d rows", state.location.describe(), nrows)

    def flush(self) -> None:
        """Write buffered rows (the last, partial shard) and commit every append."""
        self.check_usable()
        buf = self.buffer
        try:
            if buf.stop > self._disk_rows:
                self._write_rows(buf.start, {n: b[: buf.length] for n, b in buf.columns.items()})
            self._commit_ready()
        except BaseException as exc:
            self.broken = f"{type(exc).__name__}: {exc}"
            raise

    def set_encoder_info(self, info: dict[str, Any]) -> None:
        """Record (replace) the provenance of the codes, committed at once."""
        self.check_usable()
        enc = check_encoder(info)
        state = self.state
        meta = dict(state.meta)
        meta["encoder"] = enc
        meta["updated"] = now()
        state.files.group.update_attributes({"hashsearch": meta})
        state.meta = meta

    def reserve_ids(self, next_id: int) -> None:
        """Make default ids start at ``next_id`` or later; flushes, then commits at once."""
        self.check_usable()
        if isinstance(next_id, bool) or not isinstance(next_id, (int, np.integer)):
            raise TypeError(f"next_id must be an int, got {type(next_id).__name__}")
        policy = self.state.id_policy
        if next_id <= policy.max_id:
            raise ValueError(f"next_id {next_id} must be above the largest id in the store ({policy.max_id})")
        self.flush()
        policy.reserve(next_id)
        self.commit(self.state.committed, {"next_id": policy.next_id})
