"""Stateless searches over packed-code arrays, and merging of partial top-k results.

These are what :class:`hashsearch.BinaryIndex`, the out-of-core store search and
the distributed search are built from: validate once, call a backend, map
positions. ``merge_topk`` combines the top-k lists of consecutive database parts
so that the result equals a search over the whole database, tie rule included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hashsearch._validate import as_codes, check_k, check_nbits, check_radius
from hashsearch.backends import PAD_DISTANCE, PAD_POSITION, Backend, make_backend

__all__ = ["knn_search", "range_search", "hamming_distances", "merge_topk", "offset_positions"]


def _nbits_of(codes: Any, nbits: int | None) -> int:
    if nbits is not None:
        return check_nbits(nbits)
    arr = np.asarray(codes)
    if arr.ndim < 1 or arr.shape[-1] == 0:
        raise ValueError(f"codes must have shape (n, nbytes) with nbytes >= 1, got {arr.shape}")
    return check_nbits(arr.shape[-1] * 8)


def knn_search(
    codes: Any,
    queries: Any,
    k: int,
    *,
    nbits: int | None = None,
    backend: str | Backend | None = "auto",
    num_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest codes by Hamming distance, over a bare array of codes.

    Args:
        codes: uint8 (n, nbytes) database.
        queries: uint8 (nq, nbytes) or (nbytes,).
        k: neighbours per query, >= 1.
        nbits: code length; default ``8 * nbytes`` of ``codes``.
        backend: backend name, "auto" or instance.
        num_threads: kernel threads (None: the backend's default).

    Returns:
        (D int32 (nq, k), I int64 (nq, k)): distances ascending, ties by ascending
        position; ``I`` holds database *positions*; rows past min(k, n) are
        padded with -1 and ``PAD_DISTANCE`` (2**31 - 1).
    """
    nbits = _nbits_of(codes, nbits)
    db = as_codes(codes, nbits, "codes", allow_1d=False)
    q = as_codes(queries, nbits, "queries")
    k = check_k(k, db.shape[0], q.shape[0])
    return make_backend(backend, num_threads).knn(db, q, k)


def range_search(
    codes: Any,
    queries: Any,
    radius: int,
    *,
    nbits: int | None = None,
    backend: str | Backend | None = "auto",
    num_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every code within Hamming distance ``<= radius`` (inclusive) of each query.

    Returns:
        (lims int64 (nq + 1,), D int32 (m,), I int64 (m,) positions), FAISS layout.
    """
    nbits = _nbits_of(codes, nbits)
    db = as_codes(codes, nbits, "codes", allow_1d=False)
    q = as_codes(queries, nbits, "queries")
    radius = check_radius(radius, nbits)
    return make_backend(backend, num_threads).range_search(db, q, radius)


def hamming_distances(
    a: Any,
    b: Any,
    *,
    nbits: int | None = None,
    backend: str | Backend | None = "auto",
    num_threads: int | None = None,
) -> np.ndarray:
    """Full Hamming distance matrix between two sets of packed codes.

    Args:
        a: uint8 (na, nbytes) or (nbytes,).
        b: uint8 (nb, nbytes) or (nbytes,).

    Returns:
        int32 (na, nb). Memory grows as na * nb: use ``knn_search`` for large inputs.
    """
    nbits = _nbits_of(a, nbits)
    return make_backend(backend, num_threads).distances(as_codes(a, nbits, "a"), as_codes(b, nbits, "b"))


def offset_positions(positions: np.ndarray, offset: int) -> np.ndarray:
    """Shift positions found in a database part starting at ``offset``, keeping -1 pads."""
    out = positions + offset
    out[positions < 0] = PAD_POSITION
    return out


def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge the top-k lists of consecutive database parts into one top-k list.

    Args:
        parts: ``(D int32 (nq, k_i), I int64 (nq, k_i))`` per part, **in database
            order** (part j's codes all come after part j-1's), each sorted by
            distance then position. ``I`` may hold positions or ids.
        k: neighbours to keep, >= 1.

    Returns:
        (D int32 (nq, k), I int64 (nq, k)), padded with PAD_DISTANCE / -1. Because
        parts are concatenated in database order and sorted stably by distance,
        equal distances keep ascending database order: the same result as one
        search over all parts.
    """
    k = check_k(k)
    if not parts:
        raise ValueError("merge_topk needs at least one part")
    nq = parts[0][0].shape[0]
    dist = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    if dist.shape[1] < k:
        pad = k - dist.shape[1]
        dist = np.concatenate([dist, np.full((nq, pad), PAD_DISTANCE, np.int32)], axis=1)
        ids = np.concatenate([ids, np.full((nq, pad), PAD_POSITION, np.int64)], axis=1)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return (
        np.take_along_axis(dist, order, axis=1).astype(np.int32, copy=False),
        np.take_along_axis(ids, order, axis=1).astype(np.int64, copy=False),
    )
