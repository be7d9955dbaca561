"""Index types: structures over packed codes behind one FAISS-like protocol.

Every index type implements :class:`~hashsearch.index.base.IndexType` and is
built by :func:`index_factory` from a string (table in
:mod:`hashsearch.index.factory`):

- :class:`BinaryIndex` (``"Flat"``): the exact flat scan over a kernel backend;
- :mod:`hashsearch.index.faiss_types` (``"BFlat"``, ``"BIVF{nlist}"``,
  ``"BHNSW{M}"``, ``"BHash{b}"``, ``"BHash{nhash}x{b}"``): FAISS's binary indexes
  with the library's semantics, imported on first use;
- :mod:`hashsearch.index.mih` (``"MIH"``): exact multi-index hashing.

This package may import the base modules, ``backends``, ``functional`` and
``store`` (indexes are saved as code stores), never ``search``'s drivers,
``data``, ``eval`` or ``cli``.
"""

from __future__ import annotations

from typing import Any

from hashsearch.index.base import IndexType, ReadOnlyIndexError
from hashsearch.index.factory import index_factory
from hashsearch.index.flat import BinaryIndex

__all__ = [
    "BinaryIndex",
    "FaissFlat",
    "FaissHNSW",
    "FaissHash",
    "FaissIVF",
    "FaissMultiHash",
    "IndexType",
    "MultiIndexHashing",
    "ReadOnlyIndexError",
    "index_factory",
]

_FAISS_TYPES = ("FaissFlat", "FaissIVF", "FaissHNSW", "FaissHash", "FaissMultiHash")


def __getattr__(name: str) -> Any:
    # the FAISS wrappers import faiss: only when one is asked for
    if name in _FAISS_TYPES:
        from hashsearch.index import faiss_types

        return getattr(faiss_types, name)
    if name == "MultiIndexHashing":  # the compiled MIH tables: only when asked for
        from hashsearch.index.mih import MultiIndexHashing

        return MultiIndexHashing
    raise AttributeError(f"module 'hashsearch.index' has no attribute {name!r}")
