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
