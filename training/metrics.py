"""Mean average precision of Hamming ranking, for training experiments and tests.

The ranking rule is the engine's (SPEC §2): database items sorted by Hamming
distance ascending, ties broken by ascending database position. Relevant means
the same label. AP of one query (eq. 10) averages precision@r over the ranks r
of its relevant items within the first ``top_k`` (all by default); a query with no
relevant item in that window scores 0 and still counts in the mean (the
convention of DCMH's ``calc_map``).

The ranking is the engine's own: :func:`hashsearch.knn_search` with k = ``top_k``
(the whole database by default), on any backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hashsearch._validate import check_int

__all__ = ["average_precisions", "mean_average_precision"]


def _labels(name: str, labels: Any, n: int) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must be integer class labels, got dtype {arr.dtype}")
    return arr


def average_precisions(
    query_codes: Any,
    query_labels: Any,
    db_codes: Any,
    db_labels: Any,
    *,
    top_k: int | None = None,
    backend: str = "auto",
    chunk: int = 256,
) -> np.ndarray:
    """AP of every query (see the module docstring).

    Args:
        query_codes: packed uint8 (nq, l/8).
        query_labels: int (nq,).
        db_codes: packed uint8 (n, l/8).
        db_labels: int (n,).
        top_k: rank cut-off (MAP@k); None for the whole database.
        backend: engine backend that ranks ("auto", "numpy", "numba", ...).
        chunk: queries ranked per step (bounds memory to chunk × n).

    Returns:
        float64 (nq,).
    """
    from hashsearch import knn_search

    q = np.asarray(query_codes)
    db = np.asarray(db_codes)
    if q.ndim != 2 or db.ndim != 2 or q.shape[1] != db.shape[1]:
        raise ValueError(f"codes must be (nq, nbytes) and (n, nbytes) with equal nbytes, got {q.shape} and {db.shape}")
    ql = _labels("query_labels", query_labels, q.shape[0])
    dl = _labels("db_labels", db_labels, db.shape[0])
    n = db.shape[0]
    k = min(n, n if top_k is None else check_int(top_k, "top_k"))
    out = np.zeros(q.shape[0], dtype=np.float64)
    ranks = np.arange(1, k + 1, dtype=np.float64)
    for start in range(0, q.shape[0], chunk):
        stop = min(q.shape[0], start + chunk)
        _, order = knn_search(db, q[start:stop], k, backend=backend)  # positions, ties ascending
        rel = dl[order] == ql[start:stop, None]
        hits = np.cumsum(rel, axis=1)
        nrel = hits[:, -1]
        prec_sum = (hits / ranks * rel).sum(axis=1)
        out[start:stop] = np.where(nrel > 0, prec_sum / np.maximum(nrel, 1), 0.0)
    return out


def mean_average_precision(
    query_codes: Any,
    query_labels: Any,
    db_codes: Any,
    db_labels: Any,
    *,
    top_k: int | None = None,
    backend: str = "auto",
) -> float:
    """MAP of Hamming ranking (distance ascending, ties by database position).

    Args:
        query_codes: packed uint8 (nq, l/8) (e.g. PAN test codes).
        query_labels: int (nq,).
        db_codes: packed uint8 (n, l/8) (e.g. MS training codes).
        db_labels: int (n,).
        top_k: MAP@k cut-off; None for the full ranking (the paper's MAP).
        backend: engine backend that ranks.

    Returns:
        MAP in [0, 1].

    Example:
        >>> import numpy as np
        >>> codes = np.array([[0b00000000], [0b00000011], [0b11111111]], dtype=np.uint8)
        >>> mean_average_precision(codes[:1], [0], codes, [0, 1, 0], backend="numpy")
        0.8333333333333333
    """
    ap = average_precisions(query_codes, query_labels, db_codes, db_labels, top_k=top_k, backend=backend)
    return float(ap.mean()) if ap.size else 0.0
