"""The CUDA backend: built where nvcc is, refused with the reason where no GPU is,
and (marked gpu) exact against the oracle where one is.

The whole backend contract (tests/backends/test_contract.py) also runs on it through
the ``backend`` fixture's ``cuda`` case; the cases here add what is specific to the
GPU path: k above FAISS's GPU limit of 2048, query batches and lanes, database tiles.
"""

from __future__ import annotations

import shutil

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
