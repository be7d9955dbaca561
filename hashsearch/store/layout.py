"""The on-disk layout of a code store: its arrays, creating, clearing and opening them.

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
attributes are :mod:`.metadata`'s.

This module owns the arrays (:data:`FIELDS`, their dtypes and codecs), creating
a store (:func:`create_store`: the target checked, the lock taken, the layout
written) and opening one (:func:`open_store`), clearing one, and what one open
store object knows (:class:`StoreArrays`, :class:`StoreState`). It may import
the base modules, :mod:`.metadata`, :mod:`._zarrio` and :mod:`._lock`; nothing
else of the store.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hashsearch._ids import IdPolicy
from hashsearch.errors import CorruptStoreError, IncompatibleStoreError, StoreError
from hashsearch.store._lock import LOCK_KEY, WriteLock, acquire_lock
from hashsearch.store._zarrio import ShardChecker, StoreLocation, read_json, resolve_location
from hashsearch.store.metadata import (
    StoreConfig,
    config_from_metadata,
    id_policy_from_metadata,
    new_metadata,
    read_metadata,
)

__all__ = [
    "FIELDS",
    "StoreArrays",
    "StoreState",
    "clear_store",
    "create_layout",
    "create_store",
    "open_store",
]

#: Every field a store may hold, in this order.
FIELDS: tuple[str, ...] = ("codes", "ids", "labels", "source")
_DTYPES = {"codes": np.uint8, "ids": np.int64, "labels": np.int64, "source": np.uint8}


def create_store(
    path: Any,
    nbits: int,
    cfg: StoreConfig,
    *,
    with_labels: bool,
    with_source: bool,
    encoder: dict[str, Any] | None,
    overwrite: bool,
    storage_options: dict[str, Any] | None,
) -> tuple[StoreLocation, Any, dict[str, Any], WriteLock]:
    """Write a new, empty store (``nbits`` and ``cfg`` checked, ``encoder`` checked)
    and take its write lock; see :meth:`hashsearch.CodeStore.create`.

    Returns:
        (location, zarr Store, metadata, the lock held).

    Raises:
        StoreError: something other than an empty directory or a Zarr store is at
            ``path``, or a store exists and ``overwrite`` is False.
        StoreLockedError: another writer holds the store.
    """
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
            clear_store(zstore, location)
        meta = new_metadata(nbits, cfg, with_labels=with_labels, with_source=with_source, encoder=encoder)
        create_layout(zstore, meta, cfg)
    except BaseException:
        lock.release()
        raise
    return location, zstore, meta, lock


def open_store(
    path: Any, mode: str, nbits: int | None, storage_options: dict[str, Any] | None
) -> tuple[StoreLocation, Any, dict[str, Any], WriteLock | None]:
    """Open an existing store's metadata, and for ``mode="a"`` take its write lock
    (the metadata is then read again, as of holding the lock).

    Returns:
        (location, zarr Store, checked metadata, the lock or None).

    Raises:
        StoreError: no store at ``path``. IncompatibleStoreError, CorruptStoreError:
            see :func:`~hashsearch.store.metadata.read_metadata`. StoreLockedError:
            another writer holds the lock.
    """
    location = resolve_location(path, storage_options)
    if location.local_root is not None and not (location.local_root / "zarr.json").exists():
        what = "does not exist" if not location.local_root.exists() else "has no zarr.json"
        raise StoreError(f"no code store at {location.local_root}: the path {what}")
    zstore = location.open(read_only=(mode == "r"))
    meta = read_metadata(zstore, location, nbits)
    lock = None
    if mode == "a":
        lock = acquire_lock(zstore, location.local_root, location.describe(LOCK_KEY))
        try:
            meta = read_metadata(zstore, location, nbits)  # as of now that we hold the lock
        except BaseException:
            lock.release()
            raise
    return location, zstore, meta, lock


def clear_store(zstore: Any, location: StoreLocation) -> None:
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


def create_layout(zstore: Any, meta: dict[str, Any], cfg: StoreConfig) -> None:
    """Write the group (with ``meta`` as its attributes) and its empty arrays."""
    import zarr
    from zarr.codecs import Crc32cCodec, ZstdCodec

    group = zarr.create_group(zstore, attributes={"hashsearch": meta}, zarr_format=3)
    shard, chunk, aux_chunk = cfg.sizes()
    crc = [Crc32cCodec()] if cfg.checksum else []
    zstd = [ZstdCodec(level=cfg.compression_level), *crc]
    nbytes = int(meta["code_size"])
    common: dict[str, Any] = {"fill_value": 0, "config": {"write_empty_chunks": True}}
    group.create_array(
        "codes",
        shape=(0, nbytes),
        dtype="uint8",
        shards=(shard, nbytes),
        chunks=(chunk, nbytes),
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
            shards=(shard,),
            chunks=(aux_chunk,),
            compressors=zstd,
            filters=None,
            dimension_names=("row",),
            **common,
        )


class StoreArrays:
    """The open zarr group and arrays of a store, checked against its metadata, with a
    :class:`~hashsearch.store._zarrio.ShardChecker` per array.

    Args:
        zstore: the zarr Store. location: where it lives.
        meta: the checked attributes. config: the store's layout.
        committed: rows the arrays must hold at least.
        writable: open for writing (zarr ``r+``).

    Raises:
        CorruptStoreError: an array is missing, of another dtype or shard size, or
            shorter than the committed rows. IncompatibleStoreError: codes of
            another width than ``nbits`` needs.
    """

    def __init__(
        self,
        zstore: Any,
        location: StoreLocation,
        meta: dict[str, Any],
        config: StoreConfig,
        committed: int,
        *,
        writable: bool,
    ) -> None:
        import zarr

        try:
            self.group = zarr.open_group(zstore, mode="r+" if writable else "r", zarr_format=3, use_consolidated=False)
        except Exception as exc:
            raise CorruptStoreError(f"{location.describe('zarr.json')}: cannot open the group ({exc})") from exc
        names = [f for f in FIELDS if f in ("codes", "ids") or meta.get(f)]
        code_size = int(meta["nbits"]) // 8
        shard = config.sizes()[0]
        self.arrays: dict[str, Any] = {}
        self.checkers: dict[str, ShardChecker] = {}
        for name in names:
            where = location.describe(f"{name}/zarr.json")
            try:
                arr = self.group[name]
            except KeyError:
                raise CorruptStoreError(f"{where}: array {name!r} missing") from None
            except Exception as exc:
                raise CorruptStoreError(f"{where}: cannot open array {name!r} ({exc})") from exc
            if not isinstance(arr, zarr.Array):
                raise CorruptStoreError(f"{where}: {name!r} is a group, expected an array")
            if writable:
                arr = arr.with_config({"write_empty_chunks": True})
            ndim = 2 if name == "codes" else 1
            if arr.dtype != _DTYPES[name] or arr.ndim != ndim:
                raise CorruptStoreError(f"{where}: dtype {arr.dtype}, {arr.ndim}-D; expected {np.dtype(_DTYPES[name])}")
            if name == "codes" and arr.shape[1] != code_size:
                raise IncompatibleStoreError(
                    f"{where}: {arr.shape[1]} bytes per code, but the store's nbits={meta['nbits']} needs {code_size}"
                )
            if arr.shards is None or arr.shards[0] != shard:
                raise CorruptStoreError(f"{where}: shards {arr.shards}, expected {shard} rows")
            if arr.shape[0] < committed:
                raise CorruptStoreError(f"{where}: {arr.shape[0]} rows but {committed} are committed (array cut short)")
            self.arrays[name] = arr
            self.checkers[name] = ShardChecker(
                arr,
                name,
                zstore,
                location,
                uncompressed_row_bytes=code_size if name == "codes" else None,
                checksum=bool(config.checksum),
            )


@dataclass
class StoreState:
    """What one open store object knows: the committed attributes and the open arrays.

    Shared by the reader and the writer of one :class:`~hashsearch.CodeStore`; the
    writer replaces ``meta``/``committed`` when it commits, a reader when it refreshes.

    Attributes:
        location, zstore: where the store lives, and its zarr Store.
        mode: ``"r"`` or ``"a"``.
        meta: the committed ``hashsearch`` attributes.
        config: the layout; ``shard_rows``, ``chunk_rows``: its sizes.
        committed: the committed row count (``meta["nrows"]``).
        files: the open arrays.
        id_policy: the ids as this object knows them (for the writer, including
            rows not yet committed).
    """

    location: StoreLocation
    zstore: Any
    mode: str
    meta: dict[str, Any]
    config: StoreConfig = field(init=False)
    shard_rows: int = field(init=False)
    chunk_rows: int = field(init=False)
    committed: int = field(init=False)
    files: StoreArrays = field(init=False)
    id_policy: IdPolicy = field(init=False)

    def __post_init__(self) -> None:
        self.config = config_from_metadata(self.meta)
        self.shard_rows, self.chunk_rows, _ = self.config.sizes()
        self.committed = int(self.meta["nrows"])
        self.id_policy = id_policy_from_metadata(self.meta)
        self.open_files()

    @property
    def nbits(self) -> int:
        return int(self.meta["nbits"])

    @property
    def code_size(self) -> int:
        return self.nbits // 8

    def open_files(self) -> None:
        """(Re)open the arrays (after the committed rows outgrew them)."""
        self.files = StoreArrays(
            self.zstore, self.location, self.meta, self.config, self.committed, writable=self.mode == "a"
        )
