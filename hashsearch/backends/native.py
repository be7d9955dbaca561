"""The native backend: the compiled C++ core ``hashsearch._core`` (``csrc/``).

What the core does (see ``csrc/engine.cpp`` and ``csrc/kernels_*.cpp``):

- SIMD popcount kernels specialised per code length (8/16/24/32/64/128/256 bits and
  the lengths that pad to them; 264..1024-bit codes register-tiled on AVX-512, eight
  codes by four queries per step over 64-byte words; one generic path for the rest),
  one translation unit per
  instruction set, chosen at run time: ``avx512`` (F/BW/VL/VPOPCNTDQ/BITALG/VBMI),
  ``avx2``, ``popcnt`` (scalar) and ``generic`` (portable). The level in use is
  :func:`simd_level`; ``HASHSEARCH_SIMD=<level>`` (read once, when the extension is
  imported) forces a lower one — an unknown or unsupported value gives a
  ``RuntimeWarning`` (and a warning on the ``hashsearch`` logger) and the best level is kept;
- exact k-NN by selection over the distance range 0..nbits, fused with the scan: a
  per-query distance threshold that drops to the k-th smallest distance (found by
  counting the hits per distance) as soon as k codes are below it (started from a
  sample for large k); hits kept as 32-bit (distance, position) keys and emitted at the
  end by one vector pass per distance value (no heap, no comparison sort); ties by
  ascending position;
- threads from a persistent pool with the GIL released: over queries for batches,
  over database slices (merged by distance, position) for a few queries. Results do
  not depend on the thread count or the SIMD level.

This module only allocates outputs and calls in; :class:`hashsearch.BinaryIndex`
has already validated the input (see :mod:`hashsearch.backends.base`).
"""

from __future__ import annotations

import numpy as np

from hashsearch.backends.base import Backend

__all__ = ["NativeBackend", "simd_level", "simd_levels"]

try:
    from hashsearch import _core

    _IMPORT_ERROR: str | None = None
except ImportError as exc:  # the extension is not built, or was built for another Python
    _core = None  # type: ignore[assignment]
    _IMPORT_ERROR = (
        f"the compiled extension hashsearch._core cannot be imported ({exc}); build it with "
        "`pip install -e . --no-build-isolation` (needs a C++17 compiler, CMake and pybind11)"
    )


def simd_level() -> str | None:
    """The SIMD path the compiled kernels take now.

    Returns:
        "avx512", "avx2", "popcnt" or "generic"; None when the extension is not built.
    """
    return None if _core is None else _core.simd_level()


def simd_levels() -> list[str]:
    """SIMD paths this CPU supports, best first (empty when the extension is not built).

    Returns:
        e.g. ``["avx512", "avx2", "popcnt", "generic"]``.
    """
    return [] if _core is None else list(_core.simd_levels())


class NativeBackend(Backend):
    """Exact kernels of the compiled core (SIMD, threads, GIL released).

    Args:
        num_threads: threads the kernels may use (>= 1); None for
            :func:`hashsearch.backends.base.default_num_threads`.
    """

    name = "native"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why the compiled core cannot be used here, or None when it can."""
        return _IMPORT_ERROR

    @property
    def simd_level(self) -> str | None:
        """The instruction-set path the kernels take ("avx512", "avx2", "popcnt", "generic")."""
        return simd_level()

    def knn(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest codes of each query.

        Args:
            codes: uint8 (n, nbytes) database, C-contiguous.
            queries: uint8 (nq, nbytes), C-contiguous.
            k: neighbours per query, >= 1.

        Returns:
            (distances int32 (nq, k), positions int64 (nq, k)), padded past min(k, n)
            with PAD_DISTANCE / PAD_POSITION.
        """
        nq = queries.shape[0]
        distances = np.empty((nq, k), dtype=np.int32)
        positions = np.empty((nq, k), dtype=np.int64)
        _core.knn(codes, queries, int(k), distances, positions, self.num_threads)
        return distances, positions

    def range_search(
        self, codes: np.ndarray, queries: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every code within distance <= radius (inclusive) of each query.

        Args:
            codes: uint8 (n, nbytes) database, C-contiguous.
            queries: uint8 (nq, nbytes), C-contiguous.
            radius: largest distance kept, >= 0.

        Returns:
            (lims int64 (nq + 1,), distances int32 (m,), positions int64 (m,)); query i's
            results are ``[lims[i]:lims[i + 1]]``, in ascending position order.
        """
        return _core.range_search(codes, queries, int(radius), self.num_threads)

    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Full distance matrix.

        Args:
            a: uint8 (na, nbytes), C-contiguous.
            b: uint8 (nb, nbytes), C-contiguous.

        Returns:
            int32 (na, nb), ``out[i, j] = popcount(a[i] ^ b[j])``.
        """
        out = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)
        _core.pairwise(a, b, out, self.num_threads)
        return out
