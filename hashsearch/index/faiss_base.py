"""The machinery shared by the FAISS index types (:mod:`hashsearch.index.faiss_types`).

:class:`FaissIndex` wraps a FAISS binary index in ``faiss.IndexBinaryIDMap2`` (the
int64 ids live in FAISS's id map, so a saved file is a plain FAISS file) and gives
every type the library's semantics: results reordered by (distance, position),
inclusive range search (FAISS's ``radius + 1``), ``remove_ids`` and
``reconstruct``, memory-mapped loads that are read-only instead of aborting the
process on a write, saves that write a temporary file and rename it, and loading a
file as the type that wrote it. The five types and their parameters are in
:mod:`hashsearch.index.faiss_types`, which says what each adds; a type registers
itself here by subclassing :class:`FaissIndex` and saying which FAISS structure it
wraps (:meth:`FaissIndex._wraps`).

This module may import the base modules, :mod:`hashsearch.backends` (padding
constants), :mod:`hashsearch.index.base` and faiss.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hashsearch._ids import IdPolicy, find_positions, sorted_lookup
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

__all__ = ["GPU_MAX_K", "FaissIndex", "gpu_available"]

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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _WRAPPERS.append(cls)

    @classmethod
    def _wraps(cls, inner: Any) -> bool:
        """Whether this type wraps the loaded FAISS structure ``inner`` (each type says)."""
        return False

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
        pos = int(self._find_positions(check_int(id, "id", minimum=None), "id")[0])
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
            self._lookup = sorted_lookup(stored)
        return find_positions(*self._lookup, ids, valid)


def _padding(nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((nq, k), PAD_DISTANCE, dtype=np.int32), np.full((nq, k), PAD_POSITION, dtype=np.int64)


#: The wrapper classes, registered by subclassing FaissIndex (see FaissIndex._wraps).
_WRAPPERS: list[type[FaissIndex]] = []


def _type_of(inner: Any) -> type[FaissIndex] | None:
    """The wrapper class for a loaded FAISS structure (None when no type wraps it)."""
    for wrapper in _WRAPPERS:
        if wrapper._wraps(inner):
            return wrapper
    return None
