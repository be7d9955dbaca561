"""``BinaryIndex``: the API users get (ids, removal, reconstruction, reset, input handling)
and its errors — each rejected call must leave the index exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest
from search_helpers import UnavailableBackend, oracle_knn, oracle_range

import hashsearch.backends as backends_mod
from hashsearch import BackendUnavailableError, BinaryIndex
from hashsearch.backends import PAD_DISTANCE, PAD_POSITION
from hashsearch.backends.numpy_backend import NumpyBackend
from hashsearch.synthetic import random_codes, tied_codes


def make_index(n=200, nbits=64, backend="numpy", seed=0, ids=None):
    index = BinaryIndex(nbits, backend=backend)
    if n:
        index.add(tied_codes(n, nbits, n_unique=max(1, n // 4), seed=seed), ids=ids)
    return index


def expected_search(index, queries, k):
    """Oracle k-NN over the index's codes, positions mapped to its ids."""
    dist, pos = oracle_knn(index.codes, np.atleast_2d(queries), k)
    ids = np.where(pos >= 0, index.ids[np.maximum(pos, 0)] if index.ntotal else -1, -1)
    return dist, ids


# -- construction and basic properties -------------------------------------------------
def test_empty_index_properties():
    index = BinaryIndex(32, backend="numpy")
    assert index.nbits == 32 and index.code_size == 4
    assert index.ntotal == len(index) == 0
    assert index.codes.shape == (0, 4) and index.ids.shape == (0,)
    assert index.backend == "numpy"
    assert "nbits=32" in repr(index) and "ntotal=0" in repr(index)
    dist, ids = index.search(random_codes(2, 32, seed=1), 3)
    assert (dist == PAD_DISTANCE).all() and (ids == PAD_POSITION).all()
    lims, d, i = index.range_search(random_codes(2, 32, seed=1), 32)
    np.testing.assert_array_equal(lims, [0, 0, 0])
    assert d.size == i.size == 0


def test_default_ids_are_consecutive_across_adds(backend):
    index = BinaryIndex(64, backend=backend)
    a, b = random_codes(10, 64, seed=1), random_codes(5, 64, seed=2)
    index.add(a)
    index.add(b)
    assert index.ntotal == len(index) == 15
    np.testing.assert_array_equal(index.ids, np.arange(15))
    np.testing.assert_array_equal(index.codes, np.concatenate([a, b]))
    dist, ids = index.search(b, 1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(10, 15))
    np.testing.assert_array_equal(dist[:, 0], 0)


def test_explicit_ids_then_default_ids_continue_after_the_largest():
    index = BinaryIndex(16, backend="numpy")
    index.add(random_codes(3, 16, seed=1), ids=[100, 7, 50])
    index.add(random_codes(2, 16, seed=2))
    np.testing.assert_array_equal(index.ids, [100, 7, 50, 101, 102])
    index.add(random_codes(1, 16, seed=3), ids=np.array([3], dtype=np.uint32))
    assert index.ids[-1] == 3 and index.ids.dtype == np.int64


def test_search_returns_ids_with_ties_in_insertion_order(backend):
    # Equal codes under non-increasing ids: ties follow insertion (position) order, not id order.
    code = random_codes(1, 24, seed=4)
    index = BinaryIndex(24, backend=backend)
    index.add(np.repeat(code, 4, axis=0), ids=[9, 2, 30, 5])
    dist, ids = index.search(code, 6)
    np.testing.assert_array_equal(ids, [[9, 2, 30, 5, -1, -1]])
    np.testing.assert_array_equal(dist, [[0, 0, 0, 0, PAD_DISTANCE, PAD_DISTANCE]])
    assert dist.dtype == np.int32 and ids.dtype == np.int64


def test_search_and_range_search_match_oracle_with_explicit_ids(backend):
    rng = np.random.default_rng(5)
    ids = rng.permutation(10_000)[:500] * 3 + 1
    index = make_index(500, 72, backend=backend, seed=5, ids=ids)
    queries = np.concatenate([index.codes[::50], random_codes(5, 72, seed=6)])
    for k in (1, 20, 500, 520):
        dist, got_ids = index.search(queries, k)
        exp_dist, exp_ids = expected_search(index, queries, k)
        np.testing.assert_array_equal(dist, exp_dist)
        np.testing.assert_array_equal(got_ids, exp_ids)
    lims, dist, got_ids = index.range_search(queries, 30)
    exp_lims, exp_dist, exp_pos = oracle_range(index.codes, queries, 30)
    np.testing.assert_array_equal(lims, exp_lims)
    np.testing.assert_array_equal(dist, exp_dist)
    np.testing.assert_array_equal(got_ids, ids[exp_pos])


def test_range_search_radius_is_inclusive_and_clipped():
    index = BinaryIndex(8, backend="numpy")
    index.add(np.array([[0b0000_0000], [0b0000_0001], [0b0000_0011], [0xFF]], dtype=np.uint8))
    q = np.array([0], dtype=np.uint8)
    lims, dist, ids = index.range_search(q, 1)
    np.testing.assert_array_equal(ids, [0, 1])  # distance 1 is kept (<= radius)
    np.testing.assert_array_equal(dist, [0, 1])
    lims, dist, ids = index.range_search(q, 1000)  # above nbits: everything
    np.testing.assert_array_equal(ids, [0, 1, 2, 3])
    np.testing.assert_array_equal(dist, [0, 1, 2, 8])
    lims, _, ids = index.range_search(q, 0)
    np.testing.assert_array_equal(lims, [0, 1])


def test_one_dimensional_query_is_one_query():
    index = make_index(50, 32)
    dist, ids = index.search(index.codes[3], 4)
    assert dist.shape == ids.shape == (1, 4)
    assert dist[0, 0] == 0
    lims, _, _ = index.range_search(index.codes[3], 0)
    assert lims.shape == (2,)
    assert index.distances(index.codes[3]).shape == (1, 50)


def test_non_contiguous_input_is_accepted_and_copied(backend):
    base = random_codes(400, 128, seed=8)
    strided = base[::2]  # every other row
    fortran = np.asfortranarray(base[:100])
    assert not strided.flags.c_contiguous and not fortran.flags.c_contiguous
    index = BinaryIndex(128, backend=backend)
    index.add(strided)
    index.add(fortran)
    np.testing.assert_array_equal(index.codes, np.concatenate([base[::2], base[:100]]))
    queries = base[1:60:3]
    got = index.search(queries, 7)
    want = index.search(np.ascontiguousarray(queries), 7)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    strided_row = np.stack([base[5], base[5]], axis=1).reshape(-1)[::2]  # 1-D, stride 2
    assert not strided_row.flags.c_contiguous
    assert index.search(strided_row, 1)[0][0, 0] == 0
    base[:] = 0  # the index holds copies
    assert index.codes.any()


def test_codes_and_ids_views_are_read_only():
    index = make_index(10, 16)
    with pytest.raises(ValueError, match="read-only"):
        index.codes[0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        index.ids[0] = 5


def test_torch_codes_are_accepted():
    torch = pytest.importorskip("torch")
    codes = random_codes(20, 64, seed=2)
    index = BinaryIndex(64, backend="numpy")
    index.add(torch.from_numpy(codes))
    np.testing.assert_array_equal(index.codes, codes)
    _, ids = index.search(torch.from_numpy(codes[:3]), 1)
    np.testing.assert_array_equal(ids[:, 0], [0, 1, 2])


# -- removal, reconstruction, reset ----------------------------------------------------
def test_remove_ids_then_search(backend):
    index = make_index(300, 32, backend=backend, seed=3, ids=np.arange(300)[::-1] * 2)
    codes_before, ids_before = index.codes.copy(), index.ids.copy()
    removed = index.remove_ids([598, 0, 10, 10, 12345])  # 12345 absent, 10 twice
    assert removed == 3
    keep = ~np.isin(ids_before, [598, 0, 10])
    np.testing.assert_array_equal(index.ids, ids_before[keep])  # order kept
    np.testing.assert_array_equal(index.codes, codes_before[keep])
    assert index.ntotal == len(index) == 297
    queries = codes_before[:20]
    for k in (1, 15, 297, 300):
        dist, ids = index.search(queries, k)
        exp_dist, exp_ids = expected_search(index, queries, k)
        np.testing.assert_array_equal(dist, exp_dist)
        np.testing.assert_array_equal(ids, exp_ids)
        assert not np.isin(ids, [598, 0, 10]).any()


def test_remove_ids_single_int_missing_and_everything():
    index = make_index(20, 8)
    assert index.remove_ids(5) == 1
    assert index.remove_ids(5) == 0
    assert index.remove_ids([]) == 0
    assert index.remove_ids(np.arange(100)) == 19
    assert index.ntotal == 0
    dist, ids = index.search(random_codes(1, 8, seed=1), 2)
    assert (ids == -1).all() and (dist == PAD_DISTANCE).all()
    index.add(random_codes(2, 8, seed=2))
    np.testing.assert_array_equal(index.ids, [20, 21])  # ids are never reused


def test_reconstruct_returns_a_copy():
    index = make_index(30, 24, ids=np.arange(30) + 1000)
    code = index.reconstruct(1007)
    np.testing.assert_array_equal(code, index.codes[7])
    assert code.shape == (3,) and code.dtype == np.uint8
    code[:] = ~code
    assert not np.array_equal(code, index.codes[7])
    assert index.reconstruct(np.int64(1029)).shape == (3,)
    np.testing.assert_array_equal(index.reconstruct_batch([1003, 1001]), index.codes[[3, 1]])
    with pytest.raises(KeyError, match="999"):
        index.reconstruct(999)
    index.remove_ids([1007])
    with pytest.raises(KeyError, match="1007"):
        index.reconstruct(1007)
    with pytest.raises(TypeError, match="id must be an int"):
        index.reconstruct("7")


def test_empty_batches_with_empty_id_lists():
    # A stream of batches may end with an empty one; ids=[] must be accepted like codes of shape (0, w).
    index = make_index(10, 16)
    index.add(np.empty((0, 2), np.uint8), ids=[])
    assert index.ntotal == 10
    assert index.reconstruct_batch([]).shape == (0, 2)


def test_reconstruct_of_an_id_beyond_int64_is_a_missing_id():
    index = make_index(10, 16)
    with pytest.raises(KeyError):
        index.reconstruct(2**63)


def test_reset():
    index = make_index(40, 16)
    index.reset()
    assert index.ntotal == len(index) == 0
    assert index.codes.shape == (0, 2)
    index.add(random_codes(3, 16, seed=1))
    np.testing.assert_array_equal(index.ids, [0, 1, 2])


def test_num_threads():
    index = BinaryIndex(64, backend="numpy", num_threads=1)
    assert index.num_threads == 1
    index.num_threads = 2
    assert index.num_threads == index.backend_impl.num_threads == 2
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        index.num_threads = 0
    with pytest.raises(TypeError, match="num_threads must be an int"):
        index.num_threads = 1.5
    assert index.num_threads == 2


def test_distances_method(backend):
    index = BinaryIndex(72, backend=backend)
    index.add(random_codes(30, 72, seed=1))
    q = random_codes(4, 72, seed=2)
    from search_helpers import oracle_distances

    np.testing.assert_array_equal(index.distances(q), oracle_distances(q, index.codes))


# -- bad input: right exception, right message, index unchanged ------------------------
def _state(index):
    """Everything observable about an index, including which id the next add would get."""
    queries = random_codes(3, index.nbits, seed=99)
    dist, ids = index.search(queries, 5)
    return index.codes.copy(), index.ids.copy(), index.ntotal, dist, ids


def _assert_unchanged(index, twin):
    """``index`` had a call rejected; ``twin`` did not see it. They must behave identically."""
    for a, b in zip(_state(index), _state(twin)):
        np.testing.assert_array_equal(a, b)
    new = random_codes(2, index.nbits, seed=98)
    index.add(new)
    twin.add(new)
    np.testing.assert_array_equal(index.ids, twin.ids)  # same default ids assigned next
    for a, b in zip(_state(index), _state(twin)):
        np.testing.assert_array_equal(a, b)


BAD_CALLS = [
    # (description, call, exception, message pattern)
    ("float codes", lambda ix: ix.add(np.zeros((2, 8), np.float32)), TypeError, "packed uint8.*hashsearch.pack"),
    ("int64 codes", lambda ix: ix.add(np.zeros((2, 8), np.int64)), TypeError, "must be packed uint8"),
    ("bool codes", lambda ix: ix.add(np.zeros((2, 64), bool)), TypeError, "must be packed uint8"),
    ("string codes", lambda ix: ix.add(["ab"]), TypeError, "must be packed uint8"),
    ("width 4 for nbits 64", lambda ix: ix.add(np.zeros((2, 4), np.uint8)), ValueError, "4 bytes per code.*expected 8"),
    ("width 9", lambda ix: ix.add(np.zeros((2, 9), np.uint8)), ValueError, "9 bytes per code"),
    ("3-D codes", lambda ix: ix.add(np.zeros((2, 2, 8), np.uint8)), ValueError, "shape"),
    ("ids too short", lambda ix: ix.add(np.zeros((3, 8), np.uint8), ids=[1000, 1]), ValueError, "2 entries for 3"),
    ("ids 2-D", lambda ix: ix.add(np.zeros((2, 8), np.uint8), ids=[[1000, 1001]]), ValueError, "1-D"),
    ("duplicate ids", lambda ix: ix.add(np.zeros((3, 8), np.uint8), ids=[100, 61, 100]), ValueError, "duplicates.*100"),
    ("negative ids", lambda ix: ix.add(np.zeros((2, 8), np.uint8), ids=[1000, -3]), ValueError, "non-negative"),
    ("float ids", lambda ix: ix.add(np.zeros((2, 8), np.uint8), ids=[1000.0, 1001.0]), TypeError, "integers"),
    ("ids already present", lambda ix: ix.add(np.zeros((2, 8), np.uint8), ids=[100, 7]), ValueError, "id 7 is already"),
    ("one id already present", lambda ix: ix.add(np.zeros((1, 8), np.uint8), ids=[0]), ValueError, "id 0 is already"),
    ("k = 0", lambda ix: ix.search(np.zeros((1, 8), np.uint8), 0), ValueError, "k must be >= 1"),
    ("k < 0", lambda ix: ix.search(np.zeros((1, 8), np.uint8), -2), ValueError, "k must be >= 1"),
    ("k float", lambda ix: ix.search(np.zeros((1, 8), np.uint8), 2.0), TypeError, "k must be an int"),
    ("k bool", lambda ix: ix.search(np.zeros((1, 8), np.uint8), True), TypeError, "k must be an int"),
    ("k None", lambda ix: ix.search(np.zeros((1, 8), np.uint8), None), TypeError, "k must be an int"),
    ("query dtype", lambda ix: ix.search(np.zeros((1, 8), np.int8), 1), TypeError, "queries must be packed uint8"),
    ("query width", lambda ix: ix.search(np.zeros((1, 7), np.uint8), 1), ValueError, "queries have 7 bytes"),
    ("negative radius", lambda ix: ix.range_search(np.zeros((1, 8), np.uint8), -1), ValueError, "radius must be >= 0"),
    ("float radius", lambda ix: ix.range_search(np.zeros((1, 8), np.uint8), 1.5), TypeError, "radius must be an int"),
    ("range query width", lambda ix: ix.range_search(np.zeros((1, 16), np.uint8), 1), ValueError, "16 bytes"),
    ("remove float ids", lambda ix: ix.remove_ids([1.5]), TypeError, "ids must be integers"),
    ("reconstruct missing", lambda ix: ix.reconstruct(10**6), KeyError, "not in the index"),
    ("reconstruct_batch missing", lambda ix: ix.reconstruct_batch([1, 10**6]), KeyError, "1000000"),
    ("num_threads 0", lambda ix: setattr(ix, "num_threads", 0), ValueError, "num_threads"),
    ("distances width", lambda ix: ix.distances(np.zeros((1, 3), np.uint8)), ValueError, "3 bytes"),
]


@pytest.mark.parametrize(("call", "exc", "match"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_rejected_call_leaves_index_unchanged(call, exc, match):
    ids = np.arange(60)[::-1].copy()  # non-increasing ids exercise the id lookup
    index, twin = make_index(60, 64, ids=ids), make_index(60, 64, ids=ids)
    with pytest.raises(exc, match=match):
        call(index)
    _assert_unchanged(index, twin)


@pytest.mark.parametrize(
    ("nbits", "exc", "match"),
    [
        (12, ValueError, "positive multiple of 8"),
        (0, ValueError, "positive multiple of 8"),
        (-8, ValueError, "positive multiple of 8"),
        (8.0, TypeError, "nbits must be an int"),
        ("64", TypeError, "nbits must be an int"),
        (True, TypeError, "nbits must be an int"),
    ],
)
def test_bad_nbits(nbits, exc, match):
    with pytest.raises(exc, match=match):
        BinaryIndex(nbits)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'nope'.*numpy"):
        BinaryIndex(64, backend="nope")


def test_unavailable_backend(monkeypatch):
    monkeypatch.setitem(backends_mod._REGISTRY, "unavailable", "search_helpers:UnavailableBackend")
    with pytest.raises(BackendUnavailableError, match="'unavailable' is not available: it is a test double"):
        BinaryIndex(64, backend="unavailable")
    assert UnavailableBackend.is_available() is False


def test_backend_instance_and_bad_backend_type():
    from hashsearch.backends.numpy_backend import NumpyBackend

    impl = NumpyBackend(num_threads=1)
    index = BinaryIndex(64, backend=impl)
    assert index.backend_impl is impl and index.backend == "numpy"
    with pytest.raises(TypeError, match="backend must be a name or a Backend"):
        BinaryIndex(64, backend=3)


class _StatefulBackend(NumpyBackend):
    """A backend with a device-like copy of the database, kept through the hooks, that
    answers from that copy and can be told to fail a hook (device out of memory)."""

    def __init__(self):
        super().__init__(1)
        self.copy = np.empty((0, 8), np.uint8)
        self.fail: set[str] = set()

    def attach(self, codes):
        if "attach" in self.fail:
            self.copy = codes[:1].copy()  # half done
            raise MemoryError("device")
        self.copy = codes.copy()

    def extend(self, new_codes):
        if "extend" in self.fail:
            self.copy = np.concatenate([self.copy, new_codes[:1]])  # half done
            raise MemoryError("device")
        self.copy = np.concatenate([self.copy, new_codes])

    def reset(self):
        self.copy = np.empty((0, 8), np.uint8)

    def knn(self, codes, queries, k):
        if self.copy.shape == codes.shape:
            assert (self.copy == codes).all(), "the backend's copy went stale"
        return super().knn(codes, queries, k)


def test_a_failing_backend_hook_leaves_the_index_unchanged_or_consistent():
    codes = tied_codes(600, 64, 30, seed=12)
    backend = _StatefulBackend()
    index = BinaryIndex(64, backend)
    index.add(codes[:300], ids=np.arange(300) * 2)
    backend.fail = {"extend"}
    with pytest.raises(MemoryError):
        index.add(codes[300:], ids=np.arange(300, 600) * 2)
    # unchanged: the rows and ids of before, the ids of the failed add still free
    assert index.ntotal == 300 and backend.copy.shape[0] == 0
    np.testing.assert_array_equal(index.codes, codes[:300])
    backend.fail = set()
    index.add(codes[300:], ids=np.arange(300, 600) * 2)  # the backend gets the whole database again
    np.testing.assert_array_equal(backend.copy, codes)
    want = oracle_knn(codes, codes[:7], 9)
    np.testing.assert_array_equal(index.search(codes[:7], 9)[0], want[0])
    # a failed attach after a removal: the removal stands, the backend forgets its copy
    backend.fail = {"attach"}
    with pytest.raises(MemoryError):
        assert index.remove_ids(np.arange(0, 1200, 6))
    assert index.ntotal == 400 and backend.copy.shape[0] == 0
    backend.fail = set()
    index.add(codes[:5])
    np.testing.assert_array_equal(backend.copy, index.codes)
