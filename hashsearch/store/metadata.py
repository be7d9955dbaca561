"""The metadata of a code store: its schema, format version and layout options.

The group's attributes, under the key ``"hashsearch"``, hold the format
(``format``, ``format_version``), ``nbits``, ``code_size``, ``bit_order``
("little", :data:`hashsearch.packing.BIT_ORDER`), the layout (``shard_rows``,
``chunk_rows``, ``aux_chunk_rows``, ``checksum``, ``compression_level``), the
library version, encoder provenance (model, checkpoint hash, sensor), the id
bookkeeping (``next_id``, ``max_id``, ``ids_are_positions``), ``labels``,
``source`` and ``source_names``, ``uuid``, ``created``/``updated`` and
**``nrows``, the committed row count** (see :mod:`hashsearch.store.writer`).

This module owns :class:`StoreConfig` (the layout options and their defaults),
:data:`FORMAT_NAME`, :data:`FORMAT_VERSION`, writing a new store's attributes
and reading them back checked (format, version, bit order, nbits). It imports
the base modules (``errors``, ``packing``, ``_validate``, ``_ids``,
``_version``) and :mod:`._zarrio`; nothing else of the store.
"""

from __future__ import annotations

import json
import time
import uuid as uuidlib
from dataclasses import dataclass, replace
from typing import Any

from hashsearch._ids import IdPolicy
from hashsearch._validate import check_int, check_nbits
from hashsearch._version import __version__
from hashsearch.errors import CorruptStoreError, IncompatibleStoreError, StoreError
from hashsearch.packing import BIT_ORDER
from hashsearch.store._zarrio import StoreLocation, read_json

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "StoreConfig",
    "check_encoder",
    "config_from_metadata",
    "id_policy_from_metadata",
    "new_metadata",
    "now",
    "read_metadata",
]

#: ``format`` attribute of every code store.
FORMAT_NAME = "hashsearch.codestore"
#: Version of the on-disk layout this library writes and reads.
FORMAT_VERSION = 1
#: Bytes of codes per inner chunk that the default layout aims at.
_TARGET_CHUNK_BYTES = 1 << 20
_MAX_CHUNK_ROWS = 1 << 17
_SHARD_CHUNKS = 16
_MAX_AUX_CHUNK_ROWS = 1 << 14


def now() -> str:
    """The local time as the metadata records it (``created``, ``updated``)."""
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

    def sizes(self) -> tuple[int, int, int]:
        """``(shard_rows, chunk_rows, aux_chunk_rows)`` of a resolved config.

        Raises:
            ValueError: a size is still None (call :meth:`resolved` first).
        """
        shard, chunk, aux = self.shard_rows, self.chunk_rows, self.aux_chunk_rows
        if shard is None or chunk is None or aux is None:
            raise ValueError("the layout is not resolved yet: call StoreConfig.resolved(nbits) first")
        return shard, chunk, aux

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


def check_encoder(info: Any) -> dict[str, Any] | None:
    """Encoder provenance as stored: a JSON-serialisable dict (a copy), or None.

    Raises:
        TypeError: not a dict. ValueError: not JSON-serialisable.
    """
    if info is None:
        return None
    if not isinstance(info, dict):
        raise TypeError(f"encoder info must be a dict (model, checkpoint hash, sensor, ...), got {type(info).__name__}")
    try:
        return json.loads(json.dumps(info))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"encoder info must be JSON-serialisable: {exc}") from None


def new_metadata(
    nbits: int, cfg: StoreConfig, *, with_labels: bool, with_source: bool, encoder: dict[str, Any] | None
) -> dict[str, Any]:
    """The ``hashsearch`` attributes of a new, empty store (``cfg`` resolved, ``encoder`` checked)."""
    return {
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
        "created": now(),
        "updated": now(),
    }


def read_metadata(zstore: Any, location: StoreLocation, nbits: int | None) -> dict[str, Any]:
    """The store's ``hashsearch`` attributes, checked.

    Args:
        zstore: the zarr Store.
        location: where it lives (for messages).
        nbits: when given, the code length the store must have.

    Raises:
        StoreError: no ``zarr.json``.
        IncompatibleStoreError: not a Zarr v3 group of this format, or another
            format version, bit order or nbits (the message names the file).
        CorruptStoreError: invalid attributes.
    """
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


def config_from_metadata(meta: dict[str, Any]) -> StoreConfig:
    """The layout a store was created with (from its checked attributes)."""
    layout = meta["layout"]
    return StoreConfig(
        shard_rows=int(layout["shard_rows"]),
        chunk_rows=int(layout["chunk_rows"]),
        aux_chunk_rows=int(layout["aux_chunk_rows"]),
        checksum=bool(layout["checksum"]),
        compression_level=int(layout.get("compression_level", 1)),
        source_names=tuple(meta.get("source_names") or ("pan", "ms")),
    )


def id_policy_from_metadata(meta: dict[str, Any]) -> IdPolicy:
    """The id bookkeeping of the committed rows (the store records whether ids are the
    positions, not whether they increase otherwise)."""
    positions = bool(meta.get("ids_are_positions", True))
    return IdPolicy(
        next_id=int(meta.get("next_id", 0)),
        max_id=int(meta.get("max_id", -1)),
        increasing=positions,
        positions=positions,
    )


