"""Exceptions raised by hashsearch.

Input validation raises the built-in ``TypeError`` (wrong kind or dtype) and
``ValueError`` (wrong shape, width or value), as NumPy and FAISS users expect.
Problems with files and stores raise subclasses of :class:`HashsearchError`, so
callers can catch everything that went wrong on disk with one ``except``.
"""

from __future__ import annotations

__all__ = [
    "HashsearchError",
    "BackendUnavailableError",
    "StoreError",
    "StoreLockedError",
    "CorruptStoreError",
    "IncompatibleStoreError",
]


class HashsearchError(Exception):
    """Base class of the errors hashsearch raises for files, stores and backends."""


class BackendUnavailableError(HashsearchError, RuntimeError):
    """A search backend was asked for by name but cannot run on this machine."""


class StoreError(HashsearchError, OSError):
    """A code store could not be opened, read or written."""


class StoreLockedError(StoreError):
    """Another writer holds the store's write lock."""


class CorruptStoreError(StoreError):
    """A store file is truncated, unreadable or inconsistent with the store's metadata."""


class IncompatibleStoreError(StoreError):
    """A store was written with other parameters (nbits, bit order, format version)."""
