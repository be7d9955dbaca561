"""The CUDA backend: exact k-NN for any k and range search on an NVIDIA GPU.

The kernels are the separate extension ``hashsearch._cuda`` (``csrc/cuda/``), built
when CMake finds nvcc (``HASHSEARCH_CUDA=AUTO``, the default, or ``ON``); a build
without it reports so in ``hashsearch info`` and here in
:meth:`CudaBackend.unavailable_reason`. What the kernels do (see
``csrc/cuda/hamming.cuh``): a per-query histogram of distances gives the k-th
distance, a counting pass and an ordered compaction write the results in
position order, and a stable segmented sort by distance puts them in the
engine's order (distance, then position). No register heap, so no cap on k
(FAISS's ``GpuIndexBinaryFlat`` stops at 2048) and range search works too.

Device memory is kept across searches: the index's state hooks upload its
database once (:meth:`CudaBackend.attach`) and then only the rows of each add
(:meth:`CudaBackend.extend`), and free it on :meth:`CudaBackend.reset`; a search
over any other array (a store block, a functional call) uploads it for that call
and frees it after. Query batches are sized to the free device memory.

``backend="auto"`` does not choose this backend: whether the GPU pays for the
transfer depends on the work's size, and that threshold has not been measured
yet (no GPU was available when this was written). Ask for it by name:
``BinaryIndex(64, backend="cuda")`` or ``HASHSEARCH_BACKEND=cuda``.
``HASHSEARCH_CUDA_DEVICE`` picks the device (default 0).

This module imports NumPy, :mod:`hashsearch.backends.base` and, when present, the
extension; nothing else of hashsearch.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import numpy as np

from hashsearch.backends.base import Backend

__all__ = ["CudaBackend", "cuda_info"]

try:
    from hashsearch import _cuda

    _IMPORT_ERROR: str | None = None
except ImportError as exc:
    _cuda = None  # type: ignore[assignment]
    _IMPORT_ERROR = (
        "hashsearch was built without its CUDA kernels (hashsearch._cuda cannot be imported: "
        f"{exc}); rebuild on a machine with nvcc (CUDA 12+, sm_75 or newer) and HASHSEARCH_CUDA=AUTO or ON"
    )


def _device_from_env() -> int:
    raw = os.environ.get("HASHSEARCH_CUDA_DEVICE", "0").strip() or "0"
    try:
        device = int(raw)
    except ValueError:
        raise ValueError(f"HASHSEARCH_CUDA_DEVICE must be a device index, got {raw!r}") from None
    if device < 0:
        raise ValueError(f"HASHSEARCH_CUDA_DEVICE must be >= 0, got {device}")
    return device


def cuda_info() -> dict[str, Any]:
    """What this build and machine offer for CUDA.

    Returns:
        ``{"built": bool, "devices": [description, ...], "runtime": int, "driver": int,
        "reason": str | None}``; ``reason`` says why the backend cannot run (None when it can).
    """
    if _cuda is None:
        return {"built": False, "devices": [], "runtime": 0, "driver": 0, "reason": _IMPORT_ERROR}
    count, why = _cuda.device_count()
    devices = [_cuda.device_description(i) for i in range(count)]
    return {
        "built": True,
        "devices": devices,
        "runtime": _cuda.runtime_version(),
        "driver": _cuda.driver_version(),
        "reason": None if count else f"no usable CUDA device: {why}",
    }


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def _owner(a: np.ndarray) -> np.ndarray:
    """The array that owns ``a``'s memory (``a`` itself when it is no view)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class CudaBackend(Backend):
    """Exact kernels on an NVIDIA GPU (any k, inclusive range search, position ties).

    Args:
        num_threads: accepted for the common signature; host threads play no part.
        device: CUDA device index; None for ``$HASHSEARCH_CUDA_DEVICE`` (default 0).
        batch_limit: most bytes of device scratch per query batch; None for a quarter
            of the free device memory.
    """

    name = "cuda"

    def __init__(self, num_threads: int | None = None, *, device: int | None = None,
                 batch_limit: int | None = None) -> None:
        super().__init__(num_threads)
        self.device = _device_from_env() if device is None else int(device)
        self.batch_limit = 0 if batch_limit is None else int(batch_limit)
        if self.batch_limit < 0:
            raise ValueError(f"batch_limit must be >= 0, got {batch_limit}")
        self._db: Any = None
        # what the device copy mirrors: the array owning the index's buffer (a weak
        # reference: a dropped buffer never matches, even if its address is reused) and the
        # address of the copy's row 0 in it
        self._owner: weakref.ref[np.ndarray] | None = None
        self._base: int | None = None
        self.generation = 0  # bumped once by every hook (attach, extend, reset)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why the CUDA kernels cannot run here (not built, no driver, no device), or None."""
        return cuda_info()["reason"]

    @property
    def simd_level(self) -> str | None:
        """The device the kernels run on, e.g. "NVIDIA H200 (sm_90, 139.8 GiB)"."""
        if _cuda is None:
            return None
        count, _ = _cuda.device_count()
        return _cuda.device_description(self.device) if self.device < count else None

    # -- device state (the index's hooks: attach, extend, reset) ---------------------------
    def attach(self, codes: np.ndarray) -> None:
        """Upload the index's whole database (uint8 (n, nbytes)); the old copy is freed first."""
        self.reset()  # the hook's one generation bump
        if codes.shape[0]:
            self._db = self._upload(codes)
            self._mirror(codes, 0)

    def extend(self, new_codes: np.ndarray) -> None:
        """Append an add's new rows (uint8 (m, nbytes)) to the device copy."""
        self.generation += 1
        if self._db is None:
            self._db = self._upload(new_codes)
        else:
            self._db.add(new_codes)
        # new_codes are rows n - m .. n - 1 of the index's buffer (which may have been
        # reallocated by this add): remember that buffer and where row 0 lies in it
        self._mirror(new_codes, self._db.ntotal - new_codes.shape[0])

    def reset(self) -> None:
        """Free the device copy of the database."""
        self.generation += 1
        db, self._db, self._owner, self._base = self._db, None, None, None
        if db is not None:
            db.reset()

    def _mirror(self, rows: np.ndarray, first: int) -> None:
        """The device copy mirrors the buffer holding ``rows``, which are its row ``first`` on."""
        self._owner = weakref.ref(_owner(rows))
        self._base = _address(rows) - first * rows.shape[1]

    def _upload(self, codes: np.ndarray) -> Any:
        nbits = codes.shape[1] * 8
        if nbits > _cuda.MAX_BITS:
            raise ValueError(f"the CUDA backend takes codes of at most {_cuda.MAX_BITS} bits, got {nbits}")
        db = _cuda.Database(codes.shape[1], self.device)
        db.add(codes)
        return db

    def _database(self, codes: np.ndarray) -> tuple[Any, bool]:
        """(device database for ``codes``, whether it is temporary).

        The device copy answers when ``codes`` is the index's database: a view of the
        very array (alive) the hooks were given, starting at the copy's row 0, with as
        many rows. Any other array (a store block, a functional call, a new array at a
        dropped buffer's address) is uploaded for this call only.
        """
        db = self._db
        owner = self._owner() if self._owner is not None else None
        if (db is not None and owner is not None and _owner(codes) is owner and self._base == _address(codes)
                and codes.shape[0] == db.ntotal and codes.shape[1] == db.nbytes):
            return db, False
        return self._upload(codes), True

    # -- kernels ---------------------------------------------------------------------------
    def knn(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest codes of each query (any k; see :meth:`Backend.knn`)."""
        nq = queries.shape[0]
        distances = np.empty((nq, k), dtype=np.int32)
        positions = np.empty((nq, k), dtype=np.int64)
        if codes.shape[0] == 0 or nq == 0:
            distances.fill(np.iinfo(np.int32).max)
            positions.fill(-1)
            return distances, positions
        db, temporary = self._database(codes)
        try:
            db.knn(queries, int(k), distances, positions, self.batch_limit)
        finally:
            if temporary:
                db.reset()
        return distances, positions

    def range_search(
        self, codes: np.ndarray, queries: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every code within distance <= radius, in position order (see :meth:`Backend.range_search`)."""
        nq = queries.shape[0]
        if codes.shape[0] == 0 or nq == 0:
            return np.zeros(nq + 1, dtype=np.int64), np.empty(0, np.int32), np.empty(0, np.int64)
        db, temporary = self._database(codes)
        try:
            return db.range_search(queries, int(radius), self.batch_limit)
        finally:
            if temporary:
                db.reset()

    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Full distance matrix int32 (na, nb): a range search with radius nbits over ``b``."""
        na, nb = a.shape[0], b.shape[0]
        if na == 0 or nb == 0:
            return np.zeros((na, nb), dtype=np.int32)
        _, dist, _ = self.range_search(b, a, 8 * a.shape[1])
        return dist.reshape(na, nb)

    def __repr__(self) -> str:
        return f"CudaBackend(device={self.device})"
