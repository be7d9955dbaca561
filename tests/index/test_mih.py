"""``MultiIndexHashing`` (hashsearch.index.mih over csrc/mih.cpp): equal to the NumPy
reference in every case the tables can meet — uniform, clustered and near-duplicate codes,
32/64/128 bits, several m (substrings of 8 to 64 bits, dense and sparse tables), k beyond
ntotal, tie runs at the cut, range search — after incremental adds (rows waiting in the
scanned tail and rows in the tables), custom ids, removals and a save/load round trip;
the fallback to the flat kernel where probing cannot win; m chosen from n; bad input.

Searches run with ``policy="mih"`` (the tables answer every query, whatever the cost)
and ``policy="auto"`` (the cost model may hand queries to the flat kernel); ``last_stats``
says which path answered, and the tests check it did.
"""

from __future__ import annotations

import numpy as np
import pytest
from search_helpers import REQUIRE_NATIVE, native_unavailable_reason

from hashsearch import CodeStore
from hashsearch.backends import PAD_DISTANCE, PAD_POSITION
from hashsearch.errors import IncompatibleStoreError
from hashsearch.functional import knn_search, range_search
from hashsearch.synthetic import clustered_codes, random_codes, tied_codes

if native_unavailable_reason() is not None:  # the index type needs the compiled core
    if REQUIRE_NATIVE:
        pytest.fail(f"HASHSEARCH_REQUIRE_NATIVE=1 but {native_unavailable_reason()}", pytrace=False)
    pytest.skip(f"native backend unavailable: {native_unavailable_reason()}", allow_module_level=True)

from hashsearch import _core
from hashsearch.index.mih import MultiIndexHashing, default_m

THREADS = 2


def reference(codes: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int):
    dist, pos = knn_search(codes, queries, k, backend="numpy")
    return dist, np.where(pos >= 0, ids[np.maximum(pos, 0)] if ids.size else PAD_POSITION, PAD_POSITION)


def reference_range(codes: np.ndarray, ids: np.ndarray, queries: np.ndarray, radius: int):
    lims, dist, pos = range_search(codes, queries, radius, backend="numpy")
    return lims, dist, ids[pos]


def flip_bits(codes: np.ndarray, nflip: int, seed: int) -> np.ndarray:
    """Copies of codes with ``nflip`` distinct random bits flipped in each (near duplicates)."""
    rng = np.random.default_rng(seed)
    nbits = codes.shape[1] * 8
    bits = np.unpackbits(codes, axis=1, bitorder="little")
    for row in bits:
        row[rng.choice(nbits, nflip, replace=False)] ^= 1
    return np.packbits(bits, axis=1, bitorder="little")


def queries_for(codes: np.ndarray, seed: int) -> np.ndarray:
    """Stored codes (exact hits), near duplicates (1, 3, 6 bits flipped) and uniform codes."""
    rng = np.random.default_rng(seed)
    picks = codes[rng.choice(codes.shape[0], 4, replace=False)]
    nbits = codes.shape[1] * 8
    parts = [picks] + [flip_bits(picks, f, seed + f) for f in (1, 3, 6)] + [random_codes(4, nbits, seed=seed)]
    return np.ascontiguousarray(np.concatenate(parts))


def assert_matches(index: MultiIndexHashing, queries: np.ndarray, ks, radii, *, path: str | None = None) -> None:
    """Every k and radius equal to the reference (D, I, lims exactly); ``path``: the path
    ``last_stats`` must report for each search."""
    codes, ids = np.array(index.codes), np.array(index.ids)
    for k in ks:
        got = index.search(queries, k)
        want = reference(codes, ids, queries, k)
        for g, w, name in zip(got, want, ("D", "I"), strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_array_equal(g, w, err_msg=f"{index!r} k={k} {name} {index.last_stats}")
        if path is not None:
            assert index.last_stats["path"] == path, (k, index.last_stats)
    for radius in radii:
        got = index.range_search(queries, radius)
        want = reference_range(codes, ids, queries, radius)
        for g, w, name in zip(got, want, ("lims", "D", "I"), strict=True):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w, err_msg=f"{index!r} radius={radius} {name} {index.last_stats}")
        if path is not None:
            assert index.last_stats["path"] == path, (radius, index.last_stats)


def database(kind: str, n: int, nbits: int, seed: int) -> np.ndarray:
    if kind == "uniform":
        return random_codes(n, nbits, seed=seed)
    if kind == "clustered":
        return clustered_codes(n, nbits, n_clusters=max(1, n // 40), flip_prob=0.04, seed=seed)[0]
    if kind == "near-duplicate":  # pairs of codes a few bits apart
        base = random_codes(n // 2, nbits, seed=seed)
        return np.ascontiguousarray(np.concatenate([base, flip_bits(base, 2, seed + 1)]))
    raise AssertionError(kind)


# -- equality with the reference -------------------------------------------------------
@pytest.mark.parametrize("kind", ["uniform", "clustered", "near-duplicate"])
@pytest.mark.parametrize(
    ("nbits", "m"),
    [(32, 1), (32, 2), (32, 4), (64, 2), (64, 3), (64, 4), (64, 8), (128, 2), (128, 4), (128, 5)],
)
def test_tables_equal_the_reference(kind, nbits, m):
    codes = database(kind, 1500, nbits, seed=nbits + m)
    index = MultiIndexHashing(nbits, m, policy="mih", num_threads=THREADS)
    index.add(codes)
    assert index.m == m and index.info()["indexed"] == 1500  # every row in the tables
    assert_matches(index, queries_for(codes, seed=m), ks=(1, 10, 100, 1500, 1600), radii=(0, 2, 5, 9), path="mih")


@pytest.mark.parametrize("nbits", [32, 64, 128])
def test_auto_policy_equals_the_reference(nbits):
    codes = database("clustered", 3000, nbits, seed=5)
    index = MultiIndexHashing(nbits, num_threads=THREADS)
    index.add(codes)
    assert_matches(index, queries_for(codes, seed=6), ks=(1, 10, 100, 3001), radii=(0, 3, 8, nbits))


@pytest.mark.parametrize("level", _core.simd_levels())
def test_every_simd_level_verifies_the_same(level):
    # candidates are verified by the pairwise kernel of the level in use
    previous = _core.simd_level()
    _core.set_simd_level(level)
    try:
        codes = database("clustered", 1200, 64, seed=7)
        index = MultiIndexHashing(64, 4, policy="mih", num_threads=THREADS)
        index.add(codes)
        assert_matches(index, queries_for(codes, seed=8), ks=(1, 25), radii=(4,), path="mih")
    finally:
        _core.set_simd_level(previous)


@pytest.mark.parametrize("nbits", [32, 64])
def test_tie_runs_at_the_cut_follow_positions(nbits):
    # 800 codes drawn from 8: every distance is shared by ~100 codes, so only the tie
    # rule decides which ids are returned at the cut
    codes = tied_codes(800, nbits, n_unique=8, seed=nbits)
    index = MultiIndexHashing(nbits, 2, policy="mih", num_threads=THREADS)
    index.add(codes)
    assert_matches(
        index, queries_for(codes, seed=1), ks=(1, 99, 100, 101, 250, 799, 800, 801), radii=(0, 7), path="mih"
    )


def test_results_do_not_depend_on_the_thread_count():
    codes = database("clustered", 2000, 64, seed=9)
    queries = queries_for(codes, seed=10)
    out = []
    for threads in (1, 2):
        index = MultiIndexHashing(64, 4, policy="mih", num_threads=threads)
        index.add(codes)
        out.append(index.search(queries, 17) + index.range_search(queries, 6))
    for a, b in zip(*out, strict=True):
        np.testing.assert_array_equal(a, b)


def test_empty_index_pads_and_finds_nothing():
    index = MultiIndexHashing(64, policy="mih")
    q = random_codes(3, 64, seed=1)
    dist, ids = index.search(q, 4)
    assert (dist == PAD_DISTANCE).all() and (ids == PAD_POSITION).all()
    lims, d, i = index.range_search(q, 64)
    np.testing.assert_array_equal(lims, [0, 0, 0, 0])
    assert d.size == i.size == 0


# -- incremental adds, ids, removal ----------------------------------------------------
def test_small_adds_wait_in_the_scanned_tail_then_join_the_tables():
    nbits = 64
    codes = database("clustered", 3000, nbits, seed=11)
    index = MultiIndexHashing(nbits, 4, policy="mih", num_threads=THREADS)
    index.add(codes[:2000])
    assert index.info()["indexed"] == 2000
    index.add(codes[2000:2010])  # fewer than the pending limit: scanned, not in the tables
    index.add(codes[2010:2011])
    assert index.ntotal == 2011 and index.info()["indexed"] == 2000
    queries = np.concatenate([codes[2005:2011], queries_for(codes[:2011], seed=12)])
    assert_matches(index, queries, ks=(1, 5, 60), radii=(0, 4), path="mih")
    index.flush()
    assert index.info()["indexed"] == 2011
    assert_matches(index, queries, ks=(1, 5, 60), radii=(0, 4), path="mih")
    index.add(codes[2011:])  # enough rows: merged into the tables at once
    assert index.info()["indexed"] == 3000
    assert_matches(index, queries_for(codes, seed=13), ks=(1, 10, 3000), radii=(3,), path="mih")


def test_tables_turn_dense_as_the_index_grows():
    # 16-bit substrings: buckets found through a map while the codes are few, addressed
    # by value once there are codes for a quarter of the values (the tables are rebuilt)
    codes = database("clustered", 30_000, 64, seed=40)
    index = MultiIndexHashing(64, 4, policy="mih", num_threads=THREADS)
    index.add(codes[:10_000])
    assert {t["kind"] for t in index.info()["tables"]} == {"sparse"}
    assert_matches(index, queries_for(codes[:10_000], seed=41), ks=(1, 30), radii=(3,), path="mih")
    index.add(codes[10_000:])
    assert {t["kind"] for t in index.info()["tables"]} == {"dense"}
    assert index.info()["indexed"] == 30_000
    index.remove_ids(np.arange(0, 30_000, 7))
    assert_matches(index, queries_for(np.array(index.codes), seed=42), ks=(1, 30), radii=(3,), path="mih")


def test_custom_ids_removal_and_reconstruct():
    nbits = 64
    rng = np.random.default_rng(14)
    a = database("clustered", 1500, nbits, seed=15)
    b = database("near-duplicate", 600, nbits, seed=16)
    index = MultiIndexHashing(nbits, 4, policy="mih", num_threads=THREADS)
    ids_a = rng.permutation(100_000)[:1500] + 7
    index.add(a, ids=ids_a)
    index.add(b[:20])  # in the tail: default ids continue after the largest id
    np.testing.assert_array_equal(index.ids[1500:], np.arange(ids_a.max() + 1, ids_a.max() + 21))
    gone = np.concatenate([ids_a[::3], index.ids[1500:1510], [10**12]])  # rows in the tables and the tail
    assert index.remove_ids(gone) == ids_a[::3].size + 10
    assert index.ntotal == 1500 - ids_a[::3].size + 10
    assert not np.isin(index.ids, gone).any()
    assert index.remove_ids(gone) == 0  # already gone
    index.add(b[20:])
    assert_matches(index, queries_for(np.array(index.codes), seed=17), ks=(1, 7, 64, 2500), radii=(0, 5), path="mih")
    keep_at = int(np.flatnonzero(~np.isin(ids_a, gone))[3])
    np.testing.assert_array_equal(index.reconstruct(int(ids_a[keep_at])), a[keep_at])
    with pytest.raises(KeyError):
        index.reconstruct(int(ids_a[0]))  # removed


def test_reset_empties_the_index():
    index = MultiIndexHashing(32, policy="mih")
    index.add(random_codes(500, 32, seed=1))
    index.reset()
    assert index.ntotal == 0 and index.info()["indexed"] == 0
    index.add(random_codes(5, 32, seed=2))
    np.testing.assert_array_equal(index.ids, np.arange(5))


# -- persistence -----------------------------------------------------------------------
def test_save_load_round_trip_keeps_codes_ids_and_parameters(tmp_path):
    nbits = 64
    codes = database("clustered", 2000, nbits, seed=18)
    ids = np.arange(2000) * 5 + 1
    index = MultiIndexHashing(nbits, 3, policy="mih", num_threads=THREADS)
    index.add(codes, ids=ids)
    index.remove_ids(ids[100:150])
    index.save(tmp_path / "mih.zarr")
    with CodeStore.open(tmp_path / "mih.zarr") as store:  # a plain code store underneath
        assert store.ntotal == 1950
    loaded = MultiIndexHashing.load(tmp_path / "mih.zarr", num_threads=THREADS)
    assert loaded.m == 3 and loaded.policy == "mih" and loaded.factory_string == "MIH3"
    np.testing.assert_array_equal(loaded.ids, index.ids)
    np.testing.assert_array_equal(loaded.codes, index.codes)
    assert loaded.info()["indexed"] == 1950
    assert_matches(loaded, queries_for(codes, seed=19), ks=(1, 20), radii=(4,), path="mih")
    loaded.add(codes[:3])  # default ids continue after the saved ones
    assert loaded.ids[-1] == ids.max() + 3


def test_any_code_store_loads_with_m_chosen_from_n(tmp_path):
    codes = random_codes(700, 32, seed=20)
    with CodeStore.create(tmp_path / "plain.zarr", 32) as store:
        store.append(codes)
    index = MultiIndexHashing.load(tmp_path / "plain.zarr")
    assert index.m == default_m(32, 700) and index.factory_string == "MIH"
    assert_matches(index, queries_for(codes, seed=21), ks=(3,), radii=(2,))
    other = MultiIndexHashing.load(tmp_path / "plain.zarr", m=4)
    assert other.m == 4


def test_a_store_saved_by_another_index_type_is_refused(tmp_path):
    import zarr

    index = MultiIndexHashing(64)
    index.add(random_codes(100, 64, seed=22))
    index.save(tmp_path / "s.zarr")
    zarr.open_group(str(tmp_path / "s.zarr"), mode="r+").attrs.update({"hashsearch_index": {"type": "Other"}})
    with pytest.raises(IncompatibleStoreError, match="Other"):
        MultiIndexHashing.load(tmp_path / "s.zarr")


# -- where the tables cannot win: the fallback -----------------------------------------
def test_large_k_on_uniform_codes_goes_flat_before_probing():
    codes = random_codes(20_000, 64, seed=23)
    index = MultiIndexHashing(64, num_threads=THREADS)
    index.add(codes)
    queries = random_codes(16, 64, seed=24)
    assert_matches(index, queries, ks=(500,), radii=(), path="flat")
    assert index.last_stats["reason"] == "k" and index.last_stats["fallback_predicted"] == 16
    assert index.last_stats["lookups"] == 0  # decided before any probe


def test_uniform_queries_give_up_probing_and_near_duplicates_do_not():
    # uniform 64-bit codes: the 10th neighbour of a uniform query lies ~15 bits away,
    # radius 3 and more in 16-bit tables; a near duplicate's lies within 2 bits
    codes = random_codes(60_000, 64, seed=25)
    index = MultiIndexHashing(64, num_threads=THREADS)
    index.add(codes)
    assert index.m == 4
    far = random_codes(16, 64, seed=26)
    assert_matches(index, far, ks=(10,), radii=(), path="flat")
    assert index.last_stats["reason"] == "cost" and index.last_stats["fallback_predicted"] == 0
    assert index.last_stats["lookups"] > 0  # it probed, then gave up
    near = flip_bits(codes[:16], 2, seed=27)
    assert_matches(index, near, ks=(1,), radii=(2,), path="mih")
    forced = MultiIndexHashing(64, policy="mih", num_threads=THREADS)  # the same answer the hard way
    forced.add(codes)
    assert_matches(forced, far, ks=(10,), radii=(), path="mih")
    assert forced.last_stats["candidates"] > 1000


def test_a_query_short_of_k_gives_up_by_the_uniform_kth_distance():
    # 1M uniform 64-bit codes in 3 tables of 21-22 bits: after radius 1 a uniform query
    # has found ~0.5 codes per probed bucket, far fewer than k = 100, whose 100th
    # neighbour lies ~18 bits away (radius 6). Projecting "maybe this step finishes"
    # let such queries probe radius 2 (C(22, 2) = 231 buckets a table) before giving
    # up; the uniform k-th distance ends them at radius 1.
    codes = random_codes(1_000_000, 64, seed=28)
    index = MultiIndexHashing(64, m=3, num_threads=THREADS)
    index.add(codes)
    far = random_codes(8, 64, seed=29)
    assert_matches(index, far, ks=(100,), radii=(), path="flat")
    assert index.last_stats["reason"] == "cost" and index.last_stats["max_radius"] == 1
    near = flip_bits(codes[:8], 4, seed=30)  # a near duplicate still goes through the tables
    assert_matches(index, near, ks=(1,), radii=(), path="mih")


def test_a_wide_radius_goes_flat_and_policy_flat_never_probes():
    codes = random_codes(20_000, 64, seed=28)
    index = MultiIndexHashing(64, num_threads=THREADS)
    index.add(codes)
    queries = random_codes(8, 64, seed=29)
    assert_matches(index, queries, ks=(), radii=(20,), path="flat")
    assert index.last_stats["reason"] == "radius"
    index.policy = "flat"
    assert_matches(index, queries, ks=(1, 10), radii=(1,), path="flat")
    assert index.last_stats["reason"] == "policy" and index.last_stats["lookups"] == 0


# -- m ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("nbits", "n", "m"),
    [
        (64, 100_000, 4),
        (64, 1_000_000, 4),
        (64, 2_000_000, 3),
        (64, 20_000_000, 3),
        (64, 50_000_000, 2),
        (64, 1_000_000_000, 2),
        (128, 1_000_000, 8),
        (128, 10_000_000, 6),
        (32, 1_000_000, 2),
        (32, 2_000_000, 1),
        (8, 0, 1),
        (1024, 1_000_000, 64),
    ],
)
def test_default_m_follows_the_reference_table(nbits, n, m):
    assert default_m(nbits, n) == m


def test_automatic_m_is_rechosen_as_the_index_grows():
    # 32-bit codes: m = 2 up to 2**20 codes, 1 beyond
    codes = random_codes(1_200_000, 32, seed=30)
    index = MultiIndexHashing(32, num_threads=THREADS)
    index.add(codes[:1_000_000])
    assert index.m == 2
    index.add(codes[1_000_000:])
    assert index.m == 1 and index.info()["indexed"] == 1_200_000
    queries = np.concatenate([flip_bits(codes[[5, 1_100_000]], 1, seed=31), codes[[7]]])
    index.policy = "mih"
    assert_matches(index, queries, ks=(2,), radii=(1,), path="mih")
    fixed = MultiIndexHashing(32, 2)
    fixed.add(codes)
    assert fixed.m == 2  # a given m is kept


# -- description and bad input ---------------------------------------------------------
def test_repr_info_and_params():
    index = MultiIndexHashing(128, 5, num_threads=THREADS)
    index.add(random_codes(300, 128, seed=32))
    assert repr(index).startswith("MultiIndexHashing(nbits=128, ntotal=300, m=5")
    info = index.info()
    assert info["type"] == "MultiIndexHashing" and info["factory"] == "MIH5" and info["exact"] is True
    assert info["params"]["substring_bits"] == [26, 26, 26, 25, 25]  # 128 bits, the first ones longer
    assert [t["offset"] for t in info["tables"]] == [0, 26, 52, 78, 103]
    assert {t["kind"] for t in info["tables"]} == {"sparse"}  # 26-bit values over 300 codes
    assert info["memory_bytes"] > 300 * 16
    index.search(random_codes(2, 128, seed=33), 3)
    assert index.info()["last_search"]["queries"] == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"m": 0}, ValueError, "m must be >= 1"),
        ({"m": 65}, ValueError, "m must be between"),
        ({"m": 2.0}, TypeError, "m must be an int"),
        ({"policy": "fast"}, ValueError, "policy must be one of"),
        ({"policy": 1}, TypeError, "policy must be a string"),
    ],
)
def test_bad_parameters_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        MultiIndexHashing(64, **kwargs)


def test_m_too_small_for_the_code_length_is_refused():
    with pytest.raises(ValueError, match="substrings of at most 64 bits"):
        MultiIndexHashing(256, 3)


def test_bad_input_leaves_the_index_unchanged():
    codes = database("clustered", 1000, 64, seed=34)
    index = MultiIndexHashing(64, 4, policy="mih", num_threads=THREADS)
    index.add(codes)
    q = codes[:4]
    before = index.search(q, 5)
    with pytest.raises(TypeError, match="uint8"):
        index.add(codes.astype(np.float32))
    with pytest.raises(ValueError, match="bytes per code"):
        index.add(random_codes(3, 32, seed=1))
    with pytest.raises(ValueError, match="already in the index"):
        index.add(codes[:2], ids=[3, 5000])
    with pytest.raises(ValueError, match="k must be >= 1"):
        index.search(q, 0)
    with pytest.raises(TypeError, match="radius must be an int"):
        index.range_search(q, 2.5)
    with pytest.raises(TypeError):
        index.remove_ids(["a"])
    with pytest.raises(ValueError, match="policy"):
        index.policy = "never"
    assert index.ntotal == 1000 and index.info()["indexed"] == 1000 and index.policy == "mih"
    for got, want in zip(index.search(q, 5), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_core_guards_its_invariants():
    # the binding refuses what the Python layer never passes (wrong rows, widths, dtypes)
    core = _core.MultiIndex(64, 4)
    codes = random_codes(100, 64, seed=35)
    core.add(codes, 1)
    d, p = np.empty((1, 3), np.int32), np.empty((1, 3), np.int64)
    with pytest.raises(ValueError, match="ntotal"):
        core.knn(codes[:50], codes[:1], 3, d, p, 1)
    with pytest.raises(ValueError, match="shape"):
        core.knn(random_codes(100, 32, seed=1), random_codes(1, 32, seed=1), 3, d, p, 1)
    with pytest.raises(ValueError, match="policy"):
        core.knn(codes, codes[:1], 3, d, p, 1, "sometimes")
    with pytest.raises(ValueError, match="fewer rows"):
        core.add(codes[:10], 1)
    with pytest.raises(ValueError, match="m must be between"):
        _core.MultiIndex(128, 1)


class _FailingTables:
    """The real tables, whose ``add`` / ``remove`` change them and then raise (a
    MemoryError half-way through a merge)."""

    def __init__(self, real, fail):
        self._real, self._fail = real, fail

    def __getattr__(self, name):
        return getattr(self._real, name)

    def add(self, codes, nthreads):
        self._real.add(codes, nthreads)
        if "add" in self._fail:
            raise MemoryError("tables")

    def remove(self, keep, nthreads):
        self._real.remove(keep, nthreads)
        if "remove" in self._fail:
            raise MemoryError("tables")


def assert_equals_reference(index, queries, k):
    want = reference(np.ascontiguousarray(index.codes), np.asarray(index.ids), queries, k)
    got = index.search(queries, k)
    assert index.info()["indexed"] <= index.ntotal == index._core.ntotal
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_a_failing_table_add_leaves_the_index_as_before():
    codes = database("clustered", 3000, 64, seed=36)
    index = MultiIndexHashing(64, 4, policy="mih", num_threads=THREADS)
    index.add(codes[:2000], ids=np.arange(2000) * 3)
    index._core = _FailingTables(index._core, {"add"})
    with pytest.raises(MemoryError):
        index.add(codes[2000:])
    assert index.ntotal == 2000 and not isinstance(index._core, _FailingTables)
    np.testing.assert_array_equal(index.ids, np.arange(2000) * 3)
    assert_equals_reference(index, codes[1990:2010], 7)
    index.add(codes[2000:2100])  # the ids go on from where they were
    assert int(index.ids[-1]) == 3 * 1999 + 100
    assert_equals_reference(index, codes[1990:2010], 7)


def test_a_failing_rebuild_with_a_new_m_keeps_the_old_tables(monkeypatch):
    import hashsearch.index.mih as mih

    codes = database("uniform", 3000, 32, seed=37)
    index = MultiIndexHashing(32, policy="mih", num_threads=THREADS)
    index.add(codes[:2])  # m chosen for 2 codes
    old = index._core
    calls = []

    class FailingCore:
        MultiIndex = staticmethod(lambda *a: calls.append(a) or _FailingTables(_core.MultiIndex(*a), {"add"}))
        mih_default_m = staticmethod(lambda nbits, n: old.m if n < 1000 else old.m + 1)

    monkeypatch.setattr(mih, "_core", FailingCore)
    with pytest.raises(MemoryError):
        index.add(codes[2:])
    assert calls and index._core is old and index.ntotal == 2
    monkeypatch.undo()
    assert_equals_reference(index, codes[:5], 3)


def test_a_failing_table_removal_rebuilds_the_tables():
    codes = database("clustered", 2000, 64, seed=38)
    index = MultiIndexHashing(64, 4, policy="mih", num_threads=THREADS)
    index.add(codes)
    index._core = _FailingTables(index._core, {"remove"})
    with pytest.raises(MemoryError):
        index.remove_ids(np.arange(0, 2000, 3))
    assert index.ntotal == 2000 - 667 and not isinstance(index._core, _FailingTables)
    assert_equals_reference(index, codes[:20], 9)


def test_tables_that_lag_the_codes_are_rebuilt_before_a_search():
    codes = database("clustered", 1500, 64, seed=39)
    index = MultiIndexHashing(64, 4, policy="mih", num_threads=THREADS)
    index.add(codes)
    index._core = _core.MultiIndex(64, 4)  # as left by a rebuild that failed too
    assert_equals_reference(index, codes[:10], 5)
    assert index.last_stats["path"] == "mih"


def test_save_writes_the_parameters_with_the_store(tmp_path, monkeypatch):
    from hashsearch.store.writer import StoreWriter

    index = MultiIndexHashing(64, 3, policy="flat", num_threads=THREADS)
    index.add(database("clustered", 500, 64, seed=40))

    def failing_commit(self, nrows, changes):
        raise OSError("disk full")

    monkeypatch.setattr(StoreWriter, "commit", failing_commit)
    with pytest.raises(OSError, match="disk full"):
        index.save(tmp_path / "i.zarr")
    monkeypatch.undo()
    # the store never held a row without the parameters; a plain store of the same rows stays plain
    loaded = MultiIndexHashing.load(tmp_path / "i.zarr")
    assert (loaded.config.m, loaded.policy) == (3, "flat")
    index.save(tmp_path / "i.zarr", overwrite=True)
    loaded = MultiIndexHashing.load(tmp_path / "i.zarr")
    assert (loaded.config.m, loaded.policy, loaded.ntotal) == (3, "flat", 500)
