"""hashsearch: cross-source remote-sensing image retrieval with deep hashing.

The public surface of the search engine; importing it never imports torch.

- :class:`BinaryIndex` — exact k-NN and range search over packed binary codes
  (FAISS-like API; compiled SIMD core, Numba and NumPy backends).
- :func:`index_factory` — every index type from one string (``"Flat"``, FAISS's
  ``"BIVF1024"``..., ``"MIH"``); the types are in :mod:`hashsearch.index`.
- :func:`pack` / :func:`unpack` — the one place that owns the bit conventions.
- :func:`knn_search`, :func:`range_search`, :func:`hamming_distances` — the same
  searches over bare arrays; :func:`merge_topk` combines partial results.
- :class:`CodeStore` — codes on disk in a sharded Zarr v3 group (imported lazily).
- :func:`simd_level`, :func:`available_backends` — what this machine runs.

The PyTorch side (networks, training, encoders) is :mod:`hashsearch.training`,
installed with the ``train`` extra.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from hashsearch._version import __version__
from hashsearch.backends import available_backends
from hashsearch.backends.native import simd_level, simd_levels
from hashsearch.errors import (
    BackendUnavailableError,
    CorruptStoreError,
    HashsearchError,
    IncompatibleStoreError,
    StoreError,
    StoreLockedError,
)
from hashsearch.functional import hamming_distances, knn_search, merge_topk, range_search
from hashsearch.index import BinaryIndex, index_factory
from hashsearch.packing import pack, unpack

if TYPE_CHECKING:
    from hashsearch.retrieval import RetrievalResult, Retriever
    from hashsearch.store import CodeStore


__all__ = [
    "BackendUnavailableError",
    "BinaryIndex",
    "CodeStore",
    "CorruptStoreError",
    "HashsearchError",
    "IncompatibleStoreError",
    "RetrievalResult",
    "Retriever",
    "StoreError",
    "StoreLockedError",
    "__version__",
    "available_backends",
    "hamming_distances",
    "index_factory",
    "knn_search",
    "merge_topk",
    "pack",
    "range_search",
    "simd_level",
    "simd_levels",
    "unpack",
]

logging.getLogger("hashsearch").addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    # CodeStore needs zarr; import it on first use so `import hashsearch` stays fast.
    if name == "CodeStore":
        from hashsearch.store import CodeStore

        return CodeStore
    if name in ("Retriever", "RetrievalResult"):  # query by image (hashsearch.retrieval; torch only on use)
        from hashsearch import retrieval

        return getattr(retrieval, name)
    if name == "distributed":  # ``from hashsearch import distributed``: the Dask search module
        from hashsearch.search import distributed

        return distributed
    raise AttributeError(f"module 'hashsearch' has no attribute {name!r}")
