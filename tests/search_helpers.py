"""Test helpers: an independent oracle for the searches, comparisons, fake backends.

The oracle computes Hamming distances from *unpacked* bits with a matrix product
and ranks with a stable argsort, so it shares no code (and no trick) with the
NumPy reference backend (``np.bitwise_count`` over packed bytes and a
``distance * n + position`` key): the reference is tested like every other
backend. Seeded codes come from :mod:`hashsearch.synthetic`.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from hashsearch.backends import PAD_DISTANCE, PAD_POSITION, Backend

#: Set by CI: a test that needs the compiled core fails instead of skipping without it.
REQUIRE_NATIVE = os.environ.get("HASHSEARCH_REQUIRE_NATIVE", "") == "1"


def native_unavailable_reason() -> str | None:
    """Why ``hashsearch._core`` cannot be used here, or None."""
    from hashsearch.backends.native import NativeBackend

    return NativeBackend.unavailable_reason()


def require_native() -> None:
    """Skip (or, with ``HASHSEARCH_REQUIRE_NATIVE=1``, fail) when the compiled core is missing."""
    reason = native_unavailable_reason()
    if reason is None:
        return
    if REQUIRE_NATIVE:
        pytest.fail(f"HASHSEARCH_REQUIRE_NATIVE=1 but the native backend is unavailable: {reason}")
    pytest.skip(f"native backend unavailable: {reason}")


# -- oracle ---------------------------------------------------------------------------
def oracle_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances int64 (na, nb) from unpacked bits: |x| + |y| - 2 <x, y>.

    float32 products are exact here (0/1 entries, sums <= nbits < 2**24); ``b`` is
    processed in blocks to bound memory.
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.uint8))
    b = np.atleast_2d(np.asarray(b, dtype=np.uint8))
    abits = np.unpackbits(a, axis=1).astype(np.float32)
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int64)
    for start in range(0, b.shape[0], 8192):
        bbits = np.unpackbits(b[start : start + 8192], axis=1).astype(np.float32)
        d = abits.sum(1)[:, None] + bbits.sum(1)[None, :] - 2.0 * (abits @ bbits.T)
        out[:, start : start + 8192] = np.rint(d)
    return out


def oracle_knn(codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by (distance, position), padded with PAD_DISTANCE / -1: the documented contract."""
    n, nq = codes.shape[0], queries.shape[0]
    dist = np.full((nq, k), PAD_DISTANCE, dtype=np.int32)
    pos = np.full((nq, k), PAD_POSITION, dtype=np.int64)
    kk = min(k, n)
    if kk and nq:
        d = oracle_distances(queries, codes)
        order = np.argsort(d, axis=1, kind="stable")[:, :kk]
        dist[:, :kk] = np.take_along_axis(d, order, axis=1)
        pos[:, :kk] = order
    return dist, pos


def oracle_range(codes: np.ndarray, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every position with distance <= radius, ascending, in FAISS's (lims, D, I) layout."""
    nq = queries.shape[0]
    lims = np.zeros(nq + 1, dtype=np.int64)
    if codes.shape[0] == 0 or nq == 0:
        return lims, np.empty(0, np.int32), np.empty(0, np.int64)
    d = oracle_distances(queries, codes)
    hits = [np.flatnonzero(row <= radius) for row in d]
    lims[1:] = np.cumsum([h.size for h in hits])
    pos = np.concatenate(hits).astype(np.int64)
    dist = np.concatenate([row[h] for row, h in zip(d, hits)]).astype(np.int32)
    return lims, dist, pos


# -- comparisons ----------------------------------------------------------------------
def assert_same_arrays(got: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...], what: str = "") -> None:
    """Equal dtype, shape and values, array by array (with a useful message)."""
    assert len(got) == len(expected), what
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.dtype == e.dtype, f"{what} output {i}: dtype {g.dtype} != {e.dtype}"
        assert g.shape == e.shape, f"{what} output {i}: shape {g.shape} != {e.shape}"
        if not np.array_equal(g, e):
            bad = np.argwhere(g != e)
            first = tuple(int(x) for x in bad[0])
            raise AssertionError(
                f"{what} output {i}: {bad.shape[0]} entries differ, first at {first}: "
                f"got {g[first]}, expected {e[first]}"
            )


def assert_equal_up_to_ties(dist_a, ids_a, dist_b, ids_b) -> None:
    """Distances equal exactly; ids equal as sets within each run of equal distances.

    For comparing with libraries (FAISS) whose tie order is unspecified. The last
    run of a row may be cut by k, so only the ids of complete runs are compared.
    """
    np.testing.assert_array_equal(dist_a, dist_b)
    for da, ia, ib in zip(dist_a, ids_a, ids_b):
        values = np.unique(da)
        for v in values[:-1]:
            sel = da == v
            assert set(ia[sel].tolist()) == set(ib[sel].tolist()), f"ids differ within distance {v}"
        assert len(set(ia.tolist())) == len(set(ib.tolist())) == len(ia)


# -- fake backends for the registry tests ---------------------------------------------
class UnavailableBackend(Backend):
    """A backend that reports itself unavailable (registered by tests only)."""

    name = "unavailable"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return "it is a test double that never runs"

    def knn(self, codes, queries, k):  # pragma: no cover - never called
        raise AssertionError("unavailable backend was used")

    def range_search(self, codes, queries, radius):  # pragma: no cover
        raise AssertionError("unavailable backend was used")

    def distances(self, a, b):  # pragma: no cover
        raise AssertionError("unavailable backend was used")
