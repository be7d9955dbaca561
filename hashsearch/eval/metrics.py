"""Retrieval metrics of Hamming ranking (and of real-valued features), in one pass.

What this module owns: the definitions of every number ``hashsearch eval``
reports, and the one pass that computes them. It imports NumPy, tqdm and the
engine (:func:`hashsearch.knn_search`); never torch.

**Ranking.** For each query the engine ranks the whole database by Hamming
distance ascending, ties broken by ascending database position (SPEC §2):
:func:`hashsearch.knn_search` with ``k = n``. Queries are processed in blocks so
that memory stays bounded (about ``block_bytes``, whatever the number of
queries). Relevant means ``query_key == db_key``: the class label for class
retrieval, a pair id for instance matching.

**Per-query statistics** (:class:`RankingStats`), from which every metric follows:

- ``ap``: average precision of eq. 10 of the paper over the full ranking:
  ``AP = (1 / n_rel) * sum_j precision@r_j`` over the ranks r_j of the relevant
  items. A query with no relevant item scores 0 and still counts in the mean (the
  convention of DCMH's ``calc_map`` and of :mod:`hashsearch.training.metrics`).
- ``hist_total[d]``, ``hist_relevant[d]``: how many database items, and how many
  relevant ones, lie at Hamming distance d = 0..nbits. A tie group is one distance.
- ``hits_at_k``, ``ap_at_k`` for the cut-offs ``ks``; ``hits_at_rank`` on a rank grid;
  ``first_rank``: rank (1-based) of the first relevant item, 0 when there is none.

**Tie-aware AP** (:meth:`RankingStats.average_precisions_tie_aware`): the expected
AP when the items of each tie group are put in uniformly random order (McSherry
& Najork, ECIR 2008), in closed form. For a group of t items, m of them relevant,
after b items of which c are relevant, a relevant item at position j of the group
has rank b + j and, in expectation, ``c + 1 + (j - 1)(m - 1)/(t - 1)`` relevant
items at or before it; summing over j with ``H`` the harmonic numbers::

    group's share of sum_j precision@r_j
        = m * [B + (c + 1 - B (b + 1)) * (H(b + t) - H(b)) / t],   B = (m - 1)/(t - 1)  (0 when t = 1)

Hashing codes tie a lot (32 bits give 33 distances for 75,000 items), so the
position rule can move AP by a few points; the tie-aware value does not depend on
the order of the database.

**Derived metrics**: MAP, tie-aware MAP, MAP@k (``(1 / hits@k) * sum`` of
precision@r over the relevant ranks r <= k, 0 when nothing relevant is in the top
k: the training code's ``top_k`` rule), precision@k, recall@k (``hits@k / n_rel``;
for instance matching, with one relevant item, the fraction of queries whose pair
is in the top k), mean reciprocal rank, precision and recall within Hamming radius
r (every item at distance <= r is retrieved; a query that retrieves nothing has
precision 0), and precision-recall curves by radius and by rank, all
macro-averaged over queries. Tie-aware precision@k, recall@k and MRR are
expectations over the same random orders within groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hashsearch._validate import as_codes, check_int, check_nbits

__all__ = [
    "RankingStats",
    "average_precisions",
    "feature_ranking_stats",
    "harmonic_numbers",
    "mean_average_precision",
    "query_block_size",
    "ranking_stats",
    "tie_aware_average_precisions",
]

#: Default memory budget of one block of queries (the ranking and its temporaries).
DEFAULT_BLOCK_BYTES = 256 * 2**20
#: Bytes per (query, database item) a block needs: distances int32, positions int64,
#: relevance bool, running hits int32, a sort key int32, slack.
_BYTES_PER_ENTRY = 24


def harmonic_numbers(n: int) -> np.ndarray:
    """float64 (n + 1,): ``H[i] = 1 + 1/2 + ... + 1/i`` (``H[0] = 0``)."""
    out = np.zeros(n + 1, dtype=np.float64)
    np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64), out=out[1:])
    return out


def query_block_size(n_db: int, block_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Queries ranked per block so that one block needs about ``block_bytes``."""
    return max(1, int(block_bytes) // (_BYTES_PER_ENTRY * max(1, n_db)))


def _keys(name: str, keys: Any, n: int) -> np.ndarray:
    arr = np.asarray(keys)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must be integer labels or ids, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    return arr.astype(np.int64, copy=False)


def _rank_grid(n: int, points: int) -> np.ndarray:
    """About ``points`` ranks from 1 to n, geometric (dense at the top of the ranking), n included."""
    grid = np.unique(np.round(np.geomspace(1, n, num=max(2, points))).astype(np.int64))
    return grid[(grid >= 1) & (grid <= n)]


@dataclass
class RankingStats:
    """Per-query statistics of one ranking of a database (see the module docstring).

    Attributes:
        n_db: database size n.
        nbits: code length (None for a feature ranking: no distance histogram).
        n_relevant: int64 (nq,) relevant items per query.
        ap: float64 (nq,) eq. 10 AP, ties by database position.
        ks: the cut-offs of ``hits_at_k`` / ``ap_at_k`` (clipped to n).
        hits_at_k: int64 (nq, len(ks)) relevant items in the top k.
        ap_at_k: float64 (nq, len(ks)) AP@k.
        rank_grid: int64 (g,) ranks of ``hits_at_rank``.
        hits_at_rank: int64 (nq, g) relevant items in the top r for r in ``rank_grid``.
        first_rank: int64 (nq,) rank of the first relevant item (1-based), 0 if none.
        hist_total: int64 (nq, nbits + 1) items at each Hamming distance (None for features).
        hist_relevant: int64 (nq, nbits + 1) relevant items at each distance (None for features).
    """

    n_db: int
    nbits: int | None
    n_relevant: np.ndarray
    ap: np.ndarray
    ks: tuple[int, ...]
    hits_at_k: np.ndarray
    ap_at_k: np.ndarray
    rank_grid: np.ndarray
    hits_at_rank: np.ndarray
    first_rank: np.ndarray
    hist_total: np.ndarray | None = None
    hist_relevant: np.ndarray | None = None

    @property
    def num_queries(self) -> int:
        return int(self.ap.shape[0])

    # ------------------------------------------------------------ helpers
    def _k_index(self, k: int) -> int:
        k = min(check_int(k, "k"), self.n_db)
        if k not in self.ks:
            raise KeyError(f"k={k} was not computed; ranking_stats(..., ks=...) had {self.ks}")
        return self.ks.index(k)

    def _need_hist(self) -> tuple[np.ndarray, np.ndarray]:
        if self.hist_total is None or self.hist_relevant is None:
            raise ValueError("distance histograms exist only for Hamming rankings (not for feature rankings)")
        return self.hist_total, self.hist_relevant

    @staticmethod
    def _mean(x: np.ndarray) -> float:
        return float(x.mean()) if x.size else 0.0

    # ------------------------------------------------------------ MAP
    def mean_average_precision(self) -> float:
        """MAP, eq. 10, ties by database position."""
        return self._mean(self.ap)

    def average_precisions_tie_aware(self) -> np.ndarray:
        """float64 (nq,): expected AP over random orders within each tie group (closed form)."""
        t, m = self._need_hist()
        t = t.astype(np.float64)
        m = m.astype(np.float64)
        before = np.cumsum(t, axis=1) - t  # b: items ranked before the group
        rel_before = np.cumsum(m, axis=1) - m  # c: relevant items before the group
        h = harmonic_numbers(self.n_db)
        b_idx = before.astype(np.int64)
        harm = h[b_idx + t.astype(np.int64)] - h[b_idx]  # H(b + t) - H(b)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(t > 1, (m - 1) / np.maximum(t - 1, 1), 0.0)  # B
            share = m * (slope + (rel_before + 1 - slope * (before + 1)) * harm / np.maximum(t, 1))
        share = np.where(m > 0, share, 0.0)
        total = m.sum(axis=1)
        return np.where(total > 0, share.sum(axis=1) / np.maximum(total, 1), 0.0)

    def mean_average_precision_tie_aware(self) -> float:
        """Tie-aware MAP: the mean of :meth:`average_precisions_tie_aware`."""
        return self._mean(self.average_precisions_tie_aware())

    def map_at(self, k: int) -> float:
        """MAP@k (see the module docstring), ties by position."""
        return self._mean(self.ap_at_k[:, self._k_index(k)])

    # ------------------------------------------------------------ top-k
    def precision_at(self, k: int) -> float:
        """Mean precision@k, ties by position (k clipped to the database size)."""
        i = self._k_index(k)
        return self._mean(self.hits_at_k[:, i] / self.ks[i])

    def recall_at(self, k: int) -> float:
        """Mean recall@k = hits@k / n_rel (0 for a query without relevant items), ties by position."""
        i = self._k_index(k)
        return self._mean(np.where(self.n_relevant > 0, self.hits_at_k[:, i] / np.maximum(self.n_relevant, 1), 0.0))

    def expected_hits_at(self, k: int) -> np.ndarray:
        """float64 (nq,): expected relevant items in the top k over random orders within tie groups."""
        t, m = self._need_hist()
        k = min(check_int(k, "k"), self.n_db)
        cum_t = np.cumsum(t, axis=1)
        cum_m = np.cumsum(m, axis=1)
        g = (cum_t < k).sum(axis=1)  # the group holding rank k (cum_t[g] >= k, cum_t[g-1] < k)
        g = np.minimum(g, t.shape[1] - 1)
        rows = np.arange(t.shape[0])
        b = cum_t[rows, g] - t[rows, g]
        c = cum_m[rows, g] - m[rows, g]
        inside = np.clip(k - b, 0, t[rows, g])
        return c + m[rows, g] * np.where(t[rows, g] > 0, inside / np.maximum(t[rows, g], 1), 0.0)

    def precision_at_tie_aware(self, k: int) -> float:
        """Expected precision@k over random orders within tie groups."""
        k = min(check_int(k, "k"), self.n_db)
        return self._mean(self.expected_hits_at(k) / k)

    def recall_at_tie_aware(self, k: int) -> float:
        """Expected recall@k over random orders within tie groups."""
        hits = self.expected_hits_at(k)
        return self._mean(np.where(self.n_relevant > 0, hits / np.maximum(self.n_relevant, 1), 0.0))

    def mean_reciprocal_rank(self) -> float:
        """Mean of 1 / rank of the first relevant item (0 when a query has none), ties by position."""
        return self._mean(np.where(self.first_rank > 0, 1.0 / np.maximum(self.first_rank, 1), 0.0))

    def mean_reciprocal_rank_tie_aware(self) -> float:
        """Expected MRR over random orders within tie groups (exact).

        In the first group holding a relevant item (t items, m relevant, after b
        items), the first relevant item sits at position J with
        ``P(J = j) = C(t - j, m - 1) / C(t, m)``; for m = 1 this is uniform and
        ``E[1 / (b + J)] = (H(b + t) - H(b)) / t``.
        """
        t_all, m_all = self._need_hist()
        h = harmonic_numbers(self.n_db)
        logf = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, self.n_db + 1, dtype=np.float64)))])
        out = np.zeros(t_all.shape[0])
        has = m_all.sum(axis=1) > 0
        g = np.argmax(m_all > 0, axis=1)
        rows = np.arange(t_all.shape[0])
        t = t_all[rows, g]
        m = m_all[rows, g]
        b = np.cumsum(t_all, axis=1)[rows, g] - t
        single = has & (m == 1)
        out[single] = (h[b[single] + t[single]] - h[b[single]]) / t[single]
        for i in np.flatnonzero(has & (m > 1)):  # several relevant items tie first: sum over J
            ti, mi, bi = int(t[i]), int(m[i]), int(b[i])
            j = np.arange(1, ti - mi + 2)
            logp = (logf[ti - j] - logf[mi - 1] - logf[ti - j - mi + 1]) - (logf[ti] - logf[mi] - logf[ti - mi])
            out[i] = float(np.sum(np.exp(logp) / (bi + j)))
        return self._mean(out)

    # ------------------------------------------------------------ radius
    def radius_curves(self) -> dict[str, np.ndarray]:
        """Precision, recall and retrieval within Hamming radius r = 0..nbits.

        Returns:
            ``{"radius": int (nbits+1,), "precision", "recall", "retrieved_fraction",
            "mean_retrieved"}`` (float64 (nbits+1,) each): mean precision (0 for a
            query that retrieves nothing), mean recall, the fraction of queries that
            retrieve at least one item, and the mean number of items retrieved.
        """
        t, m = self._need_hist()
        cum_t = np.cumsum(t, axis=1).astype(np.float64)
        cum_m = np.cumsum(m, axis=1).astype(np.float64)
        nrel = self.n_relevant[:, None].astype(np.float64)
        precision = np.where(cum_t > 0, cum_m / np.maximum(cum_t, 1), 0.0)
        recall = np.where(nrel > 0, cum_m / np.maximum(nrel, 1), 0.0)
        return {
            "radius": np.arange(t.shape[1]),
            "precision": precision.mean(axis=0) if t.shape[0] else np.zeros(t.shape[1]),
            "recall": recall.mean(axis=0) if t.shape[0] else np.zeros(t.shape[1]),
            "retrieved_fraction": (cum_t > 0).mean(axis=0) if t.shape[0] else np.zeros(t.shape[1]),
            "mean_retrieved": cum_t.mean(axis=0) if t.shape[0] else np.zeros(t.shape[1]),
        }

    def rank_curves(self) -> dict[str, np.ndarray]:
        """Precision-recall by rank: ``{"rank": int (g,), "precision", "recall"}`` at ``rank_grid``."""
        ranks = self.rank_grid.astype(np.float64)
        nrel = self.n_relevant[:, None].astype(np.float64)
        precision = self.hits_at_rank / ranks[None, :]
        recall = np.where(nrel > 0, self.hits_at_rank / np.maximum(nrel, 1), 0.0)
        empty = np.zeros(ranks.size)
        return {
            "rank": self.rank_grid.copy(),
            "precision": precision.mean(axis=0) if self.num_queries else empty,
            "recall": recall.mean(axis=0) if self.num_queries else empty,
        }


# ---------------------------------------------------------------- the one pass
def _block_stats(rel: np.ndarray, ks: tuple[int, ...], grid: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of one block from its relevance matrix in rank order, bool (b, n)."""
    b, n = rel.shape
    hits = np.cumsum(rel, axis=1, dtype=np.int32)  # relevant items in the top r, r = 1..n
    nrel = hits[:, -1].astype(np.int64) if n else np.zeros(b, np.int64)
    rows, cols = np.nonzero(rel)
    prec = hits[rows, cols] / (cols + 1.0)  # precision at each relevant rank
    ap = np.bincount(rows, weights=prec, minlength=b) / np.maximum(nrel, 1)
    hits_k = np.stack([hits[:, k - 1] for k in ks], axis=1).astype(np.int64)
    ap_k = np.empty((b, len(ks)))
    for i, k in enumerate(ks):
        sel = cols < k
        ap_k[:, i] = np.bincount(rows[sel], weights=prec[sel], minlength=b) / np.maximum(hits_k[:, i], 1)
    first = np.where(nrel > 0, np.argmax(rel, axis=1) + 1, 0).astype(np.int64)
    return {"n_relevant": nrel, "ap": ap, "hits_at_k": hits_k, "ap_at_k": ap_k,
            "hits_at_rank": hits[:, grid - 1].astype(np.int64), "first_rank": first}


def _histograms(dist: np.ndarray, rel: np.ndarray, nbits: int) -> tuple[np.ndarray, np.ndarray]:
    """Items and relevant items per distance from sorted distances int32 (b, n)."""
    b = dist.shape[0]
    width = nbits + 1
    # Rows are sorted ascending and each row is offset past the previous one, so the keys
    # are sorted over the whole block: counts come from one searchsorted, no bincount temp.
    key = dist + (np.arange(b, dtype=np.int32) * width)[:, None]
    edges = np.searchsorted(key.ravel(), np.arange(b * width + 1, dtype=np.int32), side="left")
    total = np.diff(edges).reshape(b, width).astype(np.int64)
    relevant = np.bincount(key[rel], minlength=b * width).reshape(b, width).astype(np.int64)
    return total, relevant


def _concat(parts: list[dict[str, np.ndarray]], key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.concatenate([p[key] for p in parts]) if parts else np.zeros(shape, dtype)


def _prepare(n: int, ks: Sequence[int], rank_points: int) -> tuple[tuple[int, ...], np.ndarray]:
    if n < 1:
        raise ValueError("the database is empty: nothing to rank")
    kk = tuple(sorted({min(check_int(k, "k"), n) for k in ks}))
    return kk, _rank_grid(n, check_int(rank_points, "rank_points", 2))


def _finish(parts: list[dict[str, np.ndarray]], n: int, nbits: int | None, ks: tuple[int, ...],
            grid: np.ndarray) -> RankingStats:
    width = 0 if nbits is None else nbits + 1
    return RankingStats(
        n_db=n, nbits=nbits,
        n_relevant=_concat(parts, "n_relevant", (0,), np.int64),
        ap=_concat(parts, "ap", (0,), np.float64),
        ks=ks,
        hits_at_k=_concat(parts, "hits_at_k", (0, len(ks)), np.int64),
        ap_at_k=_concat(parts, "ap_at_k", (0, len(ks)), np.float64),
        rank_grid=grid,
        hits_at_rank=_concat(parts, "hits_at_rank", (0, grid.size), np.int64),
        first_rank=_concat(parts, "first_rank", (0,), np.int64),
        hist_total=None if nbits is None else _concat(parts, "hist_total", (0, width), np.int64),
        hist_relevant=None if nbits is None else _concat(parts, "hist_relevant", (0, width), np.int64),
    )


def ranking_stats(
    query_codes: Any,
    query_keys: Any,
    db_codes: Any,
    db_keys: Any,
    *,
    nbits: int | None = None,
    ks: Sequence[int] = (1, 10, 100, 1000),
    rank_points: int = 64,
    backend: str = "auto",
    num_threads: int | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    progress: bool = False,
    desc: str = "rank",
) -> RankingStats:
    """Rank a database of packed codes for every query with the engine; collect :class:`RankingStats`.

    Args:
        query_codes: packed uint8 (nq, nbits / 8).
        query_keys: int (nq,) labels or ids; relevant means equal keys.
        db_codes: packed uint8 (n, nbits / 8), n >= 1.
        db_keys: int (n,).
        nbits: code length (default: 8 * bytes per code).
        ks: cut-offs for precision@k, recall@k and MAP@k (clipped to n).
        rank_points: points of the precision-recall-by-rank grid.
        backend: engine backend ("auto", "native", "numba", "numpy").
        num_threads: engine threads (None: the backend's default).
        block_bytes: memory budget of one block of queries.
        progress: show a tqdm bar over the queries.
        desc: the bar's label.

    Returns:
        The per-query statistics (queries in input order).

    Raises:
        TypeError: codes that are not uint8, keys that are not integers.
        ValueError: mismatched shapes, an empty database.
    """
    from tqdm.auto import tqdm

    from hashsearch.functional import knn_search

    db_arr = np.asarray(db_codes)
    nbits = check_nbits(nbits if nbits is not None else (db_arr.shape[-1] * 8 if db_arr.ndim == 2 else 8))
    db = as_codes(db_arr, nbits, "db_codes", allow_1d=False)
    q = as_codes(query_codes, nbits, "query_codes", allow_1d=False)
    qk = _keys("query_keys", query_keys, q.shape[0])
    dk = _keys("db_keys", db_keys, db.shape[0])
    n = db.shape[0]
    kk, grid = _prepare(n, ks, rank_points)
    step = query_block_size(n, block_bytes)
    parts: list[dict[str, np.ndarray]] = []
    with tqdm(total=q.shape[0], desc=desc, unit="query", disable=not progress, leave=False) as bar:
        for start in range(0, q.shape[0], step):
            stop = min(q.shape[0], start + step)
            dist, pos = knn_search(db, q[start:stop], n, nbits=nbits, backend=backend, num_threads=num_threads)
            rel = dk[pos] == qk[start:stop, None]
            del pos
            part = _block_stats(rel, kk, grid)
            part["hist_total"], part["hist_relevant"] = _histograms(dist, rel, nbits)
            parts.append(part)
            bar.update(stop - start)
    return _finish(parts, n, nbits, kk, grid)


def feature_ranking_stats(
    query_features: Any,
    query_keys: Any,
    db_features: Any,
    db_keys: Any,
    *,
    ks: Sequence[int] = (1, 10, 100, 1000),
    rank_points: int = 64,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    progress: bool = False,
    desc: str = "rank features",
) -> RankingStats:
    """The same statistics for real-valued features ranked by cosine similarity (descending).

    The engine searches binary codes only, so this ranking is a stable sort of
    each block's similarities (ties, which real features almost never have, by
    database position). It measures what the features would retrieve before
    binarisation: the *quantization gap* is its MAP minus the codes' MAP.

    Args:
        query_features: float (nq, l).
        query_keys: int (nq,).
        db_features: float (n, l).
        db_keys: int (n,).

    Returns:
        :class:`RankingStats` without distance histograms (``nbits`` None).
    """
    from tqdm.auto import tqdm

    qf = np.asarray(query_features)
    df = np.asarray(db_features)
    if qf.dtype.kind not in "fiu" or df.dtype.kind not in "fiu":
        raise TypeError(f"features must be real-valued arrays, got {qf.dtype} and {df.dtype}")
    if qf.ndim != 2 or df.ndim != 2 or qf.shape[1] != df.shape[1]:
        raise ValueError(f"features must be (nq, l) and (n, l) with the same l, got {qf.shape} and {df.shape}")
    qk = _keys("query_keys", query_keys, qf.shape[0])
    dk = _keys("db_keys", db_keys, df.shape[0])
    n = df.shape[0]
    kk, grid = _prepare(n, ks, rank_points)

    def unit(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norm > 0, norm, 1.0)

    qn, dn = unit(qf), unit(df)
    step = query_block_size(n, block_bytes)
    parts: list[dict[str, np.ndarray]] = []
    with tqdm(total=qf.shape[0], desc=desc, unit="query", disable=not progress, leave=False) as bar:
        for start in range(0, qf.shape[0], step):
            stop = min(qf.shape[0], start + step)
            order = np.argsort(-(qn[start:stop] @ dn.T), axis=1, kind="stable")
            parts.append(_block_stats(dk[order] == qk[start:stop, None], kk, grid))
            bar.update(stop - start)
    return _finish(parts, n, None, kk, grid)


# ---------------------------------------------------------------- conveniences
def average_precisions(query_codes: Any, query_keys: Any, db_codes: Any, db_keys: Any, *,
                       top_k: int | None = None, backend: str = "auto") -> np.ndarray:
    """float64 (nq,): eq. 10 AP per query (ties by position); AP@top_k when given.

    The same numbers as :func:`hashsearch.training.metrics.average_precisions`.
    """
    ks = (top_k,) if top_k is not None else (1,)
    stats = ranking_stats(query_codes, query_keys, db_codes, db_keys, ks=ks, backend=backend)
    return stats.ap if top_k is None else stats.ap_at_k[:, 0]


def mean_average_precision(query_codes: Any, query_keys: Any, db_codes: Any, db_keys: Any, *,
                           top_k: int | None = None, backend: str = "auto") -> float:
    """MAP (eq. 10) of Hamming ranking, ties by database position; MAP@top_k when given.

    Example:
        >>> import numpy as np
        >>> codes = np.array([[0b00000000], [0b00000011], [0b11111111]], dtype=np.uint8)
        >>> mean_average_precision(codes[:1], [0], codes, [0, 1, 0], backend="numpy")
        0.8333333333333333
    """
    ap = average_precisions(query_codes, query_keys, db_codes, db_keys, top_k=top_k, backend=backend)
    return float(ap.mean()) if ap.size else 0.0


def tie_aware_average_precisions(query_codes: Any, query_keys: Any, db_codes: Any, db_keys: Any, *,
                                 backend: str = "auto") -> np.ndarray:
    """float64 (nq,): expected AP over random orders within each tie group (closed form)."""
    return ranking_stats(query_codes, query_keys, db_codes, db_keys, ks=(1,),
                         backend=backend).average_precisions_tie_aware()
