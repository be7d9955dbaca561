"""``BinaryIndex``: exact Hamming-distance search over packed binary codes.

FAISS-like semantics, so it drops into systems that know ``faiss.IndexBinaryFlat``:

>>> import numpy as np
>>> from hashsearch import BinaryIndex, pack
>>> rng = np.random.default_rng(0)
>>> index = BinaryIndex(64)
>>> index.add(pack(rng.standard_normal((1000, 64))))
>>> D, I = index.search(index.reconstruct(7), k=3)
>>> int(I[0, 0]), int(D[0, 0])
(7, 0)

Differences from FAISS, all deliberate:

- every code has an int64 id (``add(codes, ids)``; default: consecutive ids after
  the largest one used so far), so no ``IndexIDMap`` wrapper is needed and ids
  stay stable after ``remove_ids``;
- ties are broken by ascending database position (insertion order), on every
  backend and for any thread count;
- ``range_search`` keeps distances ``<= radius`` (a closed Hamming ball); FAISS's
  binary ``range_search`` keeps ``< radius``;
- a 1-D query is accepted and treated as one query (results are still 2-D).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from hashsearch._ids import IdPolicy, find_positions, sorted_lookup
from hashsearch._validate import as_codes, as_lookup_ids, check_int, check_k, check_nbits, check_radius
from hashsearch.backends import PAD_POSITION, Backend, make_backend
from hashsearch.index.base import IndexType

__all__ = ["BinaryIndex"]

logger = logging.getLogger("hashsearch")

_MIN_CAPACITY = 1024


class BinaryIndex(IndexType):
    """Exact k-NN and range search over packed binary codes by Hamming distance.

    The flat index type (factory string ``"Flat"``): a scan of every code by a kernel
    backend, which sees the database through its state hooks (``attach`` on a new
    database, ``extend`` with only the rows of each add, ``reset``).

    Args:
        nbits: code length in bits, a positive multiple of 8 (8 ... 1024 and beyond).
        backend: ``"auto"`` (default: ``$HASHSEARCH_BACKEND`` if set, else the
            compiled core, else Numba, else NumPy), a backend name (``"native"``,
            ``"numba"``, ``"numpy"``, ...) or a :class:`~hashsearch.backends.Backend`.
        num_threads: threads the search kernels use; default
            ``$HASHSEARCH_NUM_THREADS`` or the CPUs available to this process.

    Raises:
        TypeError, ValueError: nbits is not a positive multiple of 8.
        BackendUnavailableError: the named backend cannot run here.

    Attributes:
        nbits: code length in bits.
        code_size: bytes per code (``nbits // 8``), as in FAISS.
    """

    def __init__(self, nbits: int, backend: str | Backend | None = "auto", *, num_threads: int | None = None) -> None:
        self.nbits = check_nbits(nbits)
        self.code_size = self.nbits // 8
        self._backend = make_backend(backend, num_threads)
        self._codes = np.empty((0, self.code_size), dtype=np.uint8)
        self._ids = np.empty(0, dtype=np.int64)
        self._n = 0
        self._id_policy = IdPolicy()
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None
        self._id_table: np.ndarray | None = None
        self._backend_stale = False  # a hook failed: the backend holds nothing (attach at the next change)

    # -- properties -------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        """Number of codes in the index."""
        return self._n

    def __len__(self) -> int:
        return self._n

    @property
    def backend(self) -> str:
        """Name of the backend that runs the searches."""
        return self._backend.name

    @property
    def backend_impl(self) -> Backend:
        """The backend object itself."""
        return self._backend

    @property
    def simd_level(self) -> str | None:
        """Instruction-set path of the kernels (native backend), else None."""
        return self._backend.simd_level

    @property
    def num_threads(self) -> int:
        """Threads the search kernels use."""
        return self._backend.num_threads

    @num_threads.setter
    def num_threads(self, value: int) -> None:
        self._backend.num_threads = value

    @property
    def codes(self) -> np.ndarray:
        """Read-only view of the stored codes, uint8 (ntotal, code_size), in position order."""
        view = self._codes[: self._n]
        view.flags.writeable = False
        return view

    @property
    def ids(self) -> np.ndarray:
        """Read-only view of the ids, int64 (ntotal,), in position order."""
        view = self._ids[: self._n]
        view.flags.writeable = False
        return view

    def __repr__(self) -> str:
        return (
            f"BinaryIndex(nbits={self.nbits}, ntotal={self._n}, backend={self.backend!r}, "
            f"num_threads={self.num_threads})"
        )

    @property
    def factory_string(self) -> str:
        """``"Flat"``: :func:`hashsearch.index_factory` builds this type from it."""
        return "Flat"

    def params(self) -> dict[str, Any]:
        """Backend, its SIMD path and threads."""
        return {"backend": self.backend, "simd_level": self.simd_level, "num_threads": self.num_threads}

    def memory_bytes(self) -> int:
        """Bytes of the code and id arrays (their allocated capacity)."""
        return int(self._codes.nbytes + self._ids.nbytes)

    # -- adding and removing ----------------------------------------------------------
    def add(self, codes: Any, ids: Any = None) -> None:
        """Append codes.

        Args:
            codes: uint8 (n, code_size), or (code_size,) for one code. Non-contiguous
                input is copied. Pack real-valued or ±1 codes with ``hashsearch.pack``.
            ids: int (n,) distinct non-negative ids not already in the index; default
                consecutive ids after the largest id assigned so far.

        Raises:
            TypeError: codes are not uint8, or ids are not integers.
            ValueError: wrong code width or shape; ids of the wrong length, negative,
                repeated, or already present. The index is unchanged on any error.
        """
        new_codes = as_codes(codes, self.nbits, "codes")
        m = new_codes.shape[0]
        new_ids = self._id_policy.propose(ids, m, find_clash=self._stored_one_of)
        if m == 0:
            return
        self._reserve(self._n + m)
        n = self._n
        self._codes[n : n + m] = new_codes
        self._ids[n : n + m] = new_ids
        # the backend takes the rows before they count: if its hook fails (device memory...)
        # the index is unchanged (rows past ntotal are unused capacity)
        self._backend_hook(lambda: self._sync_backend(self._codes[n : n + m]))
        self._id_policy.accept(new_ids, n, int(self._ids[n - 1]) if n else None)
        self._n += m
        self._invalidate_id_caches()

    def remove_ids(self, ids: Any) -> int:
        """Remove the codes with the given ids; ids not in the index are ignored.

        Remaining codes keep their ids and their relative order.

        Args:
            ids: int array-like (m,) or a single int.

        Returns:
            Number of codes removed.

        Raises:
            TypeError: ids are not integers.
        """
        positions = self._find_positions(ids)
        positions = np.unique(positions[positions >= 0])
        if positions.size == 0:
            return 0
        keep = np.ones(self._n, dtype=bool)
        keep[positions] = False
        remaining = self._n - positions.size
        self._codes[:remaining] = self._codes[: self._n][keep]
        self._ids[:remaining] = self._ids[: self._n][keep]
        self._n = remaining
        self._id_policy.removed(self._ids[:remaining])
        self._invalidate_id_caches()
        # the removal stands even if the backend cannot take the new database: it forgets
        # its copy then (searches still see self.codes) and gets all of it on the next change
        self._backend_hook(lambda: self._backend.attach(self.codes))
        logger.debug("removed %d codes, %d remain", positions.size, remaining)
        return int(positions.size)

    def reset(self) -> None:
        """Remove every code (ids restart at 0)."""
        self._codes = np.empty((0, self.code_size), dtype=np.uint8)
        self._ids = np.empty(0, dtype=np.int64)
        self._n = 0
        self._id_policy = IdPolicy()
        self._invalidate_id_caches()
        self._backend_stale = False
        self._backend.reset()

    def reconstruct(self, id: int) -> np.ndarray:
        """Return a copy of the code stored under ``id``: uint8 (code_size,).

        Raises:
            TypeError: id is not an integer.
            KeyError: no code has this id.
        """
        pos = int(self._find_positions(check_int(id, "id", minimum=None), "id")[0])
        if pos < 0:
            raise KeyError(f"id {id} is not in the index")
        return self._codes[pos].copy()

    def reconstruct_batch(self, ids: Any) -> np.ndarray:
        """Return copies of the codes stored under ``ids``: uint8 (m, code_size).

        Raises:
            KeyError: one of the ids is not in the index.
        """
        pos = self._find_positions(ids)
        if (pos < 0).any():
            raise KeyError(f"id {np.asarray(ids).ravel()[np.argmax(pos < 0)]} is not in the index")
        return self._codes[pos]

    # -- searching --------------------------------------------------------------------
    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest codes of each query.

        Args:
            queries: uint8 (nq, code_size), or (code_size,) for one query.
            k: neighbours per query, >= 1; may exceed ``ntotal``.

        Returns:
            (D, I): D int32 (nq, k) Hamming distances, ascending; I int64 (nq, k) ids.
            Equal distances are ordered by ascending database position. When
            k > ntotal the extra columns hold id -1 and distance 2**31 - 1
            (``hashsearch.backends.PAD_DISTANCE``, FAISS's value).

        Raises:
            TypeError: queries are not uint8 or k is not an int.
            ValueError: wrong code width or shape, k < 1, or k so far above
                ntotal that the padding alone would exceed 1 GiB
                (``hashsearch._validate.MAX_PADDING_BYTES``).
        """
        q = as_codes(queries, self.nbits, "queries")
        k = check_k(k, self._n, q.shape[0])
        distances, positions = self._backend.knn(self._codes[: self._n], q, k)
        return distances, self._positions_to_ids(positions)

    def range_search(self, queries: Any, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every code within Hamming distance ``<= radius`` of each query.

        The ball is closed (inclusive), unlike FAISS's binary ``range_search``, which
        keeps distances strictly below the radius: ``radius=r`` here equals
        ``radius=r + 1`` there.

        Args:
            queries: uint8 (nq, code_size), or (code_size,) for one query.
            radius: largest distance kept, >= 0 (values above nbits keep everything).

        Returns:
            (lims, D, I): lims int64 (nq + 1,); query i's results are
            ``D[lims[i]:lims[i+1]]`` (int32 distances) and ``I[lims[i]:lims[i+1]]``
            (int64 ids), in database-position order (not sorted by distance).

        Raises:
            TypeError, ValueError: bad queries, or a negative or non-integer radius.
        """
        q = as_codes(queries, self.nbits, "queries")
        radius = check_radius(radius, self.nbits)
        lims, distances, positions = self._backend.range_search(self._codes[: self._n], q, radius)
        return lims, distances, self._positions_to_ids(positions)

    def distances(self, queries: Any) -> np.ndarray:
        """Hamming distance from each query to every stored code, int32 (nq, ntotal).

        Memory grows as nq * ntotal: meant for small inputs and checks.
        """
        q = as_codes(queries, self.nbits, "queries")
        return self._backend.distances(q, self._codes[: self._n])

    # -- persistence (implemented in hashsearch.index.persistence) -------------------------
    def save(self, path: Any, *, overwrite: bool = False, **store_kwargs: Any) -> None:
        """Write the index to ``path`` as a code store (a sharded Zarr v3 group).

        Args:
            path: local path, URL (``s3://...``) or zarr Store.
            overwrite: replace an existing store.
            **store_kwargs: layout and provenance for :meth:`CodeStore.create`
                (``shard_rows``, ``chunk_rows``, ``encoder``, ``storage_options``).

        Raises:
            StoreError: a store exists at ``path`` and ``overwrite`` is False.
        """
        from hashsearch.index.persistence import save_arrays

        save_arrays(
            path, self.nbits, self.codes, self.ids, next_id=self._id_policy.next_id, overwrite=overwrite, **store_kwargs
        )

    @classmethod
    def load(
        cls,
        path: Any,
        backend: str | Backend | None = "auto",
        *,
        num_threads: int | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> BinaryIndex:
        """Load a saved index (or any code store), streaming it shard by shard.

        Raises:
            StoreError, IncompatibleStoreError, CorruptStoreError: see ``CodeStore.open``.
        """
        from hashsearch.index.persistence import open_store

        with open_store(path, storage_options) as store:
            return cls.from_store(store, backend, num_threads=num_threads)

    @classmethod
    def from_store(
        cls, store: Any, backend: str | Backend | None = "auto", *, num_threads: int | None = None
    ) -> BinaryIndex:
        """A new index holding every row of an open :class:`~hashsearch.CodeStore` (same positions and ids)."""
        from hashsearch.index.persistence import read_store_arrays

        index = cls(store.nbits, backend, num_threads=num_threads)
        arrays = read_store_arrays(store)
        index._adopt(arrays.codes, arrays.ids, arrays.id_policy)
        return index

    def _adopt(self, codes: np.ndarray, ids: np.ndarray, id_policy: IdPolicy) -> None:
        """Take over trusted arrays (uint8 (n, code_size), unique int64 (n,)) without copying,
        with their id bookkeeping (checked by :func:`~hashsearch.index.persistence.read_store_arrays`)."""
        self._codes, self._ids, self._n = codes, ids, codes.shape[0]
        self._id_policy = id_policy
        self._invalidate_id_caches()
        self._backend_stale = False
        self._backend_hook(lambda: self._backend.attach(self.codes))

    # -- internals --------------------------------------------------------------------
    def _sync_backend(self, new_rows: np.ndarray) -> None:
        """Give the backend an add's new rows (uint8 (m, code_size), the rows after
        ``ntotal`` in the buffer); the whole database with them if it lost its copy."""
        if self._backend_stale:
            n = self._n + new_rows.shape[0]
            self._backend.attach(self._codes[:n])
            self._backend_stale = False
        else:
            self._backend.extend(new_rows)

    def _backend_hook(self, hook: Any) -> None:
        """Run a backend state hook; if it raises, the backend forgets its state
        (``reset``) and is given the whole database at the next change, then the error
        propagates."""
        try:
            hook()
        except BaseException:
            self._backend_stale = True
            try:
                self._backend.reset()
            except Exception:  # the original error is the one to report
                logger.exception("backend %s: reset after a failed state hook failed too", self.backend)
            raise

    def _reserve(self, n: int) -> None:
        capacity = self._codes.shape[0]
        if n <= capacity:
            return
        new_capacity = max(n, 2 * capacity, _MIN_CAPACITY)
        codes = np.empty((new_capacity, self.code_size), dtype=np.uint8)
        ids = np.empty(new_capacity, dtype=np.int64)
        codes[: self._n] = self._codes[: self._n]
        ids[: self._n] = self._ids[: self._n]
        self._codes, self._ids = codes, ids

    def _invalidate_id_caches(self) -> None:
        """Forget what was derived from the ids (call after any change to them)."""
        self._lookup = None
        self._id_table = None

    def _positions_to_ids(self, positions: np.ndarray) -> np.ndarray:
        """Map backend positions (int64, -1 for padding) to ids, in place where possible."""
        n = self._n
        ids = self._ids[:n]
        if n == 0 or self._id_policy.positions:  # ids are the positions: nothing to map
            return positions
        if self._id_table is None:
            table = np.empty(n + 1, dtype=np.int64)
            table[0] = PAD_POSITION
            table[1:] = ids
            self._id_table = table
        positions += 1
        return np.take(self._id_table, positions, out=positions)

    def _stored_one_of(self, ids: np.ndarray) -> int | None:
        """One of ``ids`` (int64) that is already in the index, or None."""
        found = self._find_positions(ids) >= 0
        return int(ids[np.argmax(found)]) if found.any() else None

    def _find_positions(self, ids: Any, name: str = "ids") -> np.ndarray:
        """Positions of ``ids`` (any integers, flattened), int64 (m,), -1 where absent.

        Raises:
            TypeError: ids are not integers.
        """
        ids, valid = as_lookup_ids(ids, name)
        stored = self._ids[: self._n]
        if stored.size == 0 or ids.size == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        if self._id_policy.increasing:
            return find_positions(stored, None, ids, valid)  # ids beyond int64 (not valid) are never stored
        if self._lookup is None:
            self._lookup = sorted_lookup(stored)
        return find_positions(*self._lookup, ids, valid)
