"""Code stores: packed binary codes on disk in a sharded Zarr v3 group.

This package owns the on-disk format (layout, metadata, format version),
crash-consistent buffered appends, the single-writer lock, reading rows back
and verifying a store. It may import the base modules (``errors``, ``packing``,
``_validate``), ``backends`` and the out-of-core search engine
(:mod:`hashsearch.search.plan`, :mod:`hashsearch.search.outofcore`), never
``index``, the Dask or batch drivers, ``data``, ``eval`` or ``cli``.
"""

from __future__ import annotations

from hashsearch.store.codestore import (
    DEFAULT_MEMORY_LIMIT,
    FORMAT_NAME,
    FORMAT_VERSION,
    CodeStore,
    StoreBlock,
    StoreConfig,
    VerifyReport,
)

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CodeStore",
    "StoreBlock",
    "StoreConfig",
    "VerifyReport",
]
