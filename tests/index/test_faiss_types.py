"""FAISS index types (hashsearch.index.faiss_types): what the wrappers add to FAISS.

Against FAISS itself, run in the same test: Flat's distances are FAISS's and its
order is ours; the inclusive range search is FAISS's with radius + 1; the one-table
hash is FAISS's ``IndexBinaryHash``. The FAISS pitfalls: an add to a memory-mapped
index raises and the process lives (checked in a subprocess, where FAISS's abort
would kill the interpreter), saving over a mapped file leaves the mapping valid,
widths not a multiple of 8 never reach FAISS.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import faiss
import numpy as np
import pytest

from hashsearch import index_factory
from hashsearch.backends import PAD_DISTANCE
from hashsearch.errors import CorruptStoreError, IncompatibleStoreError
from hashsearch.functional import knn_search
from hashsearch.index import faiss_types as ft
from hashsearch.index.base import ReadOnlyIndexError
from hashsearch.synthetic import clustered_codes, random_codes, tied_codes

ALL = ["BFlat", "BIVF16", "BHNSW16", "BHash12", "BHash3x16"]


def filled(description, n=2000, nbits=64, seed=0, ids=None):
    index = index_factory(nbits, description)
    codes = tied_codes(n, nbits, n_unique=n // 3, seed=seed)
    index.add(codes, ids=ids)
    return index, codes


# -- against FAISS itself --------------------------------------------------------------
def test_flat_gives_faiss_distances_and_our_tie_order():
    codes = tied_codes(3000, 64, n_unique=30, seed=1)  # ~100 codes per value: ties everywhere
    queries = random_codes(25, 64, seed=2)
    ref = faiss.IndexBinaryFlat(64)
    ref.add(codes)
    index = ft.FaissFlat(64, device="cpu")
    index.add(codes, ids=np.arange(3000) * 10)
    for k in (1, 50, 150, 3000):
        f_dist, _ = ref.search(queries, k)
        dist, ids = index.search(queries, k)
        np.testing.assert_array_equal(dist, f_dist)  # FAISS's distances...
        want_d, want_pos = knn_search(codes, queries, k, backend="numpy")
        np.testing.assert_array_equal(dist, want_d)
        np.testing.assert_array_equal(ids, want_pos * 10)  # ...in our order, ids mapped


def test_range_search_is_inclusive_where_faiss_is_exclusive():
    codes = random_codes(4000, 64, seed=3)
    queries = codes[:10].copy()
    queries[:, 1] ^= 0x0F
    ref = faiss.IndexBinaryFlat(64)
    ref.add(codes)
    index = ft.FaissFlat(64, device="cpu")
    index.add(codes)
    for radius in (0, 4, 20):
        lims, dist, ids = index.range_search(queries, radius)
        f_lims, f_dist, f_ids = ref.range_search(queries, radius + 1)
        np.testing.assert_array_equal(lims, f_lims)
        assert (dist <= radius).all() and (dist == radius).any() | (radius == 0)
        for i in range(10):
            seg, f_seg = slice(lims[i], lims[i + 1]), slice(f_lims[i], f_lims[i + 1])
            order = np.argsort(f_ids[f_seg])
            np.testing.assert_array_equal(ids[seg], f_ids[f_seg][order])  # ascending position
            np.testing.assert_array_equal(dist[seg], f_dist[f_seg][order])


def test_one_table_hash_finds_what_faiss_index_binary_hash_finds():
    codes, _ = clustered_codes(6000, 64, n_clusters=60, flip_prob=0.05, seed=4)
    queries = codes[::97].copy()
    queries[:, 0] ^= 1
    for b, nflip in ((12, 1), (16, 2)):
        ref = faiss.IndexBinaryHash(64, b)
        ref.nflip = nflip
        ref.add(codes)
        index = ft.FaissHash(64, b, nflip=nflip)
        index.add(codes)
        f_dist, _ = ref.search(queries, 20)
        dist, _ = index.search(queries, 20)
        np.testing.assert_array_equal(np.sort(dist, axis=1), np.sort(f_dist, axis=1))
        f_lims, _, f_rids = ref.range_search(queries, 6)
        lims, _, rids = index.range_search(queries, 5)
        np.testing.assert_array_equal(lims, f_lims)
        for i in range(queries.shape[0]):
            assert set(rids[lims[i] : lims[i + 1]]) == set(f_rids[f_lims[i] : f_lims[i + 1]])


def test_saved_file_is_a_plain_faiss_index_with_our_ids(tmp_path):
    index, codes = filled("BFlat", ids=np.arange(2000) + 500)
    path = tmp_path / "flat.faiss"
    index.save(path)
    raw = faiss.read_index_binary(str(path))
    assert isinstance(raw, faiss.IndexBinaryIDMap2) and raw.ntotal == 2000
    np.testing.assert_array_equal(faiss.vector_to_array(raw.id_map), np.arange(2000) + 500)
    np.testing.assert_array_equal(raw.reconstruct(777), codes[277])


# -- per-type semantics ----------------------------------------------------------------
@pytest.mark.parametrize("description", ALL)
def test_remove_ids_keeps_the_other_codes_ids_and_order(description, tmp_path):
    ids = np.arange(2000)[::-1] * 3  # decreasing ids: positions and ids differ
    index, codes = filled(description, ids=ids)
    gone = ids[::4]
    assert index.remove_ids(np.concatenate([gone, [10**9]])) == gone.size
    keep = ~np.isin(ids, gone)
    assert index.ntotal == keep.sum()
    np.testing.assert_array_equal(index.ids, ids[keep])
    np.testing.assert_array_equal(index.codes, codes[keep])
    for i in (0, 7, 1000):
        np.testing.assert_array_equal(index.reconstruct(int(ids[keep][i])), codes[keep][i])
    with pytest.raises(KeyError):
        index.reconstruct(int(gone[3]))
    np.testing.assert_array_equal(index.reconstruct_batch(ids[keep][[3, 1, 2]]), codes[keep][[3, 1, 2]])
    with pytest.raises(KeyError, match=str(gone[0])):
        index.reconstruct_batch([int(ids[keep][0]), int(gone[0])])
    info = index.info()
    assert info["faiss_class"] == index.faiss_class and info["memory_mapped"] is False
    # every remaining code is found under its own id (the id map survived the removal)
    dist, found = index.search(codes[keep][:50], 1)
    assert (dist[:, 0] == 0).all()
    assert np.isin(found[:, 0], ids[keep]).all()
    if description == "BFlat":  # exact: the first stored copy of each code
        _, pos = knn_search(codes[keep], codes[keep][:50], 1, backend="numpy")
        np.testing.assert_array_equal(found, ids[keep][pos])
    # and after a save / load
    index.save(tmp_path / "x")
    loaded = ft.FaissIndex.load(tmp_path / "x")
    assert type(loaded) is type(index) and loaded.params() == index.params()
    np.testing.assert_array_equal(loaded.ids, index.ids)
    np.testing.assert_array_equal(loaded.codes, index.codes)
    np.testing.assert_array_equal(loaded.reconstruct(int(ids[keep][5])), codes[keep][5])


@pytest.mark.parametrize("description", ALL)
def test_k_above_ntotal_pads_after_what_faiss_finds(description):
    index, codes = filled(description, n=400)
    k = 400 + 5000  # FAISS is asked for at most ntotal; the rest is padding
    dist, ids = index.search(codes[:3], k)
    assert dist.shape == ids.shape == (3, k)
    found = ids >= 0
    assert found[:, 0].all() and (dist[:, 0] == 0).all()  # each query is a stored code
    assert (found.sum(axis=1) <= 400).all() and not found[:, 400:].any()
    assert (dist[~found] == PAD_DISTANCE).all()
    for row in range(3):  # what was found comes first, in (distance, position) order
        n_found = int(found[row].sum())
        assert found[row, :n_found].all()
        assert (np.diff(dist[row, :n_found]) >= 0).all()


def test_ivf_is_trained_on_the_first_add_and_needs_nlist_codes():
    index = ft.FaissIVF(64, 32, nprobe=32)
    assert not index.is_trained and index.nprobe == 32
    with pytest.raises(ValueError, match="at least nlist=32 codes, got 31"):
        index.add(random_codes(31, 64, seed=1))
    assert index.ntotal == 0 and not index.is_trained
    codes = random_codes(2000, 64, seed=2)
    index.add(codes)
    assert index.is_trained
    index.add(random_codes(5, 64, seed=3))  # later adds may be small
    # all lists probed: IVF is exact in distances
    dist, _ = index.search(codes[:20], 5)
    np.testing.assert_array_equal(dist, knn_search(index.codes, codes[:20], 5, backend="numpy")[0])
    index.reset()
    assert index.ntotal == 0 and index.is_trained


def test_hnsw_has_no_range_search_and_raises_k_to_ef_search():
    index, codes = filled("BHNSW16")
    with pytest.raises(NotImplementedError, match="no range search"):
        index.range_search(codes[:2], 3)
    index.ef_search = 8
    _, ids = index.search(codes[:5], 100)  # k > ef_search: FAISS would return fewer than k
    assert (ids >= 0).all()
    assert index.ef_search == 8


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="nprobe must be <= nlist"):
        ft.FaissIVF(64, 8, nprobe=9)
    with pytest.raises(ValueError, match="nlist must be >= 1"):
        ft.FaissIVF(64, 0)
    with pytest.raises(ValueError, match="M must be >= 2"):
        ft.FaissHNSW(64, 1)
    with pytest.raises(ValueError, match="nhash \\* b must be <= nbits"):
        ft.FaissMultiHash(64, 5, 16)
    with pytest.raises(ValueError, match="at most 64 bits"):
        ft.FaissHash(128, 65)
    with pytest.raises(ValueError, match="nflip must be <= b"):
        ft.FaissHash(64, 8, nflip=9)
    with pytest.raises(ValueError, match="device"):
        ft.FaissFlat(64, device="tpu")
    if not ft.gpu_available():
        with pytest.raises(ValueError, match="faiss-gpu"):
            ft.FaissFlat(64, device="gpu")
    index = ft.FaissIVF(64, 8)
    assert index.nprobe == 8  # default min(16, nlist)
    with pytest.raises(ValueError):
        index.nprobe = 0


@pytest.mark.parametrize("k", [ft.GPU_MAX_K, ft.GPU_MAX_K + 1])
def test_gpu_k_limit_falls_back_to_the_cpu_index_with_a_warning(k):
    index, codes = filled("BFlat", n=3000)
    want = index.search(codes[:3], k)
    # as on a machine with faiss-gpu: k = 2048 asks FAISS for 2049 (the exact cut), so neither
    # k touches the GPU (a GPU search would fail, and with no faiss-gpu here it would raise)
    index._device = "gpu"
    with pytest.warns(RuntimeWarning, match=f"k={k} needs {k + 1} neighbours.*faiss-gpu's limit of 2048"):
        got = index.search(codes[:3], k)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("nbits", [4, 12, 20, 63])
def test_widths_not_a_multiple_of_8_never_reach_faiss(nbits):
    for make in (
        lambda: ft.FaissFlat(nbits),
        lambda: ft.FaissIVF(nbits, 4),
        lambda: ft.FaissHNSW(nbits, 8),
        lambda: ft.FaissHash(nbits, 2),
        lambda: ft.FaissMultiHash(nbits, 1, 2),
    ):
        with pytest.raises(ValueError, match="multiple of 8"):
            make()


# -- files -----------------------------------------------------------------------------
def test_load_refuses_foreign_and_mismatched_files(tmp_path):
    junk = tmp_path / "junk.faiss"
    junk.write_bytes(b"not a faiss file at all" * 10)
    with pytest.raises(CorruptStoreError, match="not a readable FAISS binary index"):
        ft.FaissIndex.load(junk)
    with pytest.raises(FileNotFoundError):
        ft.FaissIndex.load(tmp_path / "missing.faiss")
    store = index_factory(64, "Flat")
    store.add(random_codes(10, 64, seed=1))
    store.save(tmp_path / "flat.zarr")  # a code store: a directory
    with pytest.raises(IncompatibleStoreError, match="is a directory, not a FAISS index file"):
        ft.FaissIndex.load(tmp_path / "flat.zarr")
    bare = faiss.IndexBinaryFlat(64)
    bare.add(random_codes(10, 64, seed=1))
    faiss.write_index_binary(bare, str(tmp_path / "bare.faiss"))
    with pytest.raises(IncompatibleStoreError, match="IndexBinaryIDMap2"):
        ft.FaissIndex.load(tmp_path / "bare.faiss")
    index, _ = filled("BFlat", n=50)
    index.save(tmp_path / "flat.faiss")
    with pytest.raises(IncompatibleStoreError, match="not a FaissIVF"):
        ft.FaissIVF.load(tmp_path / "flat.faiss")
    with pytest.raises(FileExistsError):
        index.save(tmp_path / "flat.faiss")
    index.save(tmp_path / "flat.faiss", overwrite=True)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        index.save(tmp_path / "flat.zarr", overwrite=True)  # the code store made above stays
    assert (tmp_path / "flat.zarr").is_dir() and ft.FaissIndex.load(tmp_path / "flat.faiss").ntotal == 50
    with pytest.raises(FileNotFoundError, match="does not exist"):
        index.save(tmp_path / "no-such-folder" / "x.faiss")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


@pytest.mark.parametrize(("ids", "match"), [([3, 3, 1], "repeated ids"), ([0, -7, 1], "negative id")])
def test_load_refuses_foreign_files_with_ids_the_library_cannot_keep(tmp_path, ids, match):
    # IndexBinaryIDMap2 stores any int64 ids; a foreign file's repeated ids would make
    # remove_ids drop more codes than asked (FAISS removes every copy) and ids ambiguous
    foreign = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(64))
    foreign.add_with_ids(random_codes(3, 64, seed=1), np.array(ids, dtype=np.int64))
    path = tmp_path / "foreign.faiss"
    faiss.write_index_binary(foreign, str(path))
    for mmap in (False, True):
        with pytest.raises(IncompatibleStoreError, match=match):
            ft.FaissIndex.load(path, mmap=mmap)


_MMAP_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from hashsearch.index.faiss_types import FaissIndex
    from hashsearch.index.base import ReadOnlyIndexError

    path, nbits = sys.argv[1], 64
    index = FaissIndex.load(path, mmap=True)
    assert index.memory_mapped
    code = index.reconstruct(int(index.ids[0]))
    dist, ids = index.search(code, 1)
    assert dist[0, 0] == 0, dist
    for name, call in [
        ("add", lambda: index.add(np.zeros((2, 8), np.uint8))),
        ("remove_ids", lambda: index.remove_ids([int(index.ids[0])])),
        ("reset", lambda: index.reset()),
    ]:
        try:
            call()
        except ReadOnlyIndexError as exc:
            print(name, "raised:", exc)
        else:
            print(name, "did not raise")
    print("alive", index.ntotal)
    """
)


@pytest.mark.parametrize("description", ALL)
def test_changing_a_memory_mapped_index_raises_and_the_process_lives(description, tmp_path):
    index, _ = filled(description, n=300)
    path = tmp_path / "mapped.faiss"
    index.save(path)
    proc = subprocess.run([sys.executable, "-c", _MMAP_SCRIPT, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    for name in ("add", "remove_ids", "reset"):
        assert any(line.startswith(f"{name} raised:") and "memory-mapped" in line for line in lines), proc.stdout
    assert lines[-1] == "alive 300"


def test_saving_over_a_memory_mapped_file_leaves_the_mapping_valid(tmp_path):
    path = tmp_path / "index.faiss"
    old, old_codes = filled("BFlat", n=1000, seed=1)
    old.save(path)
    mapped = ft.FaissIndex.load(path, mmap=True)
    before = mapped.search(old_codes[:20], 5)
    new, new_codes = filled("BFlat", n=500, seed=2)
    new.save(path, overwrite=True)  # in place, this would change (or truncate) the mapped bytes
    for got, want in zip(mapped.search(old_codes[:20], 5), before, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(mapped.codes, old_codes)
    reloaded = ft.FaissIndex.load(path)
    assert reloaded.ntotal == 500
    np.testing.assert_array_equal(reloaded.codes, new_codes)
    mapped.save(path, overwrite=True)  # a mapped index can save itself over its own file
    np.testing.assert_array_equal(ft.FaissIndex.load(path).codes, old_codes)


def test_read_only_error_is_a_runtime_error():
    assert issubclass(ReadOnlyIndexError, RuntimeError)
