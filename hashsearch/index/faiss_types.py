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

The shared machinery (:class:`FaissIndex`: the id map, the reordering, saving,
loading, the memory-mapped guard) is :mod:`hashsearch.index.faiss_base`; this module
holds the five types and their parameter checks. It may import what faiss_base may,
and faiss_base.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from hashsearch._validate import check_int, check_nbits
from hashsearch.index.base import order_by_distance_position
from hashsearch.index.faiss_base import GPU_MAX_K, FaissIndex, _padding, faiss, gpu_available

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

    @classmethod
    def _wraps(cls, inner: Any) -> bool:
        return isinstance(inner, faiss.IndexBinaryFlat)
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

    @classmethod
    def _wraps(cls, inner: Any) -> bool:
        return isinstance(inner, faiss.IndexBinaryIVF)

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

    @classmethod
    def _wraps(cls, inner: Any) -> bool:
        return isinstance(inner, faiss.IndexBinaryHNSW)

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

    @classmethod
    def _wraps(cls, inner: Any) -> bool:
        # one table is FaissHash (its own class below), more are this one
        tables: Any = inner  # FAISS's stubs lack nhash
        return isinstance(inner, faiss.IndexBinaryMultiHash) and (int(tables.nhash) == 1) == (cls is FaissHash)

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
