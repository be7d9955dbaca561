"""The NumPy reference backend: plain, obviously correct, used to check the others.

Distances are ``np.bitwise_count`` over XOR-ed bytes, summed per code; top-k
uses a unique key ``distance * n + position`` so that ``np.partition`` followed
by a sort gives exactly the documented order (distance, then position). Work is
done in blocks so memory stays bounded (about :data:`BLOCK_BYTES` of temporaries).
It is single-threaded and slow; it exists for tests and as a last fallback.
"""

from __future__ import annotations

import numpy as np

from hashsearch.backends.base import PAD_DISTANCE, PAD_POSITION, Backend

__all__ = ["NumpyBackend", "hamming_matrix"]

#: Rough size of the temporaries one block of work allocates.
BLOCK_BYTES = 64 << 20


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between every row of ``a`` and every row of ``b``.

    Args:
        a: uint8 (na, nbytes).
        b: uint8 (nb, nbytes).

    Returns:
        int32 (na, nb).
    """
    na, nbytes = a.shape
    nb = b.shape[0]
    out = np.empty((na, nb), dtype=np.int32)
    if na == 0 or nb == 0:
        return out
    rows = max(1, BLOCK_BYTES // max(1, nb * nbytes))
    for start in range(0, na, rows):
        block = a[start : start + rows]
        xor = np.bitwise_xor(block[:, None, :], b[None, :, :])
        out[start : start + rows] = np.bitwise_count(xor).sum(axis=2, dtype=np.int32)
    return out


class NumpyBackend(Backend):
    """Reference kernels in NumPy (exact, single-threaded; ``num_threads`` is ignored)."""

    name = "numpy"

    def knn(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n, nq = codes.shape[0], queries.shape[0]
        distances = np.full((nq, k), PAD_DISTANCE, dtype=np.int32)
        positions = np.full((nq, k), PAD_POSITION, dtype=np.int64)
        kk = min(k, n)
        if kk == 0 or nq == 0:
            return distances, positions
        rows = max(1, BLOCK_BYTES // max(1, n * max(codes.shape[1], 8)))
        order = np.arange(n, dtype=np.int64)
        for start in range(0, nq, rows):
            d = hamming_matrix(queries[start : start + rows], codes)
            keys = d.astype(np.int64) * n + order
            if kk < n:
                keys = np.partition(keys, kk - 1, axis=1)[:, :kk]
            keys.sort(axis=1)
            distances[start : start + rows, :kk] = keys // n
            positions[start : start + rows, :kk] = keys % n
        return distances, positions

    def range_search(
        self, codes: np.ndarray, queries: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, nq = codes.shape[0], queries.shape[0]
        lims = np.zeros(nq + 1, dtype=np.int64)
        dist_parts: list[np.ndarray] = []
        pos_parts: list[np.ndarray] = []
        rows = max(1, BLOCK_BYTES // max(1, n * max(codes.shape[1], 8)))
        for start in range(0, nq, rows):
            d = hamming_matrix(queries[start : start + rows], codes)
            for i, row in enumerate(d):
                (hits,) = np.nonzero(row <= radius)
                lims[start + i + 1] = hits.size
                pos_parts.append(hits.astype(np.int64))
                dist_parts.append(row[hits])
        np.cumsum(lims, out=lims)
        dist = np.concatenate(dist_parts).astype(np.int32, copy=False) if dist_parts else np.empty(0, np.int32)
        pos = np.concatenate(pos_parts) if pos_parts else np.empty(0, np.int64)
        return lims, dist, pos

    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return hamming_matrix(a, b)
