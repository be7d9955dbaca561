"""Low-level Zarr v3 I/O of the code store: locations, JSON documents, shard checks
and direct reads.

Everything here names the file (or object key) it is about in its errors, so a
user can find the damaged part of a store. The store's own rules (metadata,
row counts, commits, buffering) live in :mod:`hashsearch.store.layout` and
:mod:`hashsearch.store.writer`.

This module owns :class:`StoreLocation` (where a store lives, reopenable by
other processes), :func:`read_json`, the shard-index format
(:func:`shard_index_entries`) and :class:`ShardChecker` (existence, size and
checksum checks, and the ``preadv`` fast path). It imports NumPy, zarr (inside
functions), ``google_crc32c`` and :mod:`hashsearch.errors`; nothing else of
hashsearch.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hashsearch.errors import CorruptStoreError, StoreError

__all__ = [
    "ShardChecker",
    "StoreLocation",
    "read_json",
    "resolve_location",
    "shard_index_entries",
]

#: Bytes of one inner-chunk entry in a shard index (offset and length, uint64 each).
_INDEX_ENTRY_BYTES = 16
#: Bytes of the CRC32C checksum that ends every shard index.
_INDEX_CRC_BYTES = 4
_MISSING = np.uint64(2**64 - 1)


@dataclass(frozen=True)
class StoreLocation:
    """Where a store lives, in a form that other processes (Dask workers) can reopen.

    Attributes:
        url: the local path (absolute) or the URL, as used to open the store.
        storage_options: fsspec options for URLs (credentials, endpoints); None locally.
        local_root: the directory of a store on a local file system, else None.
        store: a zarr Store object given directly (e.g. ``MemoryStore``); such a
            location cannot be reopened in another process.
    """

    url: str
    storage_options: dict[str, Any] | None = None
    local_root: Path | None = None
    store: Any = field(default=None, compare=False)

    @property
    def shareable(self) -> bool:
        """True when another process can open the store from ``url`` alone."""
        return self.store is None

    def describe(self, key: str = "") -> str:
        """Human-readable name of the store or of one of its files (``key``)."""
        if not key:
            return self.url
        if self.local_root is not None:
            return str(self.local_root / key)
        return f"{self.url.rstrip('/')}/{key}"

    def open(self, *, read_only: bool) -> Any:
        """A zarr ``Store`` for this location."""
        from zarr.storage import FsspecStore, LocalStore

        if self.store is not None:
            if read_only and not getattr(self.store, "read_only", False) and hasattr(self.store, "with_read_only"):
                return self.store.with_read_only(True)
            return self.store
        if self.local_root is not None:
            return LocalStore(self.local_root, read_only=read_only)
        try:
            return FsspecStore.from_url(self.url, storage_options=self.storage_options, read_only=read_only)
        except (ImportError, ValueError) as exc:
            raise StoreError(f"cannot open store URL {self.url}: {exc}") from exc


def resolve_location(path: Any, storage_options: dict[str, Any] | None = None) -> StoreLocation:
    """Turn a path, URL or zarr Store into a :class:`StoreLocation`.

    Args:
        path: a local path (str or ``os.PathLike``), a ``file://`` URL, any URL
            fsspec understands (``s3://bucket/codes.zarr``, ``gs://...``,
            ``memory://...``), or a zarr ``Store`` object.
        storage_options: passed to fsspec for URLs.
    """
    from zarr.abc.store import Store
    from zarr.storage import LocalStore

    if isinstance(path, StoreLocation):
        return path
    if isinstance(path, Store):
        if isinstance(path, LocalStore):
            root = Path(path.root).resolve()
            return StoreLocation(str(root), None, root)
        return StoreLocation(f"<{type(path).__name__} {id(path):#x}>", None, None, store=path)
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise TypeError(f"store path must be a path, URL or zarr Store, got {type(path).__name__}")
    if path.startswith("file://"):
        path = path[len("file://") :]
    if "://" in path:
        return StoreLocation(path, dict(storage_options or {}), None)
    root = Path(path).expanduser().resolve()
    return StoreLocation(str(root), None, root)


def read_json(store: Any, key: str, where: StoreLocation) -> dict[str, Any] | None:
    """Read and parse a JSON document of the store; None when the key does not exist.

    Raises:
        CorruptStoreError: the document is not valid JSON (names the file).
    """
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    try:
        buf = sync(store.get(key, prototype=default_buffer_prototype()))
    except (IsADirectoryError, NotADirectoryError):
        return None
    if buf is None:
        return None
    try:
        doc = json.loads(buf.to_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptStoreError(f"{where.describe(key)}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CorruptStoreError(f"{where.describe(key)}: expected a JSON object")
    return doc


def shard_index_entries(raw_tail: bytes, nchunks: int) -> np.ndarray:
    """Decode the (offset, nbytes) table at the end of a shard (zarr v3 sharding, index at end).

    Args:
        raw_tail: at least the last ``nchunks * 16 + 4`` bytes of the shard.
        nchunks: inner chunks per shard.

    Returns:
        uint64 (nchunks, 2); rows of 2**64 - 1 mark chunks that are not stored.
    """
    size = nchunks * _INDEX_ENTRY_BYTES
    table = np.frombuffer(raw_tail[-(size + _INDEX_CRC_BYTES) : -_INDEX_CRC_BYTES], dtype="<u8")
    return table.reshape(nchunks, 2)


class ShardChecker:
    """Cheap checks of the shard files of one array before they are read.

    Zarr reads a missing or empty shard as fill values without complaint; these
    checks turn that into :class:`CorruptStoreError` naming the file. Truncation and
    bit flips inside a shard are caught by the CRC32C checksums zarr verifies.

    Args:
        array: the zarr Array (sharded along axis 0).
        name: the array's key in the group (``"codes"``).
        store: the zarr Store.
        where: the store's location (for messages).
        uncompressed_row_bytes: bytes per row for arrays stored without compression
            (enables a tighter minimum size), else None.
        checksum: inner chunks carry a 4-byte CRC32C.
    """

    def __init__(
        self,
        array: Any,
        name: str,
        store: Any,
        where: StoreLocation,
        *,
        uncompressed_row_bytes: int | None,
        checksum: bool,
    ) -> None:
        self.array = array
        self.name = name
        self.store = store
        self.where = where
        self.shard_rows = int(array.shards[0])
        self.chunk_rows = int(array.chunks[0])
        self.nchunks = math.prod(s // c for s, c in zip(array.shards, array.chunks, strict=True))
        self.index_bytes = self.nchunks * _INDEX_ENTRY_BYTES + _INDEX_CRC_BYTES
        self.row_bytes = uncompressed_row_bytes
        self.chunk_overhead = 4 if checksum else 0
        self._verified: set[tuple[int, int]] = set()
        self._direct = (
            where.local_root is not None
            and uncompressed_row_bytes is not None
            and _plain_sharded_layout(array, checksum)
        )

    @property
    def direct(self) -> bool:
        """True when :meth:`read_direct` may read this array straight from its files
        (a local store, uncompressed, in exactly the layout the store writes)."""
        return self._direct

    def key(self, shard: int) -> str:
        coords = (shard,) + (0,) * (self.array.ndim - 1)
        return f"{self.name}/{self.array.metadata.encode_chunk_key(coords)}"

    def describe(self, shard: int) -> str:
        return self.where.describe(self.key(shard))

    def _size(self, key: str) -> int | None:
        if self.where.local_root is not None:
            try:
                return os.stat(self.where.local_root / key).st_size
            except FileNotFoundError:
                return None
        from zarr.core.sync import sync

        try:  # getsize raises FileNotFoundError for a missing key: no separate exists() request
            return int(sync(self.store.getsize(key)))
        except FileNotFoundError:
            return None

    def min_size(self, rows: int) -> int:
        """Smallest possible size of a shard holding ``rows`` (> 0) rows."""
        if self.row_bytes is None:
            return self.index_bytes + 1
        chunks = -(-rows // self.chunk_rows)
        return self.index_bytes + chunks * (self.chunk_rows * self.row_bytes + self.chunk_overhead)

    def check(self, start: int, stop: int) -> None:
        """Check the shards that hold rows [start, stop) exist and are not too short.

        Raises:
            CorruptStoreError: naming the first missing or truncated shard file.
        """
        if stop <= start:
            return
        first, last = start // self.shard_rows, (stop - 1) // self.shard_rows
        for shard in range(first, last + 1):
            lo = shard * self.shard_rows
            rows = min(stop, lo + self.shard_rows) - lo
            if (shard, rows) in self._verified:
                continue
            size = self._size(self.key(shard))
            if size is None:
                raise CorruptStoreError(
                    f"{self.describe(shard)}: shard file missing (it holds committed rows {lo}..{lo + rows - 1})"
                )
            need = self.min_size(rows)
            if size < need:
                raise CorruptStoreError(
                    f"{self.describe(shard)}: shard file truncated ({size} bytes, at least {need} expected)"
                )
            self._verified.add((shard, rows))

    def forget(self, shard: int | None = None) -> None:
        """Drop cached check results (after the file was rewritten)."""
        if shard is None:
            self._verified.clear()
        else:
            self._verified = {v for v in self._verified if v[0] != shard}

    def advise_willneed(self, start: int, stop: int) -> None:
        """Ask the OS to start reading the shard files of rows [start, stop) (local stores only)."""
        root = self.where.local_root
        if root is None or not hasattr(os, "posix_fadvise") or stop <= start:
            return
        for shard in range(start // self.shard_rows, (stop - 1) // self.shard_rows + 1):
            try:
                fd = os.open(root / self.key(shard), os.O_RDONLY)
            except OSError:
                continue  # reported by the read itself
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:  # pragma: no cover - file systems without fadvise
                pass
            finally:
                os.close(fd)

    def read_index(self, shard: int) -> np.ndarray:
        """The shard's inner-chunk table (see :func:`shard_index_entries`)."""
        from zarr.abc.store import SuffixByteRequest
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.sync import sync

        buf = sync(
            self.store.get(
                self.key(shard), prototype=default_buffer_prototype(), byte_range=SuffixByteRequest(self.index_bytes)
            )
        )
        if buf is None or len(buf) < self.index_bytes:
            raise CorruptStoreError(f"{self.describe(shard)}: shard file missing or shorter than its index")
        return shard_index_entries(buf.to_bytes(), self.nchunks)

    def missing_chunks(self, shard: int, rows: int) -> list[int]:
        """Inner chunks (indices within the shard) that should hold some of ``rows`` but are absent."""
        table = self.read_index(shard)
        needed = -(-rows // self.chunk_rows)
        return [i for i in range(needed) if table[i, 0] == _MISSING]

    def read_direct(self, shard: int, lo: int, hi: int, out: np.ndarray) -> bool:
        """Read rows [lo, hi) of one shard (shard-relative) straight from its local file.

        The fast path of the out-of-core search: whole inner chunks go from the file
        into ``out`` with one ``preadv`` each (no intermediate shard buffer, no codec
        pipeline), and every chunk's CRC32C and the index's CRC32C are verified. It
        applies to uncompressed arrays of a local store whose layout is exactly the
        one the store writes; anything else — another layout, a file that changed
        under the reader, a checksum mismatch — returns False, and the caller reads
        through zarr, which retries and reports damage naming the file.

        Args:
            shard: shard number.
            lo, hi: rows within the shard, 0 <= lo < hi <= shard_rows.
            out: C-contiguous uint8 (hi - lo, row_bytes) destination.

        Returns:
            True when ``out`` holds the verified rows.
        """
        if not self._direct or not out.flags.c_contiguous or out.dtype != np.uint8:
            return False
        assert self.where.local_root is not None and self.row_bytes is not None
        try:
            fd = os.open(self.where.local_root / self.key(shard), os.O_RDONLY)
        except OSError:
            return False
        try:
            return self._read_direct_fd(fd, lo, hi, out)
        except OSError:
            return False
        finally:
            os.close(fd)

    def _read_direct_fd(self, fd: int, lo: int, hi: int, out: np.ndarray) -> bool:
        assert self.row_bytes is not None
        size = os.fstat(fd).st_size
        data_end = size - self.index_bytes
        if data_end < 0:
            return False
        tail = os.pread(fd, self.index_bytes, data_end)
        if len(tail) != self.index_bytes or _crc32c(tail[:-_INDEX_CRC_BYTES]) != int.from_bytes(tail[-4:], "little"):
            return False
        table = shard_index_entries(tail, self.nchunks)
        rows, row_bytes = self.chunk_rows, self.row_bytes
        chunk_bytes = rows * row_bytes
        stored = chunk_bytes + self.chunk_overhead
        crc = bytearray(self.chunk_overhead)
        for c in range(lo // rows, (hi - 1) // rows + 1):
            offset, nbytes = int(table[c, 0]), int(table[c, 1])
            if nbytes != stored or offset + nbytes > data_end:
                return False  # a missing or foreign chunk: let zarr decide
            r0, r1 = max(lo, c * rows), min(hi, (c + 1) * rows)
            if r1 - r0 == rows:  # a whole chunk: straight into the destination
                dest = out[r0 - lo : r1 - lo].reshape(-1)
                buffers: list[Any] = [dest.data, crc] if crc else [dest.data]
                if os.preadv(fd, buffers, offset) != stored:
                    return False
                if crc and _crc32c(_readonly(dest)) != int.from_bytes(crc, "little"):
                    return False
            else:  # part of a chunk: the whole chunk is read so that it can be verified
                raw = os.pread(fd, stored, offset)
                if len(raw) != stored or (
                    crc and _crc32c(raw[:chunk_bytes]) != int.from_bytes(raw[chunk_bytes:], "little")
                ):
                    return False
                chunk = np.frombuffer(raw, np.uint8, count=chunk_bytes).reshape(rows, row_bytes)
                out[r0 - lo : r1 - lo] = chunk[r0 - c * rows : r1 - c * rows]
        return True


def _plain_sharded_layout(array: Any, checksum: bool) -> bool:
    """True when an array is stored exactly as the code store writes uncompressed arrays:
    sharding with the index at the end (little-endian bytes + CRC32C), inner chunks of
    plain bytes (+ CRC32C when ``checksum``)."""
    try:
        codecs = array.metadata.to_dict()["codecs"]
    except (AttributeError, KeyError, TypeError):
        return False
    if len(codecs) != 1 or codecs[0].get("name") != "sharding_indexed":
        return False
    config = codecs[0].get("configuration", {})
    inner = [c.get("name") for c in config.get("codecs", [])]
    index = [c.get("name") for c in config.get("index_codecs", [])]
    endian = [
        c.get("configuration", {}).get("endian", "little") for c in config.get("codecs", []) if c.get("name") == "bytes"
    ]
    return (
        config.get("index_location", "end") == "end"
        and inner == (["bytes", "crc32c"] if checksum else ["bytes"])
        and all(e == "little" for e in endian)
        and index == ["bytes", "crc32c"]
    )


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _crc32c(data: bytes | np.ndarray) -> int:
    """CRC32C (Castagnoli) of a bytes object or a read-only uint8 array (hardware-accelerated)."""
    import google_crc32c  # a dependency of zarr

    return int(google_crc32c.value(data))
