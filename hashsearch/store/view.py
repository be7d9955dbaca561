"""What an open code store offers for reading: its description, rows, search and checks.

:class:`StoreView` is the read half of the :class:`~hashsearch.CodeStore` facade
(the class users hold derives from it and adds creating, opening and writing):
properties read from the committed metadata (or, for a writer, from its running
id bookkeeping), rows and blocks through :mod:`.reader`, the k-NN search through
:mod:`hashsearch.search.outofcore`, and :mod:`.verify`. Every method checks that
the store is still open.

This module imports the store's reader, verify, lock and zarr I/O modules, the
base modules and :mod:`hashsearch.search.outofcore`; never the writer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from hashsearch.backends import Backend
from hashsearch.errors import StoreError
from hashsearch.search import outofcore
from hashsearch.store._lock import LockHolder, current_holder
from hashsearch.store._zarrio import ShardChecker, StoreLocation
from hashsearch.store.layout import StoreState
from hashsearch.store.metadata import StoreConfig
from hashsearch.store.reader import StoreBlock, StoreReader
from hashsearch.store.verify import VerifyReport, verify_store

__all__ = ["StoreView"]


class StoreView:
    """The reading side of an open :class:`~hashsearch.CodeStore` (see there).

    Attributes:
        location: where the store lives (path or URL, and fsspec options).
        mode: ``"r"`` (read-only) or ``"a"`` (append).
        config: the store's layout (:class:`StoreConfig`, resolved).
    """

    location: StoreLocation
    mode: str
    config: StoreConfig
    _state: StoreState
    _reader: StoreReader
    _closed: bool

    # -- properties -------------------------------------------------------------------
    @property
    def nbits(self) -> int:
        """Code length in bits."""
        return self._state.nbits

    @property
    def code_size(self) -> int:
        """Bytes per code (``nbits // 8``)."""
        return self._state.code_size

    @property
    def ntotal(self) -> int:
        """Rows visible to this object: committed rows for readers; for the writer,
        every row appended so far (including rows still buffered in memory)."""
        return self._reader.ntotal

    def __len__(self) -> int:
        return self.ntotal

    @property
    def committed_rows(self) -> int:
        """Rows committed on disk (what a reader opening the store now sees)."""
        return self._state.committed

    @property
    def path(self) -> str:
        """The store's path or URL."""
        return self.location.url

    @property
    def has_labels(self) -> bool:
        return bool(self._state.meta.get("labels"))

    @property
    def has_source(self) -> bool:
        return bool(self._state.meta.get("source"))

    @property
    def source_names(self) -> tuple[str, ...]:
        """Names of the ``source`` values (index i is stored as i)."""
        return self.config.source_names

    @property
    def encoder_info(self) -> dict[str, Any] | None:
        """Provenance of the codes (model, checkpoint hash, sensor, ...), or None."""
        enc = self._state.meta.get("encoder")
        return dict(enc) if enc else None

    @property
    def uuid(self) -> str:
        """Random id given to the store when it was created."""
        return str(self._state.meta.get("uuid", ""))

    @property
    def ids_are_positions(self) -> bool:
        """True when every id equals its row position (the default ids)."""
        return self._state.id_policy.positions

    @property
    def next_id(self) -> int:
        """The id that the next append without ``ids`` starts from."""
        return self._state.id_policy.next_id

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def attrs(self) -> dict[str, Any]:
        """A copy of the store's committed ``hashsearch`` attributes."""
        return json.loads(json.dumps(self._state.meta))

    @property
    def code_source(self) -> StoreReader:
        """The rows as the out-of-core search streams them
        (a :class:`~hashsearch.search.outofcore.CodeSource`; the writer's buffered
        rows included)."""
        self._check_open()
        return self._reader

    @property
    def _checkers(self) -> dict[str, ShardChecker]:
        """The shard checker of every array (for tests and tools)."""
        return self._state.files.checkers

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.mode
        where = self.location.describe()
        return f"{type(self).__name__}({where!r}, nbits={self.nbits}, ntotal={self.ntotal}, mode={state!r})"

    def _check_open(self) -> None:
        """Raises StoreError when the store is closed."""
        if self._closed:
            raise StoreError(f"{self.location.describe()}: the store is closed")


    def lock_holder(self) -> LockHolder | None:
        """The writer recorded in the lock record (None when there is none)."""
        return current_holder(self._state.zstore, self.location.local_root)

    # -- reading ----------------------------------------------------------------------
    def refresh(self) -> int:
        """Readers: pick up rows committed since the store was opened.

        Returns:
            The new :attr:`ntotal`.
        """
        self._check_open()
        if self.mode == "a":
            return self.ntotal
        return self._reader.refresh()

    def read(
        self, start: int | None = None, stop: int | None = None, fields: Sequence[str] = ("codes", "ids")
    ) -> StoreBlock:
        """Rows [start, stop) of the chosen fields (a copy in memory).

        Args:
            start, stop: row range, default everything (mind the memory).
            fields: any of "codes", "ids", "labels", "source".

        Raises:
            IndexError: range outside the store. ValueError: unknown field.
            CorruptStoreError: a shard is missing, truncated or fails its checksum.
        """
        self._check_open()
        reader = self._reader
        checked = reader.fields(fields)
        return reader.read(*reader.check_range(start, stop), checked)

    def read_into(self, field: str, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """Read rows [start, stop) of one field into ``out`` (no intermediate copy).

        Args:
            field: "codes", "ids", "labels" or "source".
            start, stop: row range.
            out: array of the field's dtype, shape (stop - start, ...), C-contiguous.

        Returns:
            ``out``.
        """
        self._check_open()
        reader = self._reader
        (field,) = reader.fields([field])
        start, stop = reader.check_range(start, stop)
        return reader.read_into(field, start, stop, out)

    def read_codes(self, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Codes of rows [start, stop): uint8 (n, code_size)."""
        return self.read(start, stop, ("codes",)).codes  # type: ignore[return-value]

    def read_ids(self, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Ids of rows [start, stop): int64 (n,)."""
        return self.read(start, stop, ("ids",)).ids  # type: ignore[return-value]

    def read_labels(self, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Labels of rows [start, stop): int64 (n,)."""
        return self.read(start, stop, ("labels",)).labels  # type: ignore[return-value]

    def read_source(self, start: int | None = None, stop: int | None = None, *, names: bool = False) -> np.ndarray:
        """Source of rows [start, stop): uint8 indices (n,), or their names (``names=True``)."""
        src = self.read(start, stop, ("source",)).source
        assert src is not None
        return np.asarray(self.source_names, dtype=object)[src] if names else src

    def iter_blocks(
        self,
        block_rows: int | None = None,
        *,
        start: int | None = None,
        stop: int | None = None,
        fields: Sequence[str] = ("codes", "ids"),
        prefetch_blocks: int = 1,
    ) -> Iterator[StoreBlock]:
        """Iterate over rows [start, stop) in blocks, reading ahead in a thread.

        Args:
            block_rows: rows per block; default one shard. Blocks are aligned to
                multiples of ``block_rows`` from ``start``.
            start, stop: row range (default all rows).
            fields: fields to read.
            prefetch_blocks: blocks read ahead (0: read in the calling thread).

        Yields:
            :class:`StoreBlock` (fresh arrays, safe to keep).
        """
        self._check_open()
        reader = self._reader
        checked = reader.fields(fields)
        lo, hi = reader.check_range(start, stop)
        yield from reader.iter_blocks(block_rows, lo, hi, checked, prefetch_blocks)

    def ids_at(self, positions: np.ndarray) -> np.ndarray:
        """Map row positions to ids, keeping -1 (padding) as -1.

        Args:
            positions: int64 array of any shape, values in [-1, ntotal).

        Returns:
            int64 array of the same shape.
        """
        return self._reader.ids_at(positions)

    # -- searching (hashsearch.search.outofcore) ------------------------------------------
    def search(
        self,
        queries: Any,
        k: int,
        *,
        memory_limit: int | str | None = None,
        backend: str | Backend | None = "auto",
        num_threads: int | None = None,
        progress: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest codes, streaming the store in bounded memory.

        The store is read in blocks of whole shards (fewer rows when memory is
        tight) by a reader thread that stays one block ahead of the kernel; each
        block's top-k is merged into the running top-k with
        :func:`hashsearch.merge_topk`. Results equal those of
        ``BinaryIndex.from_store(store).search(queries, k)``, ties included
        (equal distances ordered by ascending row position).

        Args:
            queries: uint8 (nq, code_size), or (code_size,) for one query.
            k: neighbours per query, >= 1.
            memory_limit: bytes (or "512MB") this search may hold for its buffers
                (the queries, the top-k lists, two blocks of codes and zarr's read
                temporaries); default :data:`DEFAULT_MEMORY_LIMIT`. What it counts
                and what it does not: :mod:`hashsearch.search.outofcore`.
            backend: backend name, "auto" or instance.
            num_threads: kernel threads (default: the backend's default).
            progress: show a tqdm progress bar over the blocks.

        Returns:
            (D int32 (nq, k), I int64 (nq, k)): distances ascending and ids; padded
            with distance 2**31 - 1 and id -1 when k exceeds the rows.

        Raises:
            TypeError, ValueError: bad queries or k; an unparsable memory_limit, or
                one too small (the message gives the minimum).
            CorruptStoreError: a shard is missing, truncated or fails its checksum.
        """
        self._check_open()
        return outofcore.search(
            self._reader,
            queries,
            k,
            nbits=self.nbits,
            memory_limit=memory_limit,
            backend=backend,
            num_threads=num_threads,
            progress=progress,
        )

    # -- description and checks ---------------------------------------------------------
    def nbytes_on_disk(self) -> int | None:
        """Bytes the store's files take (local stores only, else None)."""
        root = self.location.local_root
        if root is None:
            return None
        return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())

    def info(self) -> dict[str, Any]:
        """A JSON-friendly summary (what ``hashsearch index info`` prints)."""
        meta = self._state.meta
        shard = self._state.shard_rows
        committed = self._state.committed
        return {
            "path": self.location.describe(),
            "format_version": meta.get("format_version"),
            "library_version": meta.get("library_version"),
            "uuid": self.uuid,
            "nbits": self.nbits,
            "bit_order": meta.get("bit_order"),
            "nrows": committed,
            "ntotal": self.ntotal,
            "shards": -(-committed // shard),
            "shard_rows": shard,
            "chunk_rows": self.config.chunk_rows,
            "aux_chunk_rows": self.config.aux_chunk_rows,
            "checksum": self.config.checksum,
            "labels": self.has_labels,
            "source": self.has_source,
            "source_names": list(self.source_names) if self.has_source else None,
            "ids_are_positions": self.ids_are_positions,
            "next_id": int(meta.get("next_id", 0)),
            "encoder": self.encoder_info,
            "created": meta.get("created"),
            "updated": meta.get("updated"),
            "bytes_on_disk": self.nbytes_on_disk(),
        }

    def verify(self, *, progress: bool = False, block_rows: int | None = None) -> VerifyReport:
        """Check every committed shard, the ids and the metadata; reads the whole store.

        Checks: each shard of each array exists, is long enough, lists every
        inner chunk that committed rows need, and decodes with valid checksums;
        ids are non-negative and unique (and equal positions when the store says
        so), below ``next_id``; sources are valid indices. Reports (as warnings)
        rows left past the commit by an interrupted append, temporary files, and
        the last writer's lock record.

        Returns:
            :class:`VerifyReport`; problems are collected, not raised.
        """
        self._check_open()
        return verify_store(self._reader, progress=progress, block_rows=block_rows)
