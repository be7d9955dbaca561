"""FAISS's binary index types behind the :class:`~hashsearch.index.base.IndexType` protocol.

Five classes, one per FAISS structure, each the FAISS index wrapped in
``faiss.IndexBinaryIDMap2`` (which keeps the int64 ids, so a saved file is a
plain FAISS index that ``faiss.read_index_binary`` reads back with its ids):

- :class:`FaissFlat` (``"BFlat"``): ``IndexBinaryFlat``, exact; ``device``
  ("auto": a GPU copy when faiss-gpu sees a GPU);
- :class:`FaissIVF` (``"BIVF{nlist}"``): ``IndexBinaryIVF``; ``nlist``, ``nprobe``
  (default min(16, nlist));
- :class:`FaissHNSW` (``"BHNSW{M}"``): ``IndexBinaryHNSW``; ``M``,
  ``ef_construction`` (40), ``ef_search`` (64);
- :class:`FaissHash` (``"BHash{b}"``): ``IndexBinaryMultiHash`` with one table
  (``IndexBinaryHash``'s search, see below); ``b``, ``nflip`` (2);
- :class:`FaissMultiHash` (``"BHash{nhash}x{b}"``): ``IndexBinaryMultiHash``;
  ``nhash``, ``b``, ``nflip`` (2).

All but Flat are approximate (``exact = False``).

What the wrappers add to FAISS, so that every type keeps the library's semantics:

- **ties** by ascending database position (insertion order). The FAISS structure
  inside holds the codes at internal labels ``0..n-1`` in position order, and the
  results are reordered by (distance, position). For :class:`FaissFlat` the cut
  at k is made exact too: it asks FAISS for k + 1 neighbours, and where the
  (k+1)-th ties with the k-th, it takes the tied run from a range search, so
  FAISS Flat passes the exact contract suite with FAISS's distances;
- **range search** keeps distances ``<= radius`` (FAISS keeps ``< radius``: the
  wrappers pass ``radius + 1``); HNSW has none in FAISS and raises
  ``NotImplementedError``;
- **remove_ids** everywhere: FAISS Flat removes in place (order kept); IVF, HNSW
  and the hash indexes, which cannot (HNSW, hash) or would break the id map
  (IVF's internal labels are not renumbered), are rebuilt from their codes
  without the removed ones (IVF keeps its trained quantizer). Cost O(n), for
  HNSW a full graph build;
- **reconstruct** everywhere (IVF keeps a direct map);
- **IVF is trained on its first add**, on the codes added; fewer codes than
  ``nlist`` is a ``ValueError`` that says so;
- **memory-mapped loads** (``load(path, mmap=True)``, FAISS's
  ``IO_FLAG_MMAP_IFC``) are read-only: ``add``, ``remove_ids`` and ``reset``
  raise :class:`~hashsearch.index.base.ReadOnlyIndexError`, where FAISS would
  abort the whole process;
- **save** writes a temporary file next to ``path`` and renames it over
  ``path``, so a file that is memory-mapped (by this or another process) is never
  overwritten in place;
- widths that are not a multiple of 8 are refused before FAISS sees them;
- **faiss-gpu**: :class:`FaissFlat` searches a ``GpuIndexBinaryFlat`` copy when
  faiss-gpu is importable and a GPU is present; FAISS's GPU k-selection stops at
  2048 neighbours and the exact cut asks for k + 1, so k >= 2048 runs on the CPU
  index with a ``RuntimeWarning``.

Why :class:`FaissHash` is ``IndexBinaryMultiHash`` with one table and not
``IndexBinaryHash``: the two search the same buckets (the first ``b`` bits,
``nflip`` flips) and return the same codes, but ``IndexBinaryHash`` keeps its
codes only inside the buckets, so it can neither reconstruct a code nor rebuild
itself after ``remove_ids``; the multi-hash keeps a flat copy
(``tests/index/test_faiss_types.py`` checks the two agree).

Threads are FAISS's own OpenMP threads (``OMP_NUM_THREADS`` or
``faiss.omp_set_num_threads``).

This module may import the base modules, :mod:`hashsearch.backends` (padding
constants), :mod:`hashsearch.index.base` and faiss.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hashsearch._ids import IdPolicy
from hashsearch._validate import as_codes, as_lookup_ids, check_int, check_k, check_nbits, check_radius
from hashsearch.backends import PAD_DISTANCE, PAD_POSITION
from hashsearch.errors import CorruptStoreError, IncompatibleStoreError
from hashsearch.index.base import IndexType, ReadOnlyIndexError, order_by_distance_position

try:
    import faiss

    _IMPORT_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover - faiss-cpu is a core dependency
    faiss = None  # type: ignore[assignment]
    _IMPORT_ERROR = f"faiss cannot be imported ({exc}); install faiss-cpu"

__all__ = [
    "GPU_MAX_K",
    "FaissFlat",
    "FaissHNSW",
    "FaissHash",
    "FaissIVF",
    "FaissIndex",
    "FaissMultiHash",
    "gpu_available",
    "load_faiss_index",
]

logger = logging.getLogger("hashsearch")

#: Largest k faiss-gpu's k-selection supports; larger k run on the CPU index.
GPU_MAX_K = 2048


def _require_faiss() -> None:
    if faiss is None:
        raise ImportError(_IMPORT_ERROR)


def gpu_available() -> bool:
    """True when faiss-gpu is importable (``GpuIndexBinaryFlat``) and sees at least one GPU."""
    return (
        faiss is not None
        and hasattr(faiss, "GpuIndexBinaryFlat")
        and hasattr(faiss, "get_num_gpus")
        and faiss.get_num_gpus() > 0
    )


class FaissIndex(IndexType):
    """Common machinery of the FAISS index types (not built directly).

    Subclasses say how to build their FAISS structure (:meth:`_new_inner`), which
    FAISS class they hold, and how to read their parameters back from a loaded one.

    Args:
        nbits: code length in bits, a positive multiple of 8.

    Raises:
        TypeError, ValueError: bad nbits or parameters.
    """

    #: The FAISS class inside the id map.
    faiss_class: ClassVar[str] = ""
    exact: ClassVar[bool] = False

    def __init__(self, nbits: int) -> None:
        _require_faiss()
        self.nbits = check_nbits(nbits)
        self.code_size = self.nbits // 8
        self._mmapped = False
        self._id_policy = IdPolicy()
        self._ids_cache: np.ndarray | None = None
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None
        self._index = self._wrap(self._new_inner())

    # -- building blocks (per type) ---------------------------------------------------
    def _new_inner(self) -> Any:
        """A new, empty FAISS structure with this index's parameters."""
        raise NotImplementedError

    def _read_params(self, inner: Any) -> None:
        """Take the parameters over from a loaded FAISS structure."""

    def _storage(self) -> Any:
        """A FAISS index that reconstructs the code at each internal label (= position)."""
        return self._inner

    def _before_add(self, codes: np.ndarray) -> None:
        """Hook run before the first rows reach FAISS (IVF trains here)."""

    @staticmethod
    def _wrap(inner: Any) -> Any:
        idmap = faiss.IndexBinaryIDMap2(inner)
        inner.this.disown()  # the id map owns (and frees) the structure
        idmap.own_fields = True
        return idmap

    @property
    def _inner(self) -> Any:
        return faiss.downcast_IndexBinary(self._index.index)

    # -- properties -------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        """Number of codes in the index."""
        return int(self._index.ntotal)

    @property
    def faiss_index(self) -> Any:
        """The ``faiss.IndexBinaryIDMap2`` itself (changing it directly voids the guarantees)."""
        return self._index

    @property
    def memory_mapped(self) -> bool:
        """True when the index was loaded memory-mapped (it is then read-only)."""
        return self._mmapped

    @property
    def ids(self) -> np.ndarray:
        """Read-only ids in position order, int64 (ntotal,)."""
        if self._ids_cache is None:
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)
            ids.flags.writeable = False
            self._ids_cache = ids
        return self._ids_cache

    @property
    def codes(self) -> np.ndarray:
        """A copy of every code in position order, uint8 (ntotal, code_size)."""
        n = self.ntotal
        if n == 0:
            return np.empty((0, self.code_size), dtype=np.uint8)
        return self._storage().reconstruct_n(0, n).reshape(n, self.code_size)

    def memory_bytes(self) -> int | None:
        """Codes and ids (structure overheads per type are added by subclasses)."""
        return self.ntotal * (self.code_size + 8)

    def info(self) -> dict[str, Any]:
        """:meth:`IndexType.info` plus the FAISS class inside and whether the index is memory-mapped."""
        return {**super().info(), "faiss_class": self.faiss_class, "memory_mapped": self._mmapped}

    # -- changes ----------------------------------------------------------------------
    def _check_writable(self, what: str) -> None:
        if self._mmapped:
            raise ReadOnlyIndexError(
                f"cannot {what}: this {type(self).__name__} was loaded memory-mapped and is read-only "
                "(FAISS would abort the process); load it with mmap=False to change it"
            )

    def add(self, codes: Any, ids: Any = None) -> None:
        """Append codes; FAISS gets only the new rows.

        Args:
            codes: uint8 (n, code_size), or (code_size,) for one code.
            ids: int (n,) distinct non-negative ids not already in the index; default
                consecutive ids after the largest id assigned so far.

        Raises:
            TypeError, ValueError: bad codes or ids (the index is unchanged).
            ReadOnlyIndexError: the index was loaded memory-mapped.
        """
        self._check_writable("add")
        new_codes = as_codes(codes, self.nbits, "codes")
        m = new_codes.shape[0]
        new_ids = self._id_policy.propose(ids, m, find_clash=self._stored_one_of)
        if m == 0:
            return
        self._before_add(new_codes)
        n_before = self.ntotal
        last_id = int(self._index.id_map.at(n_before - 1)) if n_before else None  # no copy of every id
        self._index.add_with_ids(new_codes, new_ids)
        self._id_policy.accept(new_ids, n_before, last_id)
        self._changed()

    def remove_ids(self, ids: Any) -> int:
        """Remove the codes with these ids (absent ids are ignored); the rest keep ids and order.

        Returns:
            Number of codes removed.

        Raises:
            TypeError: ids are not integers.
            ReadOnlyIndexError: the index was loaded memory-mapped.
        """
        self._check_writable("remove ids")
        positions = self._find_positions(ids)
        positions = np.unique(positions[positions >= 0])
        if positions.size == 0:
            return 0
        self._remove_positions(positions)
        self._id_policy.removed(self.ids)
        logger.debug("%s: removed %d codes, %d remain", type(self).__name__, positions.size, self.ntotal)
        return int(positions.size)

    def _remove_positions(self, positions: np.ndarray) -> None:
        """Drop the codes at ``positions`` (unique, sorted): rebuild from the codes kept."""
        keep = np.ones(self.ntotal, dtype=bool)
        keep[positions] = False
        codes, ids = self.codes[keep], self.ids[keep].copy()
        self._index.reset()
        if codes.shape[0]:
            self._index.add_with_ids(codes, ids)
        self._changed()

    def reset(self) -> None:
        """Remove every code (ids restart at 0; a trained IVF stays trained)."""
        self._check_writable("reset")
        self._index.reset()
        self._id_policy = IdPolicy()
        self._changed()

    def reconstruct(self, id: int) -> np.ndarray:
        """A copy of the code stored under ``id``: uint8 (code_size,).

        Raises:
            TypeError: id is not an integer.
            KeyError: no code has this id.
        """
        if isinstance(id, (bool, np.bool_)) or not isinstance(id, (int, np.integer)):
            raise TypeError(f"id must be an int, got {type(id).__name__}")
        pos = int(self._find_positions(id, "id")[0])
        if pos < 0:
            raise KeyError(f"id {id} is not in the index")
        return np.asarray(self._storage().reconstruct(pos), dtype=np.uint8).reshape(self.code_size)

    def reconstruct_batch(self, ids: Any) -> np.ndarray:
        """Copies of the codes stored under ``ids``: uint8 (m, code_size).

        Raises:
            TypeError: ids are not integers.
            KeyError: one of the ids is not in the index.
        """
        pos = self._find_positions(ids)
        if (pos < 0).any():
            raise KeyError(f"id {np.asarray(ids).ravel()[np.argmax(pos < 0)]} is not in the index")
        storage = self._storage()
        out = np.empty((pos.size, self.code_size), dtype=np.uint8)
        for i, p in enumerate(pos.tolist()):
            out[i] = storage.reconstruct(p)
        return out

    # -- searching --------------------------------------------------------------------
    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """k nearest codes of each query (approximate unless :attr:`exact`).

        Args:
            queries: uint8 (nq, code_size), or (code_size,) for one query.
            k: neighbours per query, >= 1; may exceed ``ntotal``.

        Returns:
            (D int32 (nq, k), I int64 (nq, k)): distances ascending, ties by ascending
            database position; missing neighbours are id -1, distance 2**31 - 1.

        Raises:
            TypeError, ValueError: bad queries or k.
        """
        q = as_codes(queries, self.nbits, "queries")
        k = check_k(k, self.ntotal, q.shape[0])
        distances, positions = self._knn_positions(q, k)
        return distances, self._to_ids(positions)

    def _knn_positions(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's k-NN over the internal labels (positions), reordered by (distance, position)."""
        nq = q.shape[0]
        kk = min(k, self.ntotal)  # FAISS is asked for what exists; the columns past ntotal are padding
        if nq == 0 or kk == 0:
            return _padding(nq, k)
        d, p = self._inner.search(q, kk)
        d = np.ascontiguousarray(d, dtype=np.int32)
        d[p < 0] = PAD_DISTANCE
        d, p = order_by_distance_position(d, p.astype(np.int64, copy=False))
        if kk == k:
            return d, p
        distances, positions = _padding(nq, k)
        distances[:, :kk], positions[:, :kk] = d, p
        return distances, positions

    def range_search(self, queries: Any, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every code found within distance ``<= radius`` (inclusive) of each query.

        Returns:
            (lims int64 (nq + 1,), D int32 (m,), I int64 (m,)); query i's results are
            ``[lims[i]:lims[i+1]]``, in database-position order.

        Raises:
            TypeError, ValueError: bad queries or radius.
            NotImplementedError: FAISS has no range search for this type.
        """
        q = as_codes(queries, self.nbits, "queries")
        radius = check_radius(radius, self.nbits)
        lims, distances, positions = self._range_positions(q, radius)
        return lims, distances, self._to_ids(positions)

    def _range_positions(self, q: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nq = q.shape[0]
        if nq == 0 or self.ntotal == 0:
            return np.zeros(nq + 1, dtype=np.int64), np.empty(0, np.int32), np.empty(0, np.int64)
        lims, distances, positions = self._inner.range_search(q, radius + 1)  # FAISS keeps d < radius
        lims = lims.astype(np.int64, copy=False)
        positions = positions.astype(np.int64, copy=False)
        distances = distances.astype(np.int32, copy=False)
        query_of = np.repeat(np.arange(nq), np.diff(lims))
        order = np.lexsort((positions, query_of))  # within each query: ascending position
        return lims, distances[order], positions[order]

    # -- persistence ------------------------------------------------------------------
    def save(self, path: Any, *, overwrite: bool = False) -> None:
        """Write a FAISS index file (``faiss.read_index_binary`` reads it, ids included).

        The file is written next to ``path`` under a temporary name and renamed over
        it, so a memory-mapped copy of the old file (this index's own, or another
        process's) keeps reading the old contents.

        Args:
            path: a local file path.
            overwrite: replace an existing file.

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is False.
            IsADirectoryError, FileNotFoundError: ``path`` is a directory, or its folder
                does not exist (nothing is written).
        """
        path = Path(os.fspath(path))
        if path.is_dir():  # checked before writing: os.replace cannot put a file over a directory
            raise IsADirectoryError(f"{path} is a directory; a FAISS index is saved as one file")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"cannot save to {path}: the folder {path.parent} does not exist")
        # a fresh name in the same directory (FAISS creates it with the umask's permissions)
        tmp = str(path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp"))
        try:
            faiss.write_index_binary(self._index, tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        logger.info("saved %s of %d codes to %s", type(self).__name__, self.ntotal, path)

    @classmethod
    def load(cls, path: Any, *, mmap: bool = False) -> FaissIndex:
        """Read a file written by :meth:`save` (on the base class: whichever type it holds).

        Args:
            path: a local file path.
            mmap: map the codes from the file instead of reading them
                (``IO_FLAG_MMAP_IFC``); the index is then read-only.

        Raises:
            FileNotFoundError: no file at ``path``.
            CorruptStoreError: the file is not a FAISS binary index.
            IncompatibleStoreError: ``path`` is a directory, or it holds another index
                type than ``cls``, no id map, or ids that are negative or repeated (a
                foreign file).
        """
        _require_faiss()
        path = Path(os.fspath(path))
        if path.is_dir():  # e.g. the code store of a Flat or MIH index
            raise IncompatibleStoreError(
                f"{path} is a directory, not a FAISS index file (a code store opens with "
                "BinaryIndex.load or MultiIndexHashing.load)"
            )
        if not path.is_file():
            raise FileNotFoundError(f"no FAISS index file at {path}")
        try:
            raw = faiss.read_index_binary(str(path), faiss.IO_FLAG_MMAP_IFC if mmap else 0)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise CorruptStoreError(f"{path} is not a readable FAISS binary index file: {first}") from exc
        return cls._from_faiss(raw, str(path), mmapped=mmap)

    @classmethod
    def _from_faiss(cls, raw: Any, where: str, *, mmapped: bool) -> FaissIndex:
        # FAISS returns the most derived type, owning the index: keep this very object (a
        # downcast proxy would not own it, and the index would be freed with ``raw``)
        if not isinstance(raw, faiss.IndexBinaryIDMap2):
            raise IncompatibleStoreError(
                f"{where} holds a bare faiss.{type(raw).__name__}, not an IndexBinaryIDMap2 as "
                "FaissIndex.save writes; wrap it with faiss.IndexBinaryIDMap2 to keep ids"
            )
        inner = faiss.downcast_IndexBinary(raw.index)
        target = _type_of(inner)
        if target is None:
            raise IncompatibleStoreError(f"{where} holds faiss.{type(inner).__name__}, which hashsearch does not wrap")
        if cls is not FaissIndex and not issubclass(target, cls):
            raise IncompatibleStoreError(f"{where} holds a {target.__name__}, not a {cls.__name__}")
        index = target.__new__(target)
        index.nbits = check_nbits(int(raw.d))
        index.code_size = index.nbits // 8
        index._mmapped = mmapped
        index._ids_cache = None
        index._lookup = None
        index._index = raw
        try:
            index._read_params(inner)
        except RuntimeError as exc:  # e.g. an IVF whose labels are not sequential (no direct map)
            raise IncompatibleStoreError(f"{where}: FAISS cannot use this {target.__name__} as saved: {exc}") from exc
        ids = index.ids
        n = ids.shape[0]
        # IndexBinaryIDMap2 takes any int64 ids; the library's are distinct and non-negative
        if n and int(ids.min()) < 0:
            raise IncompatibleStoreError(f"{where} holds a negative id ({int(ids.min())}); ids must be >= 0")
        if n and np.unique(ids).size != n:
            raise IncompatibleStoreError(f"{where} holds repeated ids; ids must be unique")
        increasing = n < 2 or bool((np.diff(ids) > 0).all())
        positions = increasing and (n == 0 or (int(ids[0]) == 0 and int(ids[-1]) == n - 1))
        max_id = int(ids.max()) if n else -1
        index._id_policy = IdPolicy(next_id=max_id + 1, max_id=max_id, increasing=increasing, positions=positions)
        return index

    # -- internals --------------------------------------------------------------------
    def _changed(self) -> None:
        self._ids_cache = None
        self._lookup = None

    def _to_ids(self, positions: np.ndarray) -> np.ndarray:
        """Map internal labels (positions, -1 for none) to ids."""
        if self._id_policy.positions or positions.size == 0:
            return positions
        ids = self.ids
        return np.where(positions >= 0, ids[np.maximum(positions, 0)], PAD_POSITION)

    def _stored_one_of(self, ids: np.ndarray) -> int | None:
        found = self._find_positions(ids) >= 0
        return int(ids[np.argmax(found)]) if found.any() else None

    def _find_positions(self, ids: Any, name: str = "ids") -> np.ndarray:
        """Positions of ``ids`` (any integers, flattened), int64 (m,), -1 where absent."""
        ids, valid = as_lookup_ids(ids, name)
        stored = self.ids
        if stored.size == 0 or ids.size == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        if self._lookup is None:
            order = np.argsort(stored, kind="stable")
            self._lookup = (stored[order], order)
        sorted_ids, order = self._lookup
        where = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
        found = (sorted_ids[where] == ids) & valid
        return np.where(found, order[where], -1).astype(np.int64, copy=False)


def _padding(nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((nq, k), PAD_DISTANCE, dtype=np.int32), np.full((nq, k), PAD_POSITION, dtype=np.int64)


# -- the types ------------------------------------------------------------------------------
class FaissFlat(FaissIndex):
    """FAISS ``IndexBinaryFlat``: exact, FAISS's distances, the library's tie order.

    Args:
        nbits: code length in bits, a positive multiple of 8.
        device: ``"auto"`` (a ``GpuIndexBinaryFlat`` copy when faiss-gpu sees a GPU,
            else the CPU), ``"cpu"`` or ``"gpu"`` (an error without faiss-gpu and a GPU).

    Raises:
        ValueError: unknown device, or ``"gpu"`` where none can be used.
    """

    faiss_class = "IndexBinaryFlat"
    exact = True

    def __init__(self, nbits: int, *, device: str = "auto") -> None:
        self._device = _check_device(device)
        self._gpu: Any = None
        super().__init__(nbits)

    def _new_inner(self) -> Any:
        return faiss.IndexBinaryFlat(self.nbits)

    def _read_params(self, inner: Any) -> None:
        self._device = _check_device("auto")
        self._gpu = None

    @property
    def factory_string(self) -> str:
        return "BFlat"

    @property
    def device(self) -> str:
        """Where searches run: "gpu" or "cpu"."""
        return self._device

    def params(self) -> dict[str, Any]:
        return {"device": self._device}

    def _changed(self) -> None:
        super()._changed()
        self._gpu = None  # the GPU copy is rebuilt at the next search

    def _remove_positions(self, positions: np.ndarray) -> None:
        """FAISS Flat removes in place and keeps the order of the rest (no rebuild)."""
        removed = self._index.remove_ids(np.ascontiguousarray(self.ids[positions]))
        if removed != positions.size:  # pragma: no cover - FAISS and the id map disagree
            raise RuntimeError(f"FAISS removed {removed} codes, expected {positions.size}")
        self._changed()

    def _searcher(self, ask: int, k: int) -> Any:
        """The FAISS index a k-NN search asking FAISS for ``ask`` columns (k or k + 1) runs on."""
        if self._device != "gpu":
            return self._inner
        if ask > GPU_MAX_K:
            warnings.warn(
                f"k={k} needs {ask} neighbours from FAISS (k + 1 where ties may cross the cut), above "
                f"faiss-gpu's limit of {GPU_MAX_K}; searching on the CPU index instead",
                RuntimeWarning,
                stacklevel=4,
            )
            return self._inner
        if self._gpu is None:  # pragma: no cover - needs faiss-gpu and a GPU
            resources: Any = faiss.StandardGpuResources()  # kept alive beside the index that uses it
            self._gpu = (resources, faiss.index_binary_cpu_to_gpu(resources, 0, self._inner))
        return self._gpu[1]  # pragma: no cover

    def _knn_positions(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k-NN with the tie rule applied at the cut too.

        FAISS is asked for k + 1 neighbours; a row whose (k+1)-th distance equals
        its k-th may have left out codes at lower positions of that distance, so
        such rows take every code at distance <= the k-th from a range search
        and keep the first k by (distance, position).
        """
        nq, n = q.shape[0], self.ntotal
        distances, positions = _padding(nq, k)
        kk = min(k, n)
        if nq == 0 or kk == 0:
            return distances, positions
        ask = kk + 1 if kk < n else kk
        d, p = self._searcher(ask, kk).search(q, ask)
        d, p = order_by_distance_position(np.asarray(d, dtype=np.int32), p.astype(np.int64, copy=False))
        if ask > kk:
            cut = d[:, kk - 1]
            for dist in np.unique(cut[d[:, kk] == cut]):  # rows whose tie run crosses the cut
                rows = np.flatnonzero((d[:, kk] == cut) & (cut == dist))
                lims, rd, rp = self._inner.range_search(q[rows], int(dist) + 1)
                for j, row in enumerate(rows):
                    seg = slice(lims[j], lims[j + 1])
                    order = np.lexsort((rp[seg], rd[seg]))[:kk]
                    d[row, :kk] = rd[seg][order]
                    p[row, :kk] = rp[seg][order]
        distances[:, :kk] = d[:, :kk]
        positions[:, :kk] = p[:, :kk]
        return distances, positions


class FaissIVF(FaissIndex):
    """FAISS ``IndexBinaryIVF``: codes in ``nlist`` lists around binary centroids; a
    search scans the ``nprobe`` nearest lists (approximate).

    The coarse quantizer (a flat binary index over the centroids) is trained on the
    codes of the first :meth:`add`, which must hold at least ``nlist`` codes (FAISS
    recommends 39 * nlist or more).

    Args:
        nbits: code length in bits.
        nlist: number of lists (>= 1).
        nprobe: lists scanned per query (1..nlist); default min(16, nlist).
    """

    faiss_class = "IndexBinaryIVF"

    def __init__(self, nbits: int, nlist: int, *, nprobe: int | None = None) -> None:
        self._nlist = check_int(nlist, "nlist")
        self._nprobe = min(16, self._nlist) if nprobe is None else _check_nprobe(nprobe, self._nlist)
        super().__init__(nbits)

    def _new_inner(self) -> Any:
        inner: Any = faiss.index_binary_factory(self.nbits, f"BIVF{self._nlist}")  # an IndexBinaryIVF
        inner.nprobe = self._nprobe
        return inner

    def _read_params(self, inner: Any) -> None:
        self._nlist, self._nprobe = int(inner.nlist), int(inner.nprobe)
        no_map = int(faiss.DirectMap.NoMap)  # type: ignore[attr-defined]  # not in FAISS's stubs
        if int(inner.direct_map.type) == no_map and inner.ntotal and not self._mmapped:
            inner.make_direct_map(True)

    @property
    def factory_string(self) -> str:
        return f"BIVF{self._nlist}"

    @property
    def is_trained(self) -> bool:
        """True once the first add has trained the coarse quantizer."""
        return bool(self._index.is_trained)

    @property
    def nprobe(self) -> int:
        """Lists scanned per query."""
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._nprobe = _check_nprobe(value, self._nlist)
        self._inner.nprobe = self._nprobe

    def params(self) -> dict[str, Any]:
        return {"nlist": self._nlist, "nprobe": self._nprobe}

    def memory_bytes(self) -> int | None:
        # codes, ids of the id map, labels of the lists and of the direct map, centroids
        return self.ntotal * (self.code_size + 8 + 8 + 8) + self._nlist * self.code_size

    def _before_add(self, codes: np.ndarray) -> None:
        if self._index.is_trained:
            return
        if codes.shape[0] < self._nlist:
            raise ValueError(
                f"BIVF{self._nlist} trains its {self._nlist} centroids on the codes of its first add, "
                f"which needs at least nlist={self._nlist} codes, got {codes.shape[0]}: add more codes "
                f"at once (39 * nlist = {39 * self._nlist} or more is best) or choose a smaller nlist"
            )
        if codes.shape[0] < 39 * self._nlist:
            logger.warning(
                "BIVF%d trained on only %d codes (FAISS recommends >= %d)",
                self._nlist,
                codes.shape[0],
                39 * self._nlist,
            )
        self._index.train(codes)
        self._inner.make_direct_map(True)  # reconstruct by position


class FaissHNSW(FaissIndex):
    """FAISS ``IndexBinaryHNSW``: a navigable small-world graph over the codes
    (approximate; no range search in FAISS).

    Args:
        nbits: code length in bits.
        M: graph degree (neighbours per node and layer, >= 2).
        ef_construction: candidate list while building (default 40, FAISS's).
        ef_search: candidate list while searching (default 64); raised to k when smaller.
    """

    faiss_class = "IndexBinaryHNSW"

    def __init__(self, nbits: int, M: int = 32, *, ef_construction: int = 40, ef_search: int = 64) -> None:
        self._M = check_int(M, "M", 2)
        self._ef_construction = check_int(ef_construction, "ef_construction")
        self._ef_search = check_int(ef_search, "ef_search")
        super().__init__(nbits)

    def _new_inner(self) -> Any:
        inner = faiss.IndexBinaryHNSW(self.nbits, self._M)
        inner.hnsw.efConstruction = self._ef_construction
        inner.hnsw.efSearch = self._ef_search
        return inner

    def _read_params(self, inner: Any) -> None:
        # level-0 nodes have 2 * M neighbours; the upper levels M
        self._M = int(inner.hnsw.nb_neighbors(1))
        self._ef_construction = int(inner.hnsw.efConstruction)
        self._ef_search = int(inner.hnsw.efSearch)

    def _storage(self) -> Any:
        return self._inner.storage

    @property
    def factory_string(self) -> str:
        return f"BHNSW{self._M}"

    @property
    def ef_search(self) -> int:
        """Candidate list while searching."""
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._ef_search = check_int(value, "ef_search")
        self._inner.hnsw.efSearch = self._ef_search

    def params(self) -> dict[str, Any]:
        return {"M": self._M, "ef_construction": self._ef_construction, "ef_search": self._ef_search}

    def memory_bytes(self) -> int | None:
        # codes, ids, neighbour lists (int32: 2 * M at level 0, about one more per node above)
        return self.ntotal * (self.code_size + 8 + 4 * (2 * self._M + 1))

    def _knn_positions(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        inner = self._inner
        inner.hnsw.efSearch = max(self._ef_search, min(k, self.ntotal))  # k past ntotal is padding
        try:
            return super()._knn_positions(q, k)
        finally:
            inner.hnsw.efSearch = self._ef_search

    def _range_positions(self, q: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError(
            "FAISS's IndexBinaryHNSW has no range search; use BFlat, BIVF, BHash or MIH for range queries"
        )


class FaissMultiHash(FaissIndex):
    """FAISS ``IndexBinaryMultiHash``: ``nhash`` hash tables, table i keyed by bits
    ``[i*b, (i+1)*b)`` of the code; a search looks up every bucket within ``nflip``
    bit flips of the query's key in each table and ranks the codes found by their
    full distance (approximate).

    Args:
        nbits: code length in bits.
        nhash: number of tables (>= 1), with ``nhash * b <= nbits``.
        b: bits per key (1..64).
        nflip: key bits flipped when probing (0..b); default 2.
    """

    faiss_class = "IndexBinaryMultiHash"

    def __init__(self, nbits: int, nhash: int, b: int, *, nflip: int = 2) -> None:
        nbits = check_nbits(nbits)
        self._nhash = check_int(nhash, "nhash")
        self._b = _check_hash_bits(b, nbits, self._nhash)
        self._nflip = _check_nflip(nflip, self._b)
        super().__init__(nbits)

    def _new_inner(self) -> Any:
        inner = faiss.IndexBinaryMultiHash(self.nbits, self._nhash, self._b)
        inner.nflip = self._nflip
        return inner

    def _read_params(self, inner: Any) -> None:
        self._nhash, self._b, self._nflip = int(inner.nhash), int(inner.b), int(inner.nflip)

    def _storage(self) -> Any:
        return self._inner.storage

    @property
    def factory_string(self) -> str:
        return f"BHash{self._nhash}x{self._b}"

    @property
    def nflip(self) -> int:
        """Key bits flipped when probing."""
        return self._nflip

    @nflip.setter
    def nflip(self, value: int) -> None:
        self._nflip = _check_nflip(value, self._b)
        self._inner.nflip = self._nflip

    def params(self) -> dict[str, Any]:
        return {"nhash": self._nhash, "b": self._b, "nflip": self._nflip}

    def memory_bytes(self) -> int | None:
        # codes, ids, and per table one label and about one key per code
        return self.ntotal * (self.code_size + 8 + self._nhash * 16)


class FaissHash(FaissMultiHash):
    """FAISS's ``IndexBinaryHash`` search: one hash table keyed by the first ``b`` bits,
    probing every key within ``nflip`` flips (approximate). Built as
    ``IndexBinaryMultiHash`` with one table (see the module docstring).

    Args:
        nbits: code length in bits.
        b: bits per key (1..min(64, nbits)).
        nflip: key bits flipped when probing (0..b); default 2.
    """

    def __init__(self, nbits: int, b: int, *, nflip: int = 2) -> None:
        super().__init__(nbits, 1, b, nflip=nflip)

    @property
    def factory_string(self) -> str:
        return f"BHash{self._b}"

    def params(self) -> dict[str, Any]:
        return {"b": self._b, "nflip": self._nflip}


def _type_of(inner: Any) -> type[FaissIndex] | None:
    """The wrapper class for a loaded FAISS structure."""
    if isinstance(inner, faiss.IndexBinaryFlat):
        return FaissFlat
    if isinstance(inner, faiss.IndexBinaryIVF):
        return FaissIVF
    if isinstance(inner, faiss.IndexBinaryHNSW):
        return FaissHNSW
    if isinstance(inner, faiss.IndexBinaryMultiHash):
        tables: Any = inner  # FAISS's stubs lack nhash
        return FaissHash if int(tables.nhash) == 1 else FaissMultiHash
    return None


def load_faiss_index(path: Any, *, mmap: bool = False) -> FaissIndex:
    """Load a file written by any FAISS index type's ``save``, as its own type."""
    return FaissIndex.load(path, mmap=mmap)


# -- parameter checks -----------------------------------------------------------------------
def _check_device(device: Any) -> str:
    if not isinstance(device, str) or device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
    if device == "gpu" and not gpu_available():
        raise ValueError("device='gpu' needs faiss-gpu (GpuIndexBinaryFlat) and a visible GPU; neither is here")
    if device == "auto":
        return "gpu" if gpu_available() else "cpu"
    return device


def _check_nprobe(nprobe: Any, nlist: int) -> int:
    nprobe = check_int(nprobe, "nprobe")
    if nprobe > nlist:
        raise ValueError(f"nprobe must be <= nlist={nlist}, got {nprobe}")
    return nprobe


def _check_hash_bits(b: Any, nbits: int, nhash: int) -> int:
    b = check_int(b, "b")
    if b > 64:
        raise ValueError(f"hash keys are at most 64 bits, got b={b}")
    if nhash * b > nbits:
        raise ValueError(f"nhash * b must be <= nbits: {nhash} tables of {b} bits need {nhash * b} > {nbits} bits")
    return b


def _check_nflip(nflip: Any, b: int) -> int:
    nflip = check_int(nflip, "nflip", 0)
    if nflip > b:
        raise ValueError(f"nflip must be <= b={b}, got {nflip}")
    return nflip
