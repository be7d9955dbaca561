"""The CUDA backend: built where nvcc is, refused with the reason where no GPU is,
and (marked gpu) exact against the oracle where one is.

The whole backend contract (tests/backends/test_contract.py) also runs on it through
the ``backend`` fixture's ``cuda`` case; the cases here add what is specific to the
GPU path: k above FAISS's GPU limit of 2048, query batches and lanes, database tiles.
"""

from __future__ import annotations

import shutil
from typing import ClassVar

import numpy as np
import pytest
from search_helpers import assert_same_arrays, oracle_knn, oracle_range

from hashsearch import BinaryIndex
from hashsearch.backends import make_backend
from hashsearch.backends.cuda import CudaBackend, cuda_info
from hashsearch.errors import BackendUnavailableError
from hashsearch.synthetic import random_codes, tied_codes

REASON = CudaBackend.unavailable_reason()
gpu = pytest.mark.gpu


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH: the build skips the CUDA kernels")
def test_the_build_compiles_the_cuda_kernels_where_nvcc_is():
    # scripts/setup.sh builds with HASHSEARCH_CUDA=AUTO: with nvcc present the CUDA
    # sources must have compiled into hashsearch._cuda (a GPU is not needed for that).
    from hashsearch import _core

    info = cuda_info()
    assert info["built"], info["reason"]
    assert _core.build_info()["cuda"] is True
    assert info["runtime"] >= 12000


@pytest.mark.skipif(REASON is None, reason="a CUDA device is visible")
def test_without_a_gpu_the_backend_is_refused_with_the_reason():
    assert "cuda" not in __import__("hashsearch").available_backends()
    with pytest.raises(BackendUnavailableError, match=r"backend 'cuda' is not available: .+"):
        make_backend("cuda")
    with pytest.raises(BackendUnavailableError, match="cuda"):
        BinaryIndex(64, backend="cuda")


def test_auto_never_picks_cuda():
    assert make_backend("auto").name != "cuda"


@pytest.fixture
def cuda():
    if REASON is not None:
        pytest.skip(f"CUDA backend unavailable: {REASON}")
    return CudaBackend(batch_limit=4 << 20)


@gpu
@pytest.mark.parametrize("nbits", [32, 64, 128, 256, 520])
@pytest.mark.parametrize("k", [1, 2047, 2049, 5000])
def test_any_k_beyond_faiss_gpu_limit(cuda, nbits, k):
    codes = random_codes(20_000, nbits, seed=nbits)
    queries = np.ascontiguousarray(np.concatenate([codes[:3], random_codes(5, nbits, seed=k)]))
    assert_same_arrays(cuda.knn(codes, queries, k), oracle_knn(codes, queries, k), f"cuda k={k}")


@gpu
def test_k_equal_and_above_ntotal_with_heavy_ties(cuda):
    codes = tied_codes(9000, 64, n_unique=3, seed=1)
    queries = random_codes(4, 64, seed=2)
    for k in (8999, 9000, 9100):
        assert_same_arrays(cuda.knn(codes, queries, k), oracle_knn(codes, queries, k), f"k={k}")


@gpu
def test_many_batches_and_tiles(cuda):
    # 70,000 codes = 18 tiles of 4096; a 4 MiB batch limit gives several batches of queries.
    codes = tied_codes(70_000, 64, n_unique=200, seed=3)
    queries = random_codes(300, 64, seed=4)
    assert_same_arrays(cuda.knn(codes, queries, 50), oracle_knn(codes, queries, 50), "batches")
    assert_same_arrays(cuda.range_search(codes, queries, 26), oracle_range(codes, queries, 26), "range")


@gpu
def test_index_keeps_the_database_on_the_device_across_adds(cuda):
    index = BinaryIndex(64, backend="cuda")
    a, b = random_codes(5000, 64, seed=5), random_codes(3000, 64, seed=6)
    index.add(a)
    index.add(b)
    both = np.concatenate([a, b])
    d, i = index.search(b[:10], 20)
    od, oi = oracle_knn(both, b[:10], 20)
    np.testing.assert_array_equal(d, od)
    np.testing.assert_array_equal(i, oi)


@gpu
def test_codes_wider_than_the_kernels_take_are_refused(cuda):
    codes = random_codes(10, 8 * 1024 + 8, seed=7)
    with pytest.raises(ValueError, match="at most 8192 bits"):
        cuda.knn(codes, codes[:1].copy(), 1)


# -- the host-side bookkeeping of the device copy, with a fake extension (no GPU needed) --
class _FakeDatabase:
    """Stands in for ``_cuda.Database``: keeps the codes in NumPy, answers with the NumPy
    backend, and counts the databases made (every upload)."""

    made: ClassVar[list[_FakeDatabase]] = []

    def __init__(self, nbytes, device):
        self.nbytes, self.codes = nbytes, np.empty((0, nbytes), np.uint8)
        _FakeDatabase.made.append(self)

    @property
    def ntotal(self):
        return self.codes.shape[0]

    def add(self, codes):
        self.codes = np.concatenate([self.codes, codes])

    def reset(self):
        self.codes = np.empty((0, self.nbytes), np.uint8)

    def knn(self, queries, k, distances, positions, batch_limit):
        d, p = make_backend("numpy").knn(self.codes, queries, k)
        distances[...], positions[...] = d, p

    def range_search(self, queries, radius, batch_limit):
        return make_backend("numpy").range_search(self.codes, queries, radius)


def _address_of(a):
    return a.__array_interface__["data"][0]


@pytest.fixture
def fake_cuda(monkeypatch):
    import types

    import hashsearch.backends.cuda as cuda_mod

    fake = types.SimpleNamespace(Database=_FakeDatabase, MAX_BITS=1024)
    monkeypatch.setattr(cuda_mod, "_cuda", fake)
    _FakeDatabase.made = []
    return CudaBackend(device=0)


def test_fake_device_copy_follows_adds_reallocation_removal_and_reset(fake_cuda):
    codes = tied_codes(3000, 64, 50, seed=20)
    index = BinaryIndex(64, fake_cuda)
    index.add(codes[:10])
    gen = fake_cuda.generation
    for lo, hi in [(10, 1000), (1000, 1025), (1025, 3000)]:  # 1024 -> 2048 -> 3000 rows: reallocated
        index.add(codes[lo:hi])
        assert fake_cuda.generation > gen
        gen = fake_cuda.generation
        made = len(_FakeDatabase.made)
        assert_same_arrays(index.search(codes[:9], 12), oracle_knn(codes[:hi], codes[:9], 12))
        assert len(_FakeDatabase.made) == made  # answered from the kept copy, no upload
    index.remove_ids(np.arange(0, 3000, 4))  # attach
    kept = np.delete(codes, np.arange(0, 3000, 4), axis=0)
    d, p = index.search(codes[:9], 12)
    want_d, want_p = oracle_knn(kept, codes[:9], 12)
    np.testing.assert_array_equal(d, want_d)
    assert fake_cuda._db.ntotal == 2250
    index.reset()
    assert fake_cuda._db is None and index.search(codes[:2], 3)[1].max() == -1


def test_fake_device_copy_never_answers_for_another_array(fake_cuda):
    from hashsearch.functional import knn_search

    codes = random_codes(2000, 64, seed=21)
    index = BinaryIndex(64, fake_cuda)
    index.add(codes)
    # same shape, other contents: uploaded for the call, never the index's copy
    other = random_codes(2000, 64, seed=22)
    assert_same_arrays(knn_search(other, codes[:5], 7, backend=fake_cuda), oracle_knn(other, codes[:5], 7))
    # an array at the very address of the index's rows that is not the index's buffer
    # (what a new array at a dropped buffer's reused address looks like): uploaded
    import ctypes

    ptr = ctypes.cast(_address_of(index.codes), ctypes.POINTER(ctypes.c_uint8))
    alias = np.ctypeslib.as_array(ptr, shape=index.codes.shape)
    made = len(_FakeDatabase.made)
    knn_search(alias, codes[:5], 7, backend=fake_cuda)
    assert len(_FakeDatabase.made) == made + 1
    made = len(_FakeDatabase.made)
    index.search(codes[:5], 7)  # the index's own rows: the kept copy
    assert len(_FakeDatabase.made) == made
    # the index dropped, a new array of the same shape (perhaps at the same address)
    del index
    again = np.empty_like(codes)
    again[:] = random_codes(2000, 64, seed=23)
    assert_same_arrays(knn_search(again, codes[:5], 7, backend=fake_cuda), oracle_knn(again, codes[:5], 7))
    # a copy of the rows is another array too
    copy = codes.copy()
    made = len(_FakeDatabase.made)
    knn_search(copy, codes[:5], 7, backend=fake_cuda)
    assert len(_FakeDatabase.made) == made + 1


# -- the device-state paths on a real GPU ------------------------------------------------
@gpu
def test_device_copy_after_removal_reset_and_reallocating_adds(cuda):
    codes = tied_codes(3000, 64, 50, seed=24)
    index = BinaryIndex(64, cuda)
    index.add(codes[:10])
    for lo, hi in [(10, 1000), (1000, 1025), (1025, 3000)]:  # the buffer is reallocated
        index.add(codes[lo:hi])
        assert_same_arrays(index.search(codes[:9], 12), oracle_knn(codes[:hi], codes[:9], 12))
    index.remove_ids(np.arange(0, 3000, 4))  # attach
    kept = np.delete(codes, np.arange(0, 3000, 4), axis=0)
    d, _ = index.search(codes[:9], 12)
    np.testing.assert_array_equal(d, oracle_knn(kept, codes[:9], 12)[0])
    index.reset()
    assert index.search(codes[:2], 3)[1].max() == -1
    index.add(codes[:100])
    assert_same_arrays(index.search(codes[:4], 5), oracle_knn(codes[:100], codes[:4], 5))


@gpu
def test_the_same_backend_instance_searches_other_arrays_after_an_index(cuda, tmp_path):
    from hashsearch import CodeStore
    from hashsearch.functional import knn_search

    codes = random_codes(4000, 64, seed=25)
    index = BinaryIndex(64, cuda)
    index.add(codes)
    index.search(codes[:3], 4)
    del index
    other = random_codes(4000, 64, seed=26)
    assert_same_arrays(knn_search(other, codes[:5], 7, backend=cuda), oracle_knn(other, codes[:5], 7))
    with CodeStore.create(tmp_path / "s.zarr", 64, shard_rows=1024) as store:
        store.append(other)
    with CodeStore.open(tmp_path / "s.zarr") as store:
        d, i = store.search(codes[:5], 7, backend=cuda)
    want_d, want_i = oracle_knn(other, codes[:5], 7)
    np.testing.assert_array_equal(d, want_d)
    np.testing.assert_array_equal(i, want_i)
