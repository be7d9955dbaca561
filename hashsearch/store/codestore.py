"""``CodeStore``: packed binary codes on disk, in a sharded Zarr v3 group.

A store is one Zarr v3 group (a local directory, or any URL fsspec reaches,
such as ``s3://bucket/codes.zarr``) holding row-aligned arrays:

=========  ==============  =========================================================
array      dtype, shape    storage
=========  ==============  =========================================================
codes      uint8 (N, B)    B = nbits / 8; shards of ``shard_rows`` rows split in
                           inner chunks of ``chunk_rows``; no compression, CRC32C
                           per chunk (measured: zstd saves 0 % on random codes and
                           5-10 % on clustered ones, 8 classes with 10 % bit flips,
                           while decoding at under 1 GB/s, slower than the search)
ids        int64 (N,)      zstd + CRC32C, inner chunks of ``aux_chunk_rows``
labels     int64 (N,)      optional (``with_labels``), like ids
source     uint8 (N,)      optional (``with_source``): index into ``source_names``
                           (default ``["pan", "ms"]``)
=========  ==============  =========================================================

Every array has the same shard size, so one *shard group* (the same rows of
every array) is the unit of writing and of distributed work. The group's
attributes, under the key ``"hashsearch"``, hold the format (``format_version``),
``nbits``, ``bit_order`` ("little", :data:`hashsearch.packing.BIT_ORDER`), the
layout, the library version, encoder provenance (model, checkpoint hash, sensor)
and **``nrows``, the committed row count**.

Consistency:

- ``nrows`` is the truth. Arrays may be longer after an interrupted append (rows
  past ``nrows`` are invisible and are cut off by the next writer).
- Appends are buffered to shard boundaries: only whole shards are written,
  except by :meth:`CodeStore.flush` / :meth:`CodeStore.close`, which write the
  last, partial shard (a later append rewrites that shard whole).
- The row count is committed (one atomic rewrite of the group's ``zarr.json``)
  only after every array's data is written, and only at the end of an
  ``append()`` call: a reader never sees part of an append, and a writer killed
  at any point (``kill -9`` included) leaves a store that opens with its last
  committed rows. Zarr writes each file to a temporary name and renames it,
  so a shard is replaced whole; on object stores a PUT is atomic.
- One writer at a time (see :mod:`hashsearch.store._lock`: ``flock`` on local file
  systems, so a dead writer never leaves a stale lock; a lock record elsewhere).
  Readers take no lock: any number may read while one writes, each seeing the
  rows committed when it opened (or last called :meth:`CodeStore.refresh`).
- Missing, empty or truncated shard files and checksum failures raise
  :class:`~hashsearch.errors.CorruptStoreError` naming the file; a store of
  another ``nbits``, bit order or format version raises
  :class:`~hashsearch.errors.IncompatibleStoreError`.
- Bad input raises before anything is written: a rejected append changes
  nothing.

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
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid as uuidlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from hashsearch._ids import IdPolicy
from hashsearch._version import __version__
from hashsearch.store._lock import LOCK_KEY, LockHolder, WriteLock, acquire_lock, break_lock, read_holder
from hashsearch.search.plan import empty_result, parse_bytes, plan_blocks, prefetch, result_bytes
from hashsearch._validate import as_codes, check_int, check_k, check_nbits, first_duplicate
from hashsearch.store._zarrio import ShardChecker, StoreLocation, read_json, resolve_location
from hashsearch.backends import PAD_POSITION, Backend, make_backend
from hashsearch.errors import CorruptStoreError, IncompatibleStoreError, StoreError
from hashsearch.functional import merge_topk, offset_positions
from hashsearch.packing import BIT_ORDER

__all__ = [
    "CodeStore",
    "StoreConfig",
    "StoreBlock",
    "VerifyReport",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DEFAULT_MEMORY_LIMIT",
]

logger = logging.getLogger("hashsearch")

#: ``format`` attribute of every code store.
FORMAT_NAME = "hashsearch.codestore"
#: Version of the on-disk layout this library writes and reads.
FORMAT_VERSION = 1
#: Memory budget of :meth:`CodeStore.search` when none is given (bytes).
DEFAULT_MEMORY_LIMIT = 512 * 2**20
#: Bytes of codes per inner chunk that the default layout aims at.
_TARGET_CHUNK_BYTES = 1 << 20
_MAX_CHUNK_ROWS = 1 << 17
_SHARD_CHUNKS = 16
_MAX_AUX_CHUNK_ROWS = 1 << 14
#: Largest block of codes the search reads at once: smaller blocks start the
#: pipeline sooner (the first read is not overlapped with compute) at a small
#: cost per kernel call.
_MAX_BLOCK_BYTES = 16 << 20
#: Largest piece written by one zarr call (bounds zarr's encode temporaries).
_WRITE_BYTES = 64 << 20
#: Attempts at reading a shard before it is declared corrupt (a shard being
#: replaced by a writer can fail a partial read once).
_READ_ATTEMPTS = 3

_ALL_FIELDS: tuple[str, ...] = ("codes", "ids", "labels", "source")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _pow2_floor(x: int) -> int:
    return 1 << max(0, int(x).bit_length() - 1)


def _largest_divisor_at_most(n: int, cap: int) -> int:
    """The largest divisor of ``n`` that is <= ``cap`` (>= 1)."""
    if n <= cap:
        return n
    for parts in range(-(-n // cap), n + 1):
        if n % parts == 0:
            return n // parts
    return 1  # pragma: no cover - parts == n always divides


@dataclass(frozen=True)
class StoreConfig:
    """Layout of a new code store (fixed once created).

    Args:
        shard_rows: rows per shard (the unit of writing, of buffering and of
            distributed work); a multiple of ``chunk_rows`` and of
            ``aux_chunk_rows``. Default: 16 inner chunks, at most 2**21 rows
            (16 MiB of codes at 64 bits).
        chunk_rows: rows per inner chunk of ``codes`` (the smallest unit read when
            memory is tight). Default: about 1 MiB of codes, at most 2**17 rows.
        aux_chunk_rows: rows per inner chunk of ids, labels and source (small, so
            mapping a few result positions to ids reads little). Default:
            ``min(chunk_rows, 16384)``.
        checksum: store a CRC32C with every inner chunk (detects bit rot; about
            15 % slower reads).
        compression_level: zstd level of ids, labels and source.
        source_names: names of the values of the ``source`` array (at most 255).
    """

    shard_rows: int | None = None
    chunk_rows: int | None = None
    aux_chunk_rows: int | None = None
    checksum: bool = True
    compression_level: int = 1
    source_names: tuple[str, ...] = ("pan", "ms")

    def resolved(self, nbits: int) -> StoreConfig:
        """A copy with every default filled in for ``nbits``-bit codes, checked.

        Raises:
            TypeError, ValueError: a size is not a positive int or does not divide.
        """
        nbytes = check_nbits(nbits) // 8
        for name in ("shard_rows", "chunk_rows", "aux_chunk_rows"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name)
        chunk = self.chunk_rows
        shard = self.shard_rows
        default_chunk = min(_MAX_CHUNK_ROWS, max(1024, _pow2_floor(_TARGET_CHUNK_BYTES // nbytes)))
        if chunk is None:
            chunk = default_chunk if shard is None else _largest_divisor_at_most(int(shard), default_chunk)
        if shard is None:
            shard = chunk * _SHARD_CHUNKS
        chunk, shard = int(chunk), int(shard)
        if shard % chunk:
            raise ValueError(f"shard_rows ({shard}) must be a multiple of chunk_rows ({chunk})")
        aux = self.aux_chunk_rows
        if aux is None:
            aux = _largest_divisor_at_most(shard, min(chunk, _MAX_AUX_CHUNK_ROWS))
        aux = int(aux)
        if shard % aux:
            raise ValueError(f"shard_rows ({shard}) must be a multiple of aux_chunk_rows ({aux})")
        names = tuple(self.source_names)
        if not names or len(names) > 255 or len(set(names)) != len(names) or not all(
            isinstance(n, str) and n for n in names
        ):
            raise ValueError(f"source_names must be 1..255 distinct non-empty strings, got {self.source_names!r}")
        if not 0 <= int(self.compression_level) <= 22:
            raise ValueError(f"compression_level must be in 0..22, got {self.compression_level}")
        return replace(self, shard_rows=shard, chunk_rows=chunk, aux_chunk_rows=aux, source_names=names)


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
class VerifyReport:
    """Result of :meth:`CodeStore.verify`: ``ok`` when ``errors`` is empty."""

    path: str
    nrows: int
    shards: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


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


def _read_with_retries(read: Callable[[], Any], where: Callable[[], str]) -> Any:
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


def _check_encoder(info: Any) -> dict[str, Any] | None:
    if info is None:
        return None
    if not isinstance(info, dict):
        raise TypeError(f"encoder info must be a dict (model, checkpoint hash, sensor, ...), got {type(info).__name__}")
    try:
        return json.loads(json.dumps(info))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"encoder info must be JSON-serialisable: {exc}") from None


class CodeStore:
    """Packed binary codes (with ids, optional labels and source) in a Zarr v3 group.

    Do not call the constructor: use :meth:`create` or :meth:`open`. A store
    opened with ``mode="a"`` (or created) holds the write lock until
    :meth:`close`; use it as a context manager.

    Attributes:
        location: where the store lives (path or URL, and fsspec options).
        mode: ``"r"`` (read-only) or ``"a"`` (append).
    """

    # -- construction -----------------------------------------------------------------
    def __init__(self, location: StoreLocation, zstore: Any, meta: dict[str, Any], mode: str, lock: WriteLock | None):
        self.location = location
        self.mode = mode
        self._zstore = zstore
        self._meta = meta
        self._lock = lock
        self._closed = False
        self._broken: str | None = None
        layout = meta["layout"]
        self.config = StoreConfig(
            shard_rows=int(layout["shard_rows"]),
            chunk_rows=int(layout["chunk_rows"]),
            aux_chunk_rows=int(layout["aux_chunk_rows"]),
            checksum=bool(layout["checksum"]),
            compression_level=int(layout.get("compression_level", 1)),
            source_names=tuple(meta.get("source_names") or ("pan", "ms")),
        )
        self._nbits = int(meta["nbits"])
        self._committed = int(meta["nrows"])
        self._group: Any = None
        self._arrays: dict[str, Any] = {}
        self._checkers: dict[str, ShardChecker] = {}
        self._open_arrays()
        # writer state (rows < _buf_start are on disk; the buffer holds [_buf_start, _buf_start + _buf_len))
        shard = self.config.shard_rows
        self._buf_start = self._committed // shard * shard
        self._buf_len = 0
        self._disk_rows = self._committed
        self._buffers: dict[str, np.ndarray] = {}
        self._pending: list[tuple[int, dict[str, Any]]] = []
        positions = bool(meta.get("ids_are_positions", True))
        # the store records whether ids are the positions, not whether they increase otherwise
        self._id_policy = IdPolicy(
            next_id=int(meta.get("next_id", 0)), max_id=int(meta.get("max_id", -1)), increasing=positions, positions=positions
        )
        if lock is not None:
            self._unflushed = [0]  # rows appended but not committed, seen by the finalizer
            self._finalizer = weakref.finalize(self, _abandon_writer, lock, location.describe(), self._unflushed)
            self._recover()

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
        encoder = _check_encoder(encoder)
        location = resolve_location(path, storage_options)
        if location.local_root is not None:
            root = location.local_root
            if root.exists() and not root.is_dir():
                raise StoreError(f"{root} exists and is not a directory")
            if root.is_dir() and any(p.name != LOCK_KEY for p in root.iterdir()) and not (root / "zarr.json").exists():
                raise StoreError(f"{root} exists, is not empty and is not a Zarr store; refusing to write into it")
        zstore = location.open(read_only=False)
        existing = read_json(zstore, "zarr.json", location)
        if existing is not None and not overwrite:
            raise StoreError(f"a Zarr store already exists at {location.describe()} (pass overwrite=True to replace it)")
        lock = acquire_lock(zstore, location.local_root, location.describe(LOCK_KEY))
        try:
            if existing is not None:
                cls._clear(zstore, location)
            meta = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "nbits": nbits,
                "code_size": nbits // 8,
                "bit_order": BIT_ORDER,
                "nrows": 0,
                "next_id": 0,
                "max_id": -1,
                "ids_are_positions": True,
                "layout": {
                    "shard_rows": cfg.shard_rows,
                    "chunk_rows": cfg.chunk_rows,
                    "aux_chunk_rows": cfg.aux_chunk_rows,
                    "checksum": cfg.checksum,
                    "compression_level": cfg.compression_level,
                },
                "labels": bool(with_labels),
                "source": bool(with_source),
                "source_names": list(cfg.source_names),
                "encoder": encoder,
                "library_version": __version__,
                "uuid": uuidlib.uuid4().hex,
                "created": _now(),
                "updated": _now(),
            }
            cls._create_layout(zstore, meta, cfg)
            store = cls(location, zstore, meta, "a", lock)
        except BaseException:
            lock.release()
            raise
        logger.info("created code store %s (nbits=%d, shard_rows=%d)", location.describe(), nbits, cfg.shard_rows)
        return store

    @staticmethod
    def _clear(zstore: Any, location: StoreLocation) -> None:
        """Delete every key of the store but the lock record."""
        if location.local_root is not None:
            for child in location.local_root.iterdir():
                if child.name == LOCK_KEY:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            return
        from zarr.core.sync import sync

        async def _keys() -> list[str]:
            return [key async for key in zstore.list()]

        for key in sync(_keys()):
            if key != LOCK_KEY:
                sync(zstore.delete(key))

    @staticmethod
    def _create_layout(zstore: Any, meta: dict[str, Any], cfg: StoreConfig) -> None:
        import zarr
        from zarr.codecs import Crc32cCodec, ZstdCodec

        group = zarr.create_group(zstore, attributes={"hashsearch": meta}, zarr_format=3)
        crc = [Crc32cCodec()] if cfg.checksum else []
        zstd = [ZstdCodec(level=cfg.compression_level)] + crc
        nbytes = meta["code_size"]
        common = {"fill_value": 0, "config": {"write_empty_chunks": True}}
        group.create_array(
            "codes",
            shape=(0, nbytes),
            dtype="uint8",
            shards=(cfg.shard_rows, nbytes),
            chunks=(cfg.chunk_rows, nbytes),
            compressors=crc or None,
            filters=None,
            dimension_names=("row", "byte"),
            **common,
        )
        aux = [("ids", "int64")]
        if meta["labels"]:
            aux.append(("labels", "int64"))
        if meta["source"]:
            aux.append(("source", "uint8"))
        for name, dtype in aux:
            group.create_array(
                name,
                shape=(0,),
                dtype=dtype,
                shards=(cfg.shard_rows,),
                chunks=(cfg.aux_chunk_rows,),
                compressors=zstd,
                filters=None,
                dimension_names=("row",),
                **common,
            )

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
        location = resolve_location(path, storage_options)
        if location.local_root is not None and not (location.local_root / "zarr.json").exists():
            what = "does not exist" if not location.local_root.exists() else "has no zarr.json"
            raise StoreError(f"no code store at {location.local_root}: the path {what}")
        zstore = location.open(read_only=(mode == "r"))
        meta = cls._read_meta(zstore, location, nbits)
        lock = None
        if mode == "a":
            lock = acquire_lock(zstore, location.local_root, location.describe(LOCK_KEY))
            try:
                meta = cls._read_meta(zstore, location, nbits)  # as of now that we hold the lock
            except BaseException:
                lock.release()
                raise
        try:
            return cls(location, zstore, meta, mode, lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    @staticmethod
    def _read_meta(zstore: Any, location: StoreLocation, nbits: int | None) -> dict[str, Any]:
        where = location.describe("zarr.json")
        doc = read_json(zstore, "zarr.json", location)
        if doc is None:
            raise StoreError(f"no code store at {location.describe()}: zarr.json not found")
        if doc.get("zarr_format") != 3:
            raise IncompatibleStoreError(f"{where}: zarr_format {doc.get('zarr_format')!r}; code stores are Zarr v3")
        if doc.get("node_type") != "group":
            raise IncompatibleStoreError(f"{where}: a Zarr {doc.get('node_type')}, not a group")
        meta = (doc.get("attributes") or {}).get("hashsearch")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise IncompatibleStoreError(f"{where}: not a hashsearch code store (no 'hashsearch' attributes)")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            newer = isinstance(version, int) and version > FORMAT_VERSION
            raise IncompatibleStoreError(
                f"{where}: format_version {version!r}, this hashsearch reads version {FORMAT_VERSION}"
                + (" (written by a newer hashsearch: upgrade)" if newer else "")
            )
        if meta.get("bit_order") != BIT_ORDER:
            raise IncompatibleStoreError(
                f"{where}: bit_order {meta.get('bit_order')!r}, hashsearch packs codes {BIT_ORDER!r}"
                " (repack the codes with hashsearch.pack)"
            )
        try:
            stored_nbits = check_nbits(meta.get("nbits"))
            nrows = int(meta["nrows"])
            layout = meta["layout"]
            for key in ("shard_rows", "chunk_rows", "aux_chunk_rows"):
                if int(layout[key]) < 1:
                    raise ValueError(f"layout.{key} must be >= 1")
            if nrows < 0:
                raise ValueError("nrows must be >= 0")
        except (TypeError, ValueError, KeyError) as exc:
            raise CorruptStoreError(f"{where}: invalid hashsearch attributes ({exc})") from None
        if nbits is not None and stored_nbits != nbits:
            raise IncompatibleStoreError(f"{where}: the store holds {stored_nbits}-bit codes, expected {nbits}-bit")
        return meta

    def _open_arrays(self) -> None:
        import zarr

        try:
            self._group = zarr.open_group(
                self._zstore, mode="r" if self.mode == "r" else "r+", zarr_format=3, use_consolidated=False
            )
        except Exception as exc:
            raise CorruptStoreError(f"{self.location.describe('zarr.json')}: cannot open the group ({exc})") from exc
        names = ["codes", "ids"]
        if self.has_labels:
            names.append("labels")
        if self.has_source:
            names.append("source")
        expected = {"codes": np.uint8, "ids": np.int64, "labels": np.int64, "source": np.uint8}
        for name in names:
            where = self.location.describe(f"{name}/zarr.json")
            try:
                arr = self._group[name]
            except KeyError:
                raise CorruptStoreError(f"{where}: array {name!r} missing") from None
            except Exception as exc:
                raise CorruptStoreError(f"{where}: cannot open array {name!r} ({exc})") from exc
            if self.mode == "a":
                arr = arr.with_config({"write_empty_chunks": True})
            ndim = 2 if name == "codes" else 1
            if arr.dtype != expected[name] or arr.ndim != ndim:
                raise CorruptStoreError(f"{where}: dtype {arr.dtype}, {arr.ndim}-D; expected {np.dtype(expected[name])}")
            if name == "codes" and arr.shape[1] != self.code_size:
                raise IncompatibleStoreError(
                    f"{where}: {arr.shape[1]} bytes per code, but the store's nbits={self.nbits} needs {self.code_size}"
                )
            if arr.shards is None or arr.shards[0] != self.config.shard_rows:
                raise CorruptStoreError(f"{where}: shards {arr.shards}, expected {self.config.shard_rows} rows")
            if arr.shape[0] < self._committed:
                raise CorruptStoreError(
                    f"{where}: {arr.shape[0]} rows but {self._committed} are committed (array cut short)"
                )
            self._arrays[name] = arr
            self._checkers[name] = ShardChecker(
                arr,
                name,
                self._zstore,
                self.location,
                uncompressed_row_bytes=self.code_size if name == "codes" else None,
                checksum=self.config.checksum,
            )

    # -- properties -------------------------------------------------------------------
    @property
    def nbits(self) -> int:
        """Code length in bits."""
        return self._nbits

    @property
    def code_size(self) -> int:
        """Bytes per code (``nbits // 8``)."""
        return self._nbits // 8

    @property
    def ntotal(self) -> int:
        """Rows visible to this object: committed rows for readers; for the writer,
        every row appended so far (including rows still buffered in memory)."""
        if self.mode == "a":
            return self._buf_start + self._buf_len
        return self._committed

    def __len__(self) -> int:
        return self.ntotal

    @property
    def committed_rows(self) -> int:
        """Rows committed on disk (what a reader opening the store now sees)."""
        return self._committed

    @property
    def path(self) -> str:
        """The store's path or URL."""
        return self.location.url

    @property
    def has_labels(self) -> bool:
        return bool(self._meta.get("labels"))

    @property
    def has_source(self) -> bool:
        return bool(self._meta.get("source"))

    @property
    def source_names(self) -> tuple[str, ...]:
        """Names of the ``source`` values (index i is stored as i)."""
        return self.config.source_names

    @property
    def encoder_info(self) -> dict[str, Any] | None:
        """Provenance of the codes (model, checkpoint hash, sensor, ...), or None."""
        enc = self._meta.get("encoder")
        return dict(enc) if enc else None

    @property
    def uuid(self) -> str:
        """Random id given to the store when it was created."""
        return str(self._meta.get("uuid", ""))

    @property
    def ids_are_positions(self) -> bool:
        """True when every id equals its row position (the default ids)."""
        return self._id_policy.positions if self.mode == "a" else bool(self._meta.get("ids_are_positions", True))

    @property
    def next_id(self) -> int:
        """The id that the next append without ``ids`` starts from."""
        return self._id_policy.next_id if self.mode == "a" else int(self._meta.get("next_id", 0))

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def attrs(self) -> dict[str, Any]:
        """A copy of the store's committed ``hashsearch`` attributes."""
        return json.loads(json.dumps(self._meta))

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.mode
        return f"CodeStore({self.location.describe()!r}, nbits={self.nbits}, ntotal={self.ntotal}, mode={state!r})"

    # -- context management -----------------------------------------------------------
    def __enter__(self) -> CodeStore:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()

    def close(self) -> None:
        """Flush buffered rows (writer), release the write lock; idempotent."""
        if self._closed:
            return
        try:
            if self.mode == "a" and self._broken is None:
                self.flush()
        finally:
            self._closed = True
            if self._lock is not None:
                self._finalizer.detach()
                self._lock.release()
            self._buffers = {}

    def _check_open(self, writing: bool = False) -> None:
        if self._closed:
            raise StoreError(f"{self.location.describe()}: the store is closed")
        if writing:
            if self.mode != "a":
                raise StoreError(f"{self.location.describe()}: opened read-only (use CodeStore.open(path, mode='a'))")
            if self._broken is not None:
                raise StoreError(
                    f"{self.location.describe()}: an earlier write failed ({self._broken}); "
                    "the committed rows are intact: close and reopen the store"
                )

    # -- recovery ---------------------------------------------------------------------
    def _recover(self) -> None:
        """Writer start-up: cut rows past the commit (an interrupted append), drop
        temporary files, and load the committed rows of the last partial shard."""
        for name, arr in self._arrays.items():
            if arr.shape[0] > self._committed:
                logger.warning(
                    "%s: dropping %d uncommitted rows of %r left by an interrupted append",
                    self.location.describe(),
                    arr.shape[0] - self._committed,
                    name,
                )
                arr.resize((self._committed,) + tuple(arr.shape[1:]))
        if self.location.local_root is not None:
            for tmp in self.location.local_root.rglob("*.partial"):
                logger.info("removing temporary file %s left by an interrupted write", tmp)
                tmp.unlink(missing_ok=True)
        tail = self._committed - self._buf_start
        if tail:
            self._ensure_buffers()
            for name in self._arrays:
                self._read_array(name, self._buf_start, self._committed, out=self._buffers[name][:tail])
            self._buf_len = tail

    def _ensure_buffers(self) -> None:
        if self._buffers:
            return
        rows = self.config.shard_rows
        self._buffers["codes"] = np.empty((rows, self.code_size), np.uint8)
        self._buffers["ids"] = np.empty(rows, np.int64)
        if self.has_labels:
            self._buffers["labels"] = np.empty(rows, np.int64)
        if self.has_source:
            self._buffers["source"] = np.empty(rows, np.uint8)

    # -- appending --------------------------------------------------------------------
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
        self._check_open(writing=True)
        new_codes = as_codes(codes, self.nbits, "codes")
        m = new_codes.shape[0]
        new_labels = self._check_labels(labels, m)
        new_source = self._check_source(source, m)
        total = self.ntotal
        new_ids = self._id_policy.propose(ids, m, find_clash=self._stored_one_of, what="store")
        if m == 0:
            return
        columns: dict[str, np.ndarray] = {"codes": new_codes, "ids": new_ids}
        if new_labels is not None:
            columns["labels"] = new_labels
        if new_source is not None:
            columns["source"] = new_source
        # everything is checked: from here on, only writes
        policy = self._id_policy
        policy.accept(new_ids, total, total - 1 if total and policy.increasing else None)
        self._pending.append(
            (total + m, {"next_id": policy.next_id, "max_id": policy.max_id, "ids_are_positions": policy.positions})
        )
        try:
            self._push(columns, m)
            self._commit_ready()
        except BaseException as exc:
            self._broken = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._unflushed[0] = self.ntotal - self._committed

    def _check_labels(self, labels: Any, m: int) -> np.ndarray | None:
        if not self.has_labels:
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

    def _check_source(self, source: Any, m: int) -> np.ndarray | None:
        names = self.source_names
        if not self.has_source:
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
        found = clash(self._buffers["ids"][: self._buf_len]) if self._buf_len else None
        for block in self.iter_blocks(fields=("ids",), stop=self._buf_start):
            if found is not None:
                break
            found = clash(block.ids)
        return found

    def _push(self, columns: dict[str, np.ndarray], m: int) -> None:
        shard = self.config.shard_rows
        pos = 0
        if self._buf_len:
            take = min(m, shard - self._buf_len)
            self._ensure_buffers()
            for name, values in columns.items():
                self._buffers[name][self._buf_len : self._buf_len + take] = values[:take]
            self._buf_len += take
            pos = take
            if self._buf_len == shard:
                self._write_rows(self._buf_start, {n: b[:shard] for n, b in self._buffers.items()})
                self._buf_start += shard
                self._buf_len = 0
        full = (m - pos) // shard * shard
        if full:
            row_bytes = self.code_size + 8 * (len(columns) - 1)
            step = max(shard, _WRITE_BYTES // (row_bytes * shard) * shard)
            for lo in range(pos, pos + full, step):
                hi = min(pos + full, lo + step)
                self._write_rows(self._buf_start, {n: v[lo:hi] for n, v in columns.items()})
                self._buf_start += hi - lo
            pos += full
        rest = m - pos
        if rest:
            self._ensure_buffers()
            for name, values in columns.items():
                self._buffers[name][:rest] = values[pos:]
            self._buf_len = rest

    def _write_rows(self, start: int, columns: dict[str, np.ndarray]) -> None:
        """Write rows [start, start + n) of every array (resizing them first)."""
        n = len(columns["codes"])
        stop = start + n
        for name, arr in self._arrays.items():
            if arr.shape[0] < stop:
                arr.resize((stop,) + tuple(arr.shape[1:]))
        for name, arr in self._arrays.items():
            arr[start:stop] = columns[name]
        shard = self.config.shard_rows
        for checker in self._checkers.values():
            for s in range(start // shard, (stop - 1) // shard + 1):
                checker.forget(s)
        self._disk_rows = max(self._disk_rows, stop)

    def _commit_ready(self) -> None:
        """Commit the rows of every append whose rows are all on disk."""
        ready = [p for p in self._pending if p[0] <= self._disk_rows]
        if not ready:
            return
        nrows, state = ready[-1]
        self._pending = self._pending[len(ready) :]
        self._commit(nrows, state)

    def _commit(self, nrows: int, state: dict[str, Any]) -> None:
        meta = dict(self._meta)
        meta.update(state)
        meta["nrows"] = int(nrows)
        meta["updated"] = _now()
        self._group.update_attributes({"hashsearch": meta})
        self._meta = meta
        self._committed = int(nrows)
        self._unflushed[0] = self.ntotal - self._committed
        logger.debug("%s: committed %d rows", self.location.describe(), nrows)

    def flush(self) -> None:
        """Write buffered rows (the last, partial shard) and commit every append.

        A partial shard is rewritten whole when later appends complete it, so
        flush only when readers must see the rows now (``close`` flushes).
        """
        self._check_open(writing=True)
        try:
            end = self._buf_start + self._buf_len
            if end > self._disk_rows:
                self._write_rows(self._buf_start, {n: b[: self._buf_len] for n, b in self._buffers.items()})
            self._commit_ready()
        except BaseException as exc:
            self._broken = f"{type(exc).__name__}: {exc}"
            raise

    def set_encoder_info(self, info: dict[str, Any]) -> None:
        """Record (replace) the provenance of the codes, committed at once.

        Args:
            info: JSON-serialisable dict, e.g. ``{"model": "sidhcnn-mul",
                "checkpoint_sha256": "...", "sensor": "GF-1 MS", "nbits": 64}``.
        """
        self._check_open(writing=True)
        enc = _check_encoder(info)
        meta = dict(self._meta)
        meta["encoder"] = enc
        meta["updated"] = _now()
        self._group.update_attributes({"hashsearch": meta})
        self._meta = meta

    def reserve_ids(self, next_id: int) -> None:
        """Make default ids start at ``next_id`` or later (e.g. after ids were removed
        from an index that is saved). Flushes, then commits at once.

        Raises:
            ValueError: ``next_id`` is not above every id in the store.
        """
        self._check_open(writing=True)
        if isinstance(next_id, bool) or not isinstance(next_id, (int, np.integer)):
            raise TypeError(f"next_id must be an int, got {type(next_id).__name__}")
        if next_id <= self._id_policy.max_id:
            raise ValueError(f"next_id {next_id} must be above the largest id in the store ({self._id_policy.max_id})")
        self.flush()
        self._id_policy.reserve(next_id)
        self._commit(self._committed, {"next_id": self._id_policy.next_id})

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
        if self.location.local_root is not None:
            try:
                raw = (self.location.local_root / LOCK_KEY).read_bytes()
            except FileNotFoundError:
                return None
            return LockHolder.from_bytes(raw) if raw else None
        return read_holder(self._zstore)

    # -- reading ----------------------------------------------------------------------
    def refresh(self) -> int:
        """Readers: pick up rows committed since the store was opened.

        Returns:
            The new :attr:`ntotal`.
        """
        self._check_open()
        if self.mode == "a":
            return self.ntotal
        meta = self._read_meta(self._zstore, self.location, self._nbits)
        self._meta = meta
        self._committed = int(meta["nrows"])
        if any(arr.shape[0] < self._committed for arr in self._arrays.values()):
            self._arrays = {}
            self._checkers = {}
            self._open_arrays()
        return self._committed

    def _disk_limit(self) -> int:
        """Rows readable from disk (the rest of :attr:`ntotal` is the writer's buffer)."""
        return self._buf_start if self.mode == "a" else self._committed

    def _fields(self, fields: Sequence[str]) -> list[str]:
        out = []
        for f in fields:
            if f not in _ALL_FIELDS:
                raise ValueError(f"unknown field {f!r}; fields are {list(_ALL_FIELDS)}")
            if f not in self._arrays:
                raise ValueError(f"this store has no {f!r} array")
            out.append(f)
        return out

    def _check_range(self, start: int | None, stop: int | None) -> tuple[int, int]:
        n = self.ntotal
        start = 0 if start is None else int(start)
        stop = n if stop is None else int(stop)
        if not 0 <= start <= stop <= n:
            raise IndexError(f"rows [{start}, {stop}) are outside the store's {n} rows")
        return start, stop

    def _read_array(self, name: str, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows [start, stop) of one array from disk (shard by shard, checked)."""
        from zarr.core.buffer.cpu import NDBuffer

        arr = self._arrays[name]
        shape = (stop - start,) + tuple(arr.shape[1:])
        if out is None:
            out = np.empty(shape, dtype=arr.dtype)
        checker = self._checkers[name]
        checker.check(start, stop)
        shard = self.config.shard_rows
        pos = start
        while pos < stop:
            hi = min(stop, (pos // shard + 1) * shard)
            target = out[pos - start : hi - start]
            base = pos // shard * shard
            if not checker.read_direct(pos // shard, pos - base, hi - base, target):
                _read_with_retries(
                    lambda: arr.get_basic_selection(slice(pos, hi), out=NDBuffer.from_numpy_array(target)),
                    lambda: f"{checker.describe(pos // shard)}: cannot read rows {pos}..{hi - 1}",
                )
            pos = hi
        return out

    def read(self, start: int | None = None, stop: int | None = None, fields: Sequence[str] = ("codes", "ids")) -> StoreBlock:
        """Rows [start, stop) of the chosen fields (a copy in memory).

        Args:
            start, stop: row range, default everything (mind the memory).
            fields: any of "codes", "ids", "labels", "source".

        Raises:
            IndexError: range outside the store. ValueError: unknown field.
            CorruptStoreError: a shard is missing, truncated or fails its checksum.
        """
        self._check_open()
        fields = self._fields(fields)
        start, stop = self._check_range(start, stop)
        block = StoreBlock(start, stop)
        for f in fields:
            arr = self._arrays[f]
            out = np.empty((stop - start,) + tuple(arr.shape[1:]), dtype=arr.dtype)
            setattr(block, f, self._read_into(f, start, stop, out))
        return block

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
        (field,) = self._fields([field])
        start, stop = self._check_range(start, stop)
        return self._read_into(field, start, stop, out)

    def _read_into(self, field: str, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """Rows [start, stop) of one field into ``out``: from disk, then from the writer's buffer."""
        disk = self._disk_limit()
        if start < disk:
            self._read_array(field, start, min(stop, disk), out=out[: min(stop, disk) - start])
        if stop > disk:
            lo = max(start, disk)
            out[lo - start :] = self._buffers[field][lo - self._buf_start : stop - self._buf_start]
        return out

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
        fields = self._fields(fields)
        start, stop = self._check_range(start, stop)
        rows = self.config.shard_rows if block_rows is None else check_int(block_rows, "block_rows")
        ranges = [(lo, min(stop, lo + rows)) for lo in range(start, stop, rows)]
        for lo, hi, block in prefetch(ranges, lambda a, b, _buf: self.read(a, b, fields), depth=prefetch_blocks):
            yield block

    def ids_at(self, positions: np.ndarray) -> np.ndarray:
        """Map row positions to ids, keeping -1 (padding) as -1.

        Args:
            positions: int64 array of any shape, values in [-1, ntotal).

        Returns:
            int64 array of the same shape.
        """
        positions = np.asarray(positions, dtype=np.int64)
        if self.ids_are_positions:
            return positions.copy()
        flat = positions.ravel()
        valid = flat >= 0
        uniq, inverse = np.unique(flat[valid], return_inverse=True)
        ids = np.empty(uniq.shape, np.int64)
        disk = self._disk_limit()
        on_disk = uniq < disk
        if on_disk.any():
            ids[on_disk] = self._ids_on_disk(uniq[on_disk])
        if (~on_disk).any():
            ids[~on_disk] = self._buffers["ids"][uniq[~on_disk] - self._buf_start]
        out = np.full(flat.shape, PAD_POSITION, np.int64)
        out[valid] = ids[inverse]
        return out.reshape(positions.shape)

    def _ids_on_disk(self, rows: np.ndarray) -> np.ndarray:
        arr = self._arrays["ids"]
        checker = self._checkers["ids"]
        shard = self.config.shard_rows
        disk = self._disk_limit()
        for s in np.unique(rows // shard):
            lo = int(s) * shard
            checker.check(lo, min(disk, lo + shard))
        ids = _read_with_retries(
            lambda: arr.get_coordinate_selection(rows), lambda: f"{self.location.describe('ids')}: cannot read ids"
        )
        return np.asarray(ids, dtype=np.int64)

    # -- searching --------------------------------------------------------------------
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
            memory_limit: bytes (or "512MB") for the search's buffers: two blocks of
                codes, zarr's read temporaries, the queries and the top-k lists.
                Default :data:`DEFAULT_MEMORY_LIMIT`. The kernels' own working
                memory is not counted (the native kernel needs a few KB per thread;
                the NumPy reference allocates up to about 64 MB).
            backend: backend name, "auto" or instance.
            num_threads: kernel threads (default: the backend's default).
            progress: show a tqdm progress bar over the blocks.

        Returns:
            (D int32 (nq, k), I int64 (nq, k)): distances ascending and ids; padded
            with distance 2**31 - 1 and id -1 when k exceeds the rows.

        Raises:
            TypeError, ValueError: bad queries or k; memory_limit too small (the
                message gives the minimum).
            CorruptStoreError: a shard is missing, truncated or fails its checksum.
        """
        self._check_open()
        q = as_codes(queries, self.nbits, "queries")
        k = check_k(k)
        limit = parse_bytes(DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit)
        impl = make_backend(backend, num_threads)
        distances, positions = self.search_positions(q, k, impl, memory_limit=limit, progress=progress)
        return distances, self.ids_at(positions)

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
        """Top-k *row positions* among rows [start, stop); inputs already validated.

        The building block of :meth:`search` and of the distributed search.

        Returns:
            (D int32 (nq, k), positions int64 (nq, k), global row positions).
        """
        from tqdm.auto import tqdm

        stop = self.ntotal if stop is None else stop
        nq = queries.shape[0]
        disk_stop = min(stop, self._disk_limit())
        fixed = result_bytes(nq, k) + queries.nbytes
        plan = plan_blocks(
            max(0, disk_stop - start),
            self.code_size,
            self.config.shard_rows,
            self.config.chunk_rows,
            memory_limit,
            fixed,
            max_rows=max(1, _MAX_BLOCK_BYTES // self.code_size),
        )
        ranges = [(start + a, start + b) for a, b in plan.ranges()]
        best = empty_result(nq, k)
        block_rows = plan.block_rows
        checker = self._checkers["codes"]

        def read(lo: int, hi: int, buf: np.ndarray) -> np.ndarray:
            checker.advise_willneed(hi, min(disk_stop, hi + block_rows))  # the OS fetches the next block meanwhile
            return self._read_array("codes", lo, hi, out=buf[: hi - lo])

        blocks = prefetch(ranges, read, lambda: np.empty((block_rows, self.code_size), np.uint8))
        with tqdm(total=max(0, stop - start), unit="codes", unit_scale=True, disable=not progress, leave=False) as bar:
            for lo, hi, codes in blocks:
                d, p = backend.knn(codes, queries, k)
                best = merge_topk([best, (d, offset_positions(p, lo))], k)
                bar.update(hi - lo)
            if stop > disk_stop:  # the writer's buffered rows
                lo = max(start, disk_stop)
                codes = self._buffers["codes"][lo - self._buf_start : stop - self._buf_start]
                d, p = backend.knn(np.ascontiguousarray(codes), queries, k)
                best = merge_topk([best, (d, offset_positions(p, lo))], k)
                bar.update(stop - lo)
        return best

    # -- description and checks ---------------------------------------------------------
    def nbytes_on_disk(self) -> int | None:
        """Bytes the store's files take (local stores only, else None)."""
        root = self.location.local_root
        if root is None:
            return None
        return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())

    def info(self) -> dict[str, Any]:
        """A JSON-friendly summary (what ``hashsearch index info`` prints)."""
        shard = self.config.shard_rows
        return {
            "path": self.location.describe(),
            "format_version": self._meta.get("format_version"),
            "library_version": self._meta.get("library_version"),
            "uuid": self.uuid,
            "nbits": self.nbits,
            "bit_order": self._meta.get("bit_order"),
            "nrows": self._committed,
            "ntotal": self.ntotal,
            "shards": -(-self._committed // shard),
            "shard_rows": shard,
            "chunk_rows": self.config.chunk_rows,
            "aux_chunk_rows": self.config.aux_chunk_rows,
            "checksum": self.config.checksum,
            "labels": self.has_labels,
            "source": self.has_source,
            "source_names": list(self.source_names) if self.has_source else None,
            "ids_are_positions": self.ids_are_positions,
            "next_id": int(self._meta.get("next_id", 0)),
            "encoder": self.encoder_info,
            "created": self._meta.get("created"),
            "updated": self._meta.get("updated"),
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
        from tqdm.auto import tqdm

        self._check_open()
        n = self._committed
        shard = self.config.shard_rows
        nshards = -(-n // shard)
        report = VerifyReport(path=self.location.describe(), nrows=n, shards=nshards)
        for name, arr in self._arrays.items():
            if arr.shape[0] > n:
                report.warnings.append(
                    f"{self.location.describe(name)}: {arr.shape[0] - n} rows past the commit "
                    "(an interrupted append; the next writer drops them)"
                )
        if self.location.local_root is not None:
            for tmp in self.location.local_root.rglob("*.partial"):
                report.warnings.append(f"{tmp}: temporary file of an interrupted write")
        holder = None
        try:
            holder = self.lock_holder()
        except CorruptStoreError as exc:
            report.warnings.append(str(exc))
        if holder is not None:
            report.warnings.append(f"lock record names {holder.describe()} (a writer is active or did not close)")
        bad_shards: set[tuple[str, int]] = set()
        for name, checker in self._checkers.items():
            for s in range(nshards):
                rows = min(n, (s + 1) * shard) - s * shard
                try:
                    checker.forget(s)
                    checker.check(s * shard, s * shard + rows)
                    missing = checker.missing_chunks(s, rows)
                    if missing:
                        raise CorruptStoreError(
                            f"{checker.describe(s)}: inner chunks {missing[:5]} missing for committed rows"
                        )
                except CorruptStoreError as exc:
                    report.errors.append(str(exc))
                    bad_shards.add((name, s))
        prev_last = -1
        increasing = True
        id_parts: list[np.ndarray] = []
        max_id = -1
        rows = int(block_rows or shard)
        rows = max(shard, rows // shard * shard)
        with tqdm(total=n, unit="rows", unit_scale=True, disable=not progress, leave=False) as bar:
            for lo in range(0, n, rows):
                hi = min(n, lo + rows)
                shards_here = range(lo // shard, (hi - 1) // shard + 1)
                for name in self._arrays:
                    if any((name, s) in bad_shards for s in shards_here):
                        continue
                    try:
                        values = self._read_array(name, lo, hi)
                    except CorruptStoreError as exc:
                        report.errors.append(str(exc))
                        bad_shards.update((name, s) for s in shards_here)
                        continue
                    if name == "ids":
                        if values.size and values.min() < 0:
                            report.errors.append(f"{self.location.describe('ids')}: negative id {int(values.min())}")
                        if self.ids_are_positions and not np.array_equal(values, np.arange(lo, hi)):
                            report.errors.append(
                                f"{self.location.describe('zarr.json')}: says ids equal positions, "
                                f"but rows {lo}..{hi - 1} differ"
                            )
                        if values.size:
                            max_id = max(max_id, int(values.max()))
                            if increasing and (values[0] <= prev_last or (np.diff(values) <= 0).any()):
                                increasing = False
                            prev_last = int(values[-1])
                        id_parts.append(values)
                    elif name == "source" and values.size and values.max() >= len(self.source_names):
                        report.errors.append(
                            f"{self.location.describe('source')}: value {int(values.max())} is not a source index "
                            f"(0..{len(self.source_names) - 1})"
                        )
                bar.update(hi - lo)
        dup = first_duplicate(np.concatenate(id_parts)) if id_parts and not increasing else None
        if dup is not None:
            report.errors.append(f"{self.location.describe('ids')}: duplicate id {dup}")
        elif max_id >= int(self._meta.get("next_id", 0)):
            report.errors.append(
                f"{self.location.describe('zarr.json')}: next_id {self._meta.get('next_id')} is not above "
                f"the largest id {max_id}"
            )
        return report
