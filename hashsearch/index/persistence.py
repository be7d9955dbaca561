"""Saving and loading :class:`~hashsearch.BinaryIndex` as a code store.

An index is saved in exactly the :class:`~hashsearch.CodeStore` format (a Zarr
v3 group of sharded ``codes`` and ``ids``), so a saved index can be searched
out of core, on Dask, or inspected with ``hashsearch index info``; and any code
store loads into an index.

Loading streams the store shard by shard straight into one preallocated array
per field: peak memory is the index itself plus one shard of zarr temporaries,
never two copies of the codes. Ids equal to row positions (the default ids) are
not read at all. Indexes bigger than RAM need not be loaded: search the store
with :meth:`CodeStore.search` (bounded memory) or
:func:`hashsearch.search.distributed.search`.

The index methods ``BinaryIndex.save`` / ``load`` / ``from_store`` call these.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from hashsearch._ids import IdPolicy
from hashsearch._validate import first_duplicate
from hashsearch.backends import Backend
from hashsearch.errors import CorruptStoreError

if TYPE_CHECKING:
    from hashsearch.index import BinaryIndex
    from hashsearch.store import CodeStore

__all__ = ["save_index", "load_index", "index_from_store"]

logger = logging.getLogger("hashsearch")

#: Shards read per zarr call while loading (zarr decodes them concurrently).
_LOAD_SHARDS = 4


def save_index(index: BinaryIndex, path: Any, *, overwrite: bool = False, **create_kwargs: Any) -> None:
    """Write ``index`` to a new code store at ``path``.

    Args:
        index: the index to save (codes, ids and the next default id are kept).
        path: local path, URL or zarr Store.
        overwrite: replace an existing store.
        **create_kwargs: passed to :meth:`CodeStore.create` (``shard_rows``,
            ``chunk_rows``, ``encoder``, ``storage_options``...).

    Raises:
        StoreError: a store exists at ``path`` and ``overwrite`` is False.
    """
    from hashsearch.store import CodeStore

    with CodeStore.create(path, index.nbits, overwrite=overwrite, **create_kwargs) as store:
        # one append: whole shards are written straight from the index's arrays (close() flushes)
        store.append(index.codes, index.ids)
        next_id = index._id_policy.next_id  # noqa: SLF001 - ids removed from the end stay reserved
        if next_id > store.next_id:
            store.reserve_ids(next_id)
    logger.info("saved index of %d codes to %s", index.ntotal, path)


def index_from_store(
    store: CodeStore,
    backend: str | Backend | None = "auto",
    *,
    num_threads: int | None = None,
    cls: type[BinaryIndex] | None = None,
) -> BinaryIndex:
    """Load every row of ``store`` (as :attr:`CodeStore.ntotal` counts them) into a new index.

    Args:
        store: an open store.
        backend, num_threads: for the new index.
        cls: the index class (subclasses of BinaryIndex keep their type).

    Raises:
        CorruptStoreError: a shard is damaged, or the store holds duplicate ids.
    """
    if cls is None:
        from hashsearch.index import BinaryIndex as cls  # noqa: N813

    index = cls(store.nbits, backend, num_threads=num_threads)
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
    index._adopt(codes, ids, policy)  # noqa: SLF001
    return index


def _read_all(store: CodeStore, field: str, out: np.ndarray) -> np.ndarray:
    """Every row of one field into ``out``, :data:`_LOAD_SHARDS` shards per read."""
    step = store.config.shard_rows * _LOAD_SHARDS
    for lo in range(0, out.shape[0], step):
        hi = min(out.shape[0], lo + step)
        store.read_into(field, lo, hi, out[lo:hi])
    return out


def load_index(
    path: Any,
    backend: str | Backend | None = "auto",
    *,
    num_threads: int | None = None,
    storage_options: dict[str, Any] | None = None,
    cls: type[BinaryIndex] | None = None,
) -> BinaryIndex:
    """Open the code store at ``path`` read-only and load it into a new index.

    Raises:
        StoreError: no store there. IncompatibleStoreError, CorruptStoreError: see
        :meth:`CodeStore.open`.
    """
    from hashsearch.store import CodeStore

    with CodeStore.open(path, "r", storage_options=storage_options) as store:
        return index_from_store(store, backend, num_threads=num_threads, cls=cls)
