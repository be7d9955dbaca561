"""``CodeStore``: packed binary codes on disk, in a sharded Zarr v3 group.

:class:`CodeStore` is the facade users hold; the work is done by its parts:

- :mod:`.metadata`: the attributes (schema, format version, checks) and
  :class:`StoreConfig`; :mod:`.layout`: the arrays, creating and opening a store;
- :mod:`.writer`: buffered appends, commits and crash recovery (the
  consistency rules are written down there), under the lock of :mod:`._lock`;
- :mod:`.reader`: reading rows and blocks, mapping result positions to ids;
- :mod:`.verify`: checking every shard, the ids and the metadata;
- :mod:`hashsearch.search.outofcore`: the k-NN search that streams the store.

In short: ``nrows`` (a group attribute) is the committed row count and the
truth; appends are buffered to shard boundaries and committed only once their
rows are on disk, so a writer killed at any point leaves the last committed
rows; one writer at a time holds the lock while any number of readers read;
damaged files raise :class:`~hashsearch.errors.CorruptStoreError` naming the
file, foreign or newer stores :class:`~hashsearch.errors.IncompatibleStoreError`;
a rejected append changes nothing.

>>> import numpy as np, tempfile, os
>>> from hashsearch import CodeStore, pack
>>> path = os.path.join(tempfile.mkdtemp(), "codes.zarr")
>>> with CodeStore.create(path, nbits=64, shard_rows=4096, chunk_rows=1024) as store:
...     store.append(pack(np.random.default_rng(0).standard_normal((10_000, 64))))
>>> store = CodeStore.open(path)
>>> len(store), store.nbits
(10000, 64)
>>> D, I = store.search(store.read_codes(5, 6), k=1)
>>> int(I[0, 0]), int(D[0, 0])
(5, 0)

This module owns the public class and the order of its steps (checks, lock,
recovery). It imports the store's own modules, the base modules and
:mod:`hashsearch.search.outofcore`; nothing above the store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Literal, Self

import numpy as np

from hashsearch._validate import check_nbits
from hashsearch.backends import Backend
from hashsearch.errors import StoreError
from hashsearch.search import outofcore
from hashsearch.search.outofcore import DEFAULT_MEMORY_LIMIT
from hashsearch.store._lock import LockHolder, WriteLock, break_lock, current_holder
from hashsearch.store._zarrio import ShardChecker, StoreLocation, resolve_location
from hashsearch.store.layout import StoreState, create_store, open_store
from hashsearch.store.metadata import FORMAT_NAME, FORMAT_VERSION, StoreConfig, check_encoder
from hashsearch.store.reader import StoreBlock, StoreReader
from hashsearch.store.verify import VerifyReport, verify_store
from hashsearch.store.writer import StoreWriter

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CodeStore",
    "StoreBlock",
    "StoreConfig",
    "VerifyReport",
]

logger = logging.getLogger("hashsearch")


class CodeStore:
    """Packed binary codes (with ids, optional labels and source) in a Zarr v3 group.

    Do not call the constructor: use :meth:`create` or :meth:`open`. A store
    opened with ``mode="a"`` (or created) holds the write lock until
    :meth:`close`; use it as a context manager.

    Attributes:
        location: where the store lives (path or URL, and fsspec options).
        mode: ``"r"`` (read-only) or ``"a"`` (append).
        config: the store's layout (:class:`StoreConfig`, resolved).
    """

    # -- construction -----------------------------------------------------------------
    def __init__(self, location: StoreLocation, zstore: Any, meta: dict[str, Any], mode: str, lock: WriteLock | None):
        self.location = location
        self.mode = mode
        self._closed = False
        self._state = StoreState(location, zstore, mode, meta)
        self.config: StoreConfig = self._state.config
        self._writer = StoreWriter(self._state, lock) if lock is not None else None
        self._reader = self._writer.reader if self._writer is not None else StoreReader(self._state)

    @classmethod
    def create(
        cls,
        path: Any,
        nbits: int,
        *,
        shard_rows: int | None = None,
        chunk_rows: int | None = None,
        with_labels: bool = False,
        with_source: bool = False,
        encoder: dict[str, Any] | None = None,
        overwrite: bool = False,
        config: StoreConfig | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> CodeStore:
        """Create an empty store and open it for appending (write lock held).

        Args:
            path: local path, URL (``s3://...``, ``file://...``) or zarr Store.
            nbits: code length, a positive multiple of 8.
            shard_rows, chunk_rows: layout (see :class:`StoreConfig`); override
                ``config``.
            with_labels: keep an int64 label per code.
            with_source: keep a source (sensor) per code, one of
                ``config.source_names``.
            encoder: provenance of the codes, e.g. ``{"model": "sidhcnn-pan",
                "checkpoint_sha256": "...", "sensor": "GF-1 PAN"}`` (JSON values).
            overwrite: replace an existing Zarr store at ``path``.
            config: layout options; see :class:`StoreConfig`.
            storage_options: fsspec options for URLs.

        Raises:
            StoreError: something other than an empty directory or a Zarr store
                is at ``path``, or a store exists and ``overwrite`` is False.
            StoreLockedError: another writer holds the store (with ``overwrite``).
        """
        nbits = check_nbits(nbits)
        cfg = config or StoreConfig()
        if shard_rows is not None or chunk_rows is not None:
            cfg = replace(
                cfg,
                shard_rows=shard_rows if shard_rows is not None else cfg.shard_rows,
                chunk_rows=chunk_rows if chunk_rows is not None else cfg.chunk_rows,
            )
        cfg = cfg.resolved(nbits)
        location, zstore, meta, lock = create_store(
            path,
            nbits,
            cfg,
            with_labels=with_labels,
            with_source=with_source,
            encoder=check_encoder(encoder),
            overwrite=overwrite,
            storage_options=storage_options,
        )
        try:
            store = cls(location, zstore, meta, "a", lock)
        except BaseException:
            lock.release()
            raise
        logger.info("created code store %s (nbits=%d, shard_rows=%d)", location.describe(), nbits, cfg.shard_rows)
        return store

    @classmethod
    def open(
        cls,
        path: Any,
        mode: Literal["r", "a"] = "r",
        *,
        nbits: int | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> CodeStore:
        """Open an existing store.

        Args:
            path: local path, URL or zarr Store.
            mode: ``"r"`` to read (no lock; sees the rows committed now, see
                :meth:`refresh`) or ``"a"`` to append (takes the write lock).
            nbits: when given, the store's code length must equal it.
            storage_options: fsspec options for URLs.

        Raises:
            StoreError: no store at ``path``.
            IncompatibleStoreError: not a hashsearch store, or another nbits, bit
                order or format version (the message names the file).
            CorruptStoreError: unreadable metadata (names the file).
            StoreLockedError: ``mode="a"`` and another writer holds the lock.
        """
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        if nbits is not None:
            nbits = check_nbits(nbits)
        location, zstore, meta, lock = open_store(path, mode, nbits, storage_options)
        try:
            return cls(location, zstore, meta, mode, lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

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
        return f"CodeStore({self.location.describe()!r}, nbits={self.nbits}, ntotal={self.ntotal}, mode={state!r})"

    # -- context management and writing -----------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Flush buffered rows (writer), release the write lock; idempotent."""
        if self._closed:
            return
        try:
            if self._writer is not None and self._writer.broken is None:
                self._writer.flush()
        finally:
            self._closed = True
            if self._writer is not None:
                self._writer.release()

    def _check_open(self) -> None:
        """Raises StoreError when the store is closed."""
        if self._closed:
            raise StoreError(f"{self.location.describe()}: the store is closed")

    def _writable(self) -> StoreWriter:
        """The writer, once the store is known to be open, writable and not broken.

        Raises:
            StoreError: closed, read-only, or an earlier write failed.
        """
        self._check_open()
        if self._writer is None:
            raise StoreError(f"{self.location.describe()}: opened read-only (use CodeStore.open(path, mode='a'))")
        self._writer.check_usable()
        return self._writer

    def append(self, codes: Any, ids: Any = None, labels: Any = None, source: Any = None) -> None:
        """Append codes (and their ids, labels, source).

        Rows are buffered up to a shard boundary; whole shards are written as soon
        as they fill. The rows of this call become visible to readers (committed)
        once all of them are on disk: at a later append that completes their last
        shard, or at :meth:`flush` / :meth:`close`.

        Args:
            codes: uint8 (m, code_size), or (code_size,) for one code.
            ids: int (m,) distinct non-negative ids not yet in the store; default
                consecutive ids after the largest id so far.
            labels: int (m,) labels; required exactly when the store has labels.
            source: the source of every row (a name such as ``"pan"``), or (m,)
                names or uint8 indices into :attr:`source_names`; required
                exactly when the store has a source array.

        Raises:
            TypeError, ValueError: bad input (nothing is written).
            StoreError: the store is read-only or closed, or a write failed.
        """
        self._writable().append(codes, ids, labels, source)

    def flush(self) -> None:
        """Write buffered rows (the last, partial shard) and commit every append.

        A partial shard is rewritten whole when later appends complete it, so
        flush only when readers must see the rows now (``close`` flushes).
        """
        self._writable().flush()

    def set_encoder_info(self, info: dict[str, Any]) -> None:
        """Record (replace) the provenance of the codes, committed at once.

        Args:
            info: JSON-serialisable dict, e.g. ``{"model": "sidhcnn-mul",
                "checkpoint_sha256": "...", "sensor": "GF-1 MS", "nbits": 64}``.
        """
        self._writable().set_encoder_info(info)

    def reserve_ids(self, next_id: int) -> None:
        """Make default ids start at ``next_id`` or later (e.g. after ids were removed
        from an index that is saved). Flushes, then commits at once.

        Raises:
            TypeError: ``next_id`` is not an int.
            ValueError: ``next_id`` is not above every id in the store.
        """
        self._writable().reserve_ids(next_id)

    @staticmethod
    def break_lock(path: Any, *, storage_options: dict[str, Any] | None = None) -> LockHolder | None:
        """Remove the write-lock record of a store whose writer is gone.

        Local stores never need this (the kernel drops the lock of a dead writer);
        it refuses while a live process holds it. For object stores, make sure the
        holder named in the :class:`StoreLockedError` is really gone first.

        Returns:
            The holder the record named, or None when there was no lock.
        """
        location = resolve_location(path, storage_options)
        return break_lock(location.open(read_only=False), location.local_root)

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
        if self._writer is not None:
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

    def search_positions(
        self,
        queries: np.ndarray,
        k: int,
        backend: Backend,
        *,
        memory_limit: int,
        start: int = 0,
        stop: int | None = None,
        progress: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k *row positions* among rows [start, stop); inputs already validated
        (see :func:`hashsearch.search.outofcore.search_positions`).

        Returns:
            (D int32 (nq, k), positions int64 (nq, k), global row positions).
        """
        self._check_open()
        return outofcore.search_positions(
            self._reader, queries, k, backend, memory_limit=memory_limit, start=start, stop=stop, progress=progress
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
