"""``CodeStore``: packed binary codes on disk, in a sharded Zarr v3 group.

:class:`CodeStore` is the facade users hold; the work is done by its parts:

- :mod:`.metadata`: the attributes (schema, format version, checks) and
  :class:`StoreConfig`; :mod:`.layout`: the arrays, creating and opening a store;
- :mod:`.writer`: buffered appends, commits and crash recovery (the
  consistency rules are written down there), under the lock of :mod:`._lock`;
- :mod:`.view`: the reading side of the facade (properties, reads, search,
  verify); :mod:`.reader`: reading rows and blocks, mapping positions to ids;
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

This module owns the public class: creating and opening a store, and its
writing side (appends, flush, close, provenance, reserved ids, the lock), in the
order of their steps (checks, lock, recovery). It imports the store's own
modules, the base modules and :mod:`hashsearch.search.outofcore`; nothing above
the store.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Literal, Self

from hashsearch._validate import check_nbits
from hashsearch.errors import StoreError
from hashsearch.search.outofcore import DEFAULT_MEMORY_LIMIT
from hashsearch.store._lock import LockHolder, WriteLock, break_lock
from hashsearch.store._zarrio import StoreLocation, resolve_location
from hashsearch.store.layout import StoreState, create_store, open_store
from hashsearch.store.metadata import FORMAT_NAME, FORMAT_VERSION, StoreConfig, check_encoder
from hashsearch.store.reader import StoreBlock, StoreReader
from hashsearch.store.verify import VerifyReport
from hashsearch.store.view import StoreView
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


class CodeStore(StoreView):
    """Packed binary codes (with ids, optional labels and source) in a Zarr v3 group.

    Do not call the constructor: use :meth:`create` or :meth:`open`. A store
    opened with ``mode="a"`` (or created) holds the write lock until
    :meth:`close`; use it as a context manager. Reading, searching and checking
    (:meth:`read`, :meth:`search`, :meth:`verify`, ...) are :class:`StoreView`'s.

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
