"""The arrays of an in-memory index, written to and read from a code store.

An index is saved in exactly the :class:`~hashsearch.CodeStore` format (a Zarr
v3 group of sharded ``codes`` and ``ids``), so a saved index can be searched
out of core, on Dask, or inspected with ``hashsearch index info``; and any code
store loads into an index.

Reading streams the store shard by shard straight into one preallocated array
per field: peak memory is the arrays themselves plus one shard of zarr
temporaries, never two copies of the codes. Ids equal to row positions (the
default ids) are not read at all. Indexes bigger than RAM need not be loaded:
search the store with :meth:`CodeStore.search` (bounded memory) or
:func:`hashsearch.search.distributed.search`.

This module owns :func:`save_arrays`, :func:`read_store_arrays` (with the
checks of the ids it reads) and :func:`open_store`. It knows nothing of the
index classes: ``BinaryIndex.save`` / ``load`` / ``from_store`` call these and
adopt what they return. It imports the base modules (``_ids``, ``_validate``,
``errors``) and, inside functions, :mod:`hashsearch.store`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hashsearch._ids import IdPolicy
from hashsearch._validate import first_duplicate
from hashsearch.errors import CorruptStoreError

if TYPE_CHECKING:
    from hashsearch.store import CodeStore

__all__ = ["StoredArrays", "open_store", "read_store_arrays", "save_arrays"]

logger = logging.getLogger("hashsearch")

#: Shards read per zarr call while loading (zarr decodes them concurrently).
_LOAD_SHARDS = 4


@dataclass(frozen=True)
class StoredArrays:
    """Every row of a store, in memory, with its id bookkeeping.

    Attributes:
        codes: uint8 (n, code_size), C-contiguous.
        ids: int64 (n,), unique and non-negative (checked).
        id_policy: next id (the store's, or above every id), and whether ids
            increase and equal positions.
    """

    codes: np.ndarray
    ids: np.ndarray
    id_policy: IdPolicy


def save_arrays(
    path: Any,
    nbits: int,
    codes: np.ndarray,
    ids: np.ndarray,
    *,
    next_id: int,
    overwrite: bool = False,
    attrs: dict[str, Any] | None = None,
    **create_kwargs: Any,
) -> None:
    """Write codes and ids to a new code store at ``path``.

    Args:
        path: local path, URL or zarr Store.
        nbits: code length.
        codes: uint8 (n, nbits // 8). ids: int64 (n,), unique.
        next_id: the next default id (ids removed from the end stay reserved).
        overwrite: replace an existing store.
        attrs: more group attributes (JSON values; not the key ``"hashsearch"``),
            e.g. an index type's parameters. They are set on the new, empty group
            before any row is written, so every committed state of the store (each
            rewrite of the group's ``zarr.json`` keeps them) carries them.
        **create_kwargs: passed to :meth:`CodeStore.create` (``shard_rows``,
            ``chunk_rows``, ``encoder``, ``storage_options``...).

    Raises:
        StoreError: a store exists at ``path`` and ``overwrite`` is False.
        ValueError: ``attrs`` names the key ``"hashsearch"``.
    """
    from hashsearch.store import CodeStore

    if attrs and "hashsearch" in attrs:
        raise ValueError("attrs must not use the key 'hashsearch' (the store's own attributes)")
    with CodeStore.create(path, nbits, overwrite=overwrite, **create_kwargs) as store:
        if attrs:
            # the group zarr.json of the empty store: the row commits below merge into it
            store._state.files.group.update_attributes(dict(attrs))
        # one append: whole shards are written straight from the given arrays (close() flushes)
        store.append(codes, ids)
        if next_id > store.next_id:
            store.reserve_ids(next_id)
    logger.info("saved %d codes to %s", codes.shape[0], path)


def read_store_arrays(store: CodeStore) -> StoredArrays:
    """Every row of ``store`` (as :attr:`CodeStore.ntotal` counts them), in memory.

    Raises:
        CorruptStoreError: a shard is damaged, or the store holds negative or
            duplicate ids.
    """
    n = store.ntotal
    codes = _read_all(store, "codes", np.empty((n, store.code_size), dtype=np.uint8))
    if store.ids_are_positions:
        ids = np.arange(n, dtype=np.int64)
        increasing = positions = True
    else:
        ids = _read_all(store, "ids", np.empty(n, dtype=np.int64))
        if n and ids.min() < 0:
            raise CorruptStoreError(f"{store.location.describe('ids')}: negative id {int(ids.min())}")
        increasing = n < 2 or bool((np.diff(ids) > 0).all())
        positions = increasing and (n == 0 or (int(ids[0]) == 0 and int(ids[-1]) == n - 1))
        dup = None if increasing else first_duplicate(ids)
        if dup is not None:
            raise CorruptStoreError(f"{store.location.describe('ids')}: duplicate id {dup}")
    max_id = int(ids.max()) if n else -1
    policy = IdPolicy(next_id=max(store.next_id, max_id + 1), max_id=max_id, increasing=increasing, positions=positions)
    return StoredArrays(codes, ids, policy)


def _read_all(store: CodeStore, field: str, out: np.ndarray) -> np.ndarray:
    """Every row of one field into ``out``, :data:`_LOAD_SHARDS` shards per read."""
    step = store.config.sizes()[0] * _LOAD_SHARDS
    for lo in range(0, out.shape[0], step):
        hi = min(out.shape[0], lo + step)
        store.read_into(field, lo, hi, out[lo:hi])
    return out


def open_store(path: Any, storage_options: dict[str, Any] | None = None) -> CodeStore:
    """The code store at ``path``, open read-only (use it as a context manager).

    Raises:
        StoreError: no store there. IncompatibleStoreError, CorruptStoreError: see
        :meth:`CodeStore.open`.
    """
    from hashsearch.store import CodeStore

    return CodeStore.open(path, "r", storage_options=storage_options)
