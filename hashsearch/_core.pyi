"""Type stub of the private compiled extension ``hashsearch._core`` (built from csrc/).

The extension exposes a few functions over C-contiguous NumPy arrays. It does no
policy: the Python layer validates dtypes, shapes, nbits, k and radius once
(hashsearch._validate, called by BinaryIndex and the functional searches),
hashsearch.backends.native allocates the outputs and calls in, and the index maps
database positions to ids. The core itself only guards cheap invariants (shape
agreement, contiguity, dtypes, codes of at most 65,536 bytes; Python's own limit,
65,536 bits, is stricter) and raises ValueError when they fail.

Conventions shared by every function:
- codes are packed bits, uint8, shape (n, nbytes), C-contiguous; nbytes >= 1 is
  taken from the arrays' second dimension and must agree between arguments;
- distances are Hamming distances (int32, 0..8*nbytes);
- results are *database positions* (int64, 0..n-1), ranked by distance ascending
  and, among equal distances, by position ascending;
- ``num_threads >= 1``; the GIL is released while kernels run.
"""

import numpy as np
import numpy.typing as npt

__version__: str

def build_info() -> dict[str, object]:
    """Build facts: {"cuda": bool (CUDA kernels compiled), "isa_kernels": [levels compiled], "compiler": str}."""

def simd_levels() -> list[str]:
    """SIMD levels this CPU supports, best first, e.g. ["avx512", "avx2", "popcnt", "generic"]."""

def simd_level() -> str:
    """The level the kernels use now (the best supported unless lowered)."""

def set_simd_level(level: str) -> None:
    """Use ``level`` (one of simd_levels(); ValueError otherwise) for later calls."""

def knn(
    codes: npt.NDArray[np.uint8],
    queries: npt.NDArray[np.uint8],
    k: int,
    distances: npt.NDArray[np.int32],
    positions: npt.NDArray[np.int64],
    num_threads: int,
) -> None:
    """Exact k nearest codes of every query.

    Args:
        codes: (n, nbytes) uint8 database, n >= 0.
        queries: (nq, nbytes) uint8.
        k: number of neighbours, k >= 1 (may exceed n).
        distances: (nq, k) int32 output.
        positions: (nq, k) int64 output; rows past min(k, n) are filled with
            position -1 and distance 2**31 - 1.
        num_threads: threads over queries (batches) or over database slices (nq < threads).
    """

def range_search(
    codes: npt.NDArray[np.uint8],
    queries: npt.NDArray[np.uint8],
    radius: int,
    num_threads: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """Every code within Hamming distance <= radius (inclusive) of each query.

    Returns:
        (lims, distances, positions): lims int64 (nq + 1,); the results of query i
        are distances[lims[i]:lims[i+1]] (int32) and positions[lims[i]:lims[i+1]]
        (int64), in ascending position order.
    """

def pairwise(
    a: npt.NDArray[np.uint8],
    b: npt.NDArray[np.uint8],
    out: npt.NDArray[np.int32],
    num_threads: int,
) -> None:
    """Full Hamming distance matrix: out[i, j] = popcount(a[i] ^ b[j]); out is (na, nb) int32."""

def mih_default_m(nbits: int, n: int) -> int:
    """Norouzi's number of substrings for n codes of nbits bits: substrings of about
    log2(n) - 4 bits, 16 at least and 32 at most (64-bit codes: 4 up to ~1M codes, 3 up
    to ~45M, 2 beyond)."""

class MultiIndex:
    """Exact multi-index hashing tables (csrc/mih.cpp) over codes the caller keeps.

    The tables hold database positions only: every call takes ``codes``, the whole
    database (ntotal, nbytes) uint8 in position order. Rows added in small numbers wait
    in a tail (rows ``indexed..ntotal``) that searches scan, until ``pending_limit`` of
    them are there (or ``flush``). Searches are exact (equal to ``knn``/``range_search``
    above, ties by position); ``policy`` picks the path: ``"auto"`` (tables unless the
    cost model says the flat scan is cheaper, per query), ``"mih"`` (always the tables),
    ``"flat"`` (always the flat kernel). Each search returns its stats: ``{"queries",
    "queries_mih", "queries_flat", "fallback_predicted", "lookups", "hits",
    "candidates", "max_radius", "reason", "path"}`` with path ``"mih"``, ``"flat"``,
    ``"mixed"`` or ``"none"`` and reason ``""``, ``"policy"``, ``"k"``, ``"radius"``
    (decided before probing) or ``"cost"`` (queries that gave up while probing).
    """

    def __init__(self, nbits: int, m: int) -> None:
        """nbits: multiple of 8; m: substrings, ceil(nbits / 64) <= m <= nbits (ValueError otherwise).

        Substrings of up to 32 bits are the fast case (mih_default_m never goes beyond).
        """
    @property
    def nbits(self) -> int: ...
    @property
    def m(self) -> int: ...
    @property
    def ntotal(self) -> int:
        """Rows known (the last ``add``'s codes)."""
    @property
    def indexed(self) -> int:
        """Rows in the tables (the rest are scanned)."""
    @property
    def pending_limit(self) -> int:
        """Tail rows at which ``add`` merges them into the tables."""
    @property
    def memory_bytes(self) -> int: ...
    def tables(self) -> list[dict[str, object]]:
        """Per substring: {"offset", "bits", "kind" ("dense"/"sparse"), "buckets", "nonempty", "memory_bytes"}."""
    def add(self, codes: npt.NDArray[np.uint8], num_threads: int) -> None:
        """codes: every row (n >= ntotal); rows ntotal..n are the new ones (at most 2**32 - 2 rows)."""
    def flush(self, codes: npt.NDArray[np.uint8], num_threads: int) -> None:
        """Merge the tail into the tables; codes: (ntotal, nbytes)."""
    def remove(self, keep: npt.NDArray[np.uint8], num_threads: int) -> None:
        """keep: (ntotal,) uint8, nonzero keeps a row; survivors keep their order."""
    def knn(
        self,
        codes: npt.NDArray[np.uint8],
        queries: npt.NDArray[np.uint8],
        k: int,
        distances: npt.NDArray[np.int32],
        positions: npt.NDArray[np.int64],
        num_threads: int,
        policy: str = "auto",
    ) -> dict[str, object]:
        """Exact k nearest of every query into distances / positions (nq, k), as ``knn``; returns the stats."""
    def range_search(
        self,
        codes: npt.NDArray[np.uint8],
        queries: npt.NDArray[np.uint8],
        radius: int,
        num_threads: int,
        policy: str = "auto",
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64], dict[str, object]]:
        """Every code within distance <= radius, as ``range_search``, plus the stats."""

def roofline(
    queries: npt.NDArray[np.uint8],
    codes: npt.NDArray[np.uint8],
    num_threads: int,
) -> int:
    """The popcount roofline of a search, for benchmarks.

    The sum of popcount(q ^ c) over all (query, code) pairs, computed by XOR and
    POPCNT alone over the same bytes a k-NN scan reads (queries repeated along the
    database, 4 sharing each load, 32 KB blocks): no per-pair distance, threshold or
    selection. Its time over a search's time is how close the search comes to this
    CPU's popcount throughput. Code lengths that neither divide nor are a multiple of
    64 bytes (and lower SIMD levels) take a scalar loop.

    Args:
        queries: (nq, nbytes) uint8.
        codes: (n, nbytes) uint8.
        num_threads: threads over query chunks.

    Returns:
        The total Hamming distance of all nq * n pairs.
    """
