"""Seeded synthetic codes for tests, benchmarks and the engine demo.

Every generator takes a ``seed`` and returns the same codes for the same
arguments on every machine (NumPy's PCG64 ``default_rng``).
"""

from __future__ import annotations

import numpy as np

from hashsearch._validate import check_int, check_nbits

__all__ = ["random_codes", "clustered_codes", "tied_codes"]


def _check_n(n: int) -> int:
    return check_int(n, "n", 0)


def random_codes(n: int, nbits: int, seed: int = 0, *, chunk: int = 1 << 22) -> np.ndarray:
    """Uniformly random packed codes.

    Args:
        n: number of codes.
        nbits: bits per code (positive multiple of 8).
        seed: RNG seed.
        chunk: codes generated per step (bounds the temporary memory).

    Returns:
        uint8 (n, nbits // 8).
    """
    n, nbits = _check_n(n), check_nbits(nbits)
    rng = np.random.default_rng(seed)
    out = np.empty((n, nbits // 8), dtype=np.uint8)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        out[start:stop] = rng.integers(0, 256, size=(stop - start, nbits // 8), dtype=np.uint8)
    return out


def clustered_codes(
    n: int, nbits: int, n_clusters: int, flip_prob: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Codes scattered around random cluster centres, with their cluster labels.

    Each code copies its centre and flips every bit independently with
    probability ``flip_prob``, so codes of one cluster are near each other in
    Hamming distance — a stand-in for the codes of one land-cover class.

    Returns:
        (codes uint8 (n, nbits // 8), labels int64 (n,) in 0..n_clusters-1).
    """
    n, nbits = _check_n(n), check_nbits(nbits)
    check_int(n_clusters, "n_clusters")
    if not 0.0 <= flip_prob <= 1.0:
        raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2, size=(n_clusters, nbits), dtype=np.uint8)
    labels = rng.integers(0, n_clusters, size=n)
    bits = centres[labels] ^ (rng.random((n, nbits)) < flip_prob).astype(np.uint8)
    return np.packbits(bits, axis=1, bitorder="little"), labels.astype(np.int64)


def tied_codes(n: int, nbits: int, n_unique: int, seed: int = 0) -> np.ndarray:
    """Codes drawn (with repetition) from only ``n_unique`` distinct codes: many exact ties.

    Returns:
        uint8 (n, nbits // 8).
    """
    n, nbits = _check_n(n), check_nbits(nbits)
    check_int(n_unique, "n_unique")
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, size=(n_unique, nbits // 8), dtype=np.uint8)
    return pool[rng.integers(0, n_unique, size=n)]
