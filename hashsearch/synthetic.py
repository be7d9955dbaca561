"""Seeded synthetic codes for tests, benchmarks and the engine demo.

Every generator takes a ``seed`` and returns the same codes for the same
arguments on every machine (NumPy's PCG64 ``default_rng``).
"""

from __future__ import annotations

import numpy as np

from hashsearch._validate import check_int, check_nbits

__all__ = ["bounded_clusters", "clustered_codes", "flip_random_bits", "random_codes", "tied_codes"]


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


def flip_random_bits(codes: np.ndarray, max_flips: int, seed: int = 0, *, chunk: int = 1 << 22) -> np.ndarray:
    """Copies of packed codes, each with between 0 and ``max_flips`` of its bits flipped.

    Every row draws ``max_flips`` bit indices and a count c uniform in 0..max_flips, and
    flips the first c indices (an index drawn twice cancels out), so each copy lies
    within ``max_flips`` bits of its original, usually at the full distance.

    Args:
        codes: uint8 (n, nbytes).
        max_flips: most bits flipped per row, >= 0.
        seed: RNG seed.
        chunk: rows per step (bounds the temporary memory).

    Returns:
        uint8 (n, nbytes), a new array.
    """
    check_int(max_flips, "max_flips", 0)
    codes = np.asarray(codes)
    if codes.dtype != np.uint8 or codes.ndim != 2:
        raise TypeError(f"codes must be uint8 of shape (n, nbytes), got {codes.dtype} {codes.shape}")
    nbits = codes.shape[1] * 8
    rng = np.random.default_rng(seed)
    out = codes.copy()
    for start in range(0, out.shape[0], chunk):
        rows = out[start : start + chunk]
        m = rows.shape[0]
        idx = rng.integers(0, nbits, size=(m, max_flips))
        count = rng.integers(0, max_flips + 1, size=m)
        for j in range(max_flips):
            sel = np.nonzero(count > j)[0]
            rows[sel, idx[sel, j] // 8] ^= (1 << (idx[sel, j] % 8)).astype(np.uint8)
    return out


def bounded_clusters(
    n: int, nbits: int, cluster_size: int = 16, radius: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clusters of ``cluster_size`` codes, every code within ``radius`` bits of its centre.

    The shape trained hashing codes take (and the one issue 9's multi-index hashing bar
    names: clusters of at least 10 codes within 4 bits of their centre). Codes are
    their centre with 0..radius bits flipped (:func:`flip_random_bits`), stored in a
    random order; the last cluster is smaller when ``cluster_size`` does not divide n.

    Returns:
        (codes uint8 (n, nbits // 8), labels int64 (n,) cluster of each code,
        centres uint8 (ceil(n / cluster_size), nbits // 8)).
    """
    n, nbits = _check_n(n), check_nbits(nbits)
    check_int(cluster_size, "cluster_size", 1)
    check_int(radius, "radius", 0)
    rng = np.random.default_rng(seed)
    n_clusters = -(-n // cluster_size)
    centres = rng.integers(0, 256, size=(n_clusters, nbits // 8), dtype=np.uint8)
    labels = rng.permutation(n) // cluster_size
    codes = flip_random_bits(centres[labels], radius, seed=int(rng.integers(2**63)))
    return codes, labels.astype(np.int64), centres


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
