"""``pack`` / ``unpack``: value conventions, bit order (pinned against NumPy and FAISS),
input types (NumPy, torch, lists), errors and round trips."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from search_helpers import assert_equal_up_to_ties, oracle_distances, oracle_knn

from hashsearch import BinaryIndex, pack, unpack
from hashsearch.packing import BIT_ORDER, sign_codes

NBITS = [8, 16, 24, 32, 64, 72, 128, 256, 1024]


# -- conventions -----------------------------------------------------------------------
def test_sign_convention_zero_is_one():
    x = np.array([[0.3, -1.2, 0.0, 2.0, -0.1, -5.0, 1.0, -1.0]])
    # bits 1 0 1 1 0 0 1 0, least significant first -> 0b01001101
    np.testing.assert_array_equal(pack(x), [[0b0100_1101]])
    np.testing.assert_array_equal(pack(np.array([-0.0, 0.0, 1e-300, -1e-300] * 2)), [0b0111_0111])
    np.testing.assert_array_equal(pack(np.zeros((2, 8)), encoding="sign"), [[0xFF], [0xFF]])


def test_plus_minus_one_codes():
    pm = np.array([[1, -1, -1, 1, 1, 1, -1, -1, -1, 1, -1, -1, -1, -1, -1, 1]], dtype=np.int8)
    np.testing.assert_array_equal(pack(pm), [[0b0011_1001, 0b1000_0010]])
    np.testing.assert_array_equal(pack(pm.astype(np.float32)), pack(pm))


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int64, np.float64])
def test_zero_one_codes(dtype):
    bits = np.array([[1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0]]).astype(dtype)
    np.testing.assert_array_equal(pack(bits), [[0b1000_0001, 0b0000_0110]])
    # "binary" keeps 0 -> 0 even where "sign" would make it a 1
    np.testing.assert_array_equal(pack(bits, encoding="binary"), pack(bits))
    if dtype is not bool:
        np.testing.assert_array_equal(pack(bits, encoding="sign"), [[0xFF, 0xFF]])


@pytest.mark.parametrize("nbits", NBITS)
def test_bit_order_is_numpy_little(nbits, rng):
    bits = rng.integers(0, 2, size=(13, nbits)).astype(bool)
    expected = np.packbits(bits, axis=1, bitorder="little")
    got = pack(bits)
    assert got.dtype == np.uint8 and got.shape == (13, nbits // 8) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)
    assert BIT_ORDER == "little"
    # bit k is bit (k % 8) of byte k // 8
    single = np.zeros(nbits, dtype=bool)
    single[nbits - 3] = True
    packed = pack(single)
    assert packed[(nbits - 3) // 8] == 1 << ((nbits - 3) % 8) and packed.sum() == packed[(nbits - 3) // 8]


def test_one_dimensional_and_list_input():
    assert pack([1, 0, 0, 0, 0, 0, 0, 0]).shape == (1,)
    np.testing.assert_array_equal(pack([[-2.0] * 8, [3.0] * 8]), [[0], [255]])
    assert unpack(np.array([5], np.uint8)).shape == (8,)


def test_empty_batch():
    out = pack(np.zeros((0, 16)))
    assert out.shape == (0, 2) and out.dtype == np.uint8


# -- FAISS: same bytes, same distances, same neighbours --------------------------------
@pytest.fixture
def faiss_one_thread():
    faiss = pytest.importorskip("faiss")
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield faiss
    faiss.omp_set_num_threads(previous)


@pytest.mark.parametrize("nbits", [8, 24, 64, 72, 256])
def test_pack_matches_faiss_real_to_binary(faiss_one_thread, nbits, rng):
    faiss = faiss_one_thread
    x = rng.standard_normal((20, nbits)).astype(np.float32)
    x[x == 0] = 1.0  # FAISS keeps x > 0; we keep x >= 0: compare away from zero
    out = np.zeros((20, nbits // 8), dtype=np.uint8)
    faiss.real_to_binary(x.size, faiss.swig_ptr(x), faiss.swig_ptr(out))
    np.testing.assert_array_equal(pack(x), out)


@pytest.mark.parametrize("nbits", [16, 32, 72, 128])
def test_faiss_distances_and_results_on_our_codes(faiss_one_thread, nbits, rng):
    faiss = faiss_one_thread
    features = rng.standard_normal((500, nbits))
    features[250:] = features[:250]  # duplicates: many exact ties
    codes = pack(features)
    queries = pack(rng.standard_normal((9, nbits)))
    flat = faiss.IndexBinaryFlat(nbits)
    flat.add(codes)
    fd, fi = flat.search(queries, 500)
    # FAISS's distances on our packed codes are Hamming distances of the unpacked bits
    bits_d = (unpack(queries)[:, None, :] != unpack(codes)[None, :, :]).sum(axis=2)
    np.testing.assert_array_equal(np.sort(bits_d, axis=1), fd)
    np.testing.assert_array_equal(np.take_along_axis(bits_d, fi, axis=1), fd)
    # and its top-k agrees with ours up to the order of ties
    for k in (1, 10, 100):
        fd, fi = flat.search(queries, k)
        ours = BinaryIndex(nbits, backend="numpy")
        ours.add(codes)
        d, i = ours.search(queries, k)
        assert_equal_up_to_ties(d, i, fd, fi)
    assert oracle_knn(codes, queries, 1)[0][0, 0] == fd[0, 0]


# -- sign_codes: the ±1 form of the same rule ------------------------------------------
def test_sign_codes_values_and_dtypes():
    x = np.array([[0.3, 0.0, -0.0, -2.0, 1e-30, -1e-30, np.inf, -np.inf]], dtype=np.float32)
    out = sign_codes(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_array_equal(out, [[1, 1, 1, -1, 1, -1, 1, -1]])  # zero (either sign) is +1
    assert sign_codes(x.astype(np.float64)).dtype == np.float64
    ints = sign_codes(np.array([3, 0, -1], dtype=np.int16))
    assert ints.dtype == np.float32 and ints.tolist() == [1.0, 1.0, -1.0]
    assert sign_codes(np.array([0, 7], dtype=np.uint8)).tolist() == [1.0, 1.0]
    assert sign_codes(np.array([np.nan])).tolist() == [-1.0]  # documented: NaN is not >= 0


def test_sign_codes_pack_to_what_pack_writes(rng):
    x = rng.standard_normal((20, 64))
    x[::3, ::5] = 0.0
    np.testing.assert_array_equal(pack(sign_codes(x)), pack(x))
    # and unpacking gives the signs back
    np.testing.assert_array_equal(unpack(pack(x), encoding="sign"), sign_codes(x))


def test_sign_codes_torch():
    torch = pytest.importorskip("torch")
    x = torch.tensor([[0.0, -0.0, -1e-9, 2.0]], dtype=torch.float64, requires_grad=True)
    out = sign_codes(x)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and not out.requires_grad
    assert out.tolist() == [[1.0, 1.0, -1.0, 1.0]]
    assert sign_codes(torch.tensor([-2, 0, 5])).tolist() == [-1.0, 1.0, 1.0]  # ints give float32
    assert sign_codes(torch.tensor([-2, 0, 5])).dtype == torch.float32
    with pytest.raises(TypeError, match="real"):
        sign_codes(torch.tensor([True, False]))


@pytest.mark.parametrize("bad", [np.array([True, False]), np.array([1 + 1j]), np.array(["a"])])
def test_sign_codes_rejects_non_real_input(bad):
    with pytest.raises(TypeError, match="real"):
        sign_codes(bad)


# -- torch -----------------------------------------------------------------------------
def test_torch_tensors():
    torch = pytest.importorskip("torch")
    x = torch.randn(6, 32, generator=torch.Generator().manual_seed(0))
    expected = pack(x.numpy())
    np.testing.assert_array_equal(pack(x), expected)
    np.testing.assert_array_equal(pack(x.requires_grad_()), expected)  # autograd leaf
    half = x.detach().to(torch.bfloat16)
    np.testing.assert_array_equal(pack(half), pack(half.float().numpy()))
    np.testing.assert_array_equal(pack(x.detach() >= 0), expected)  # bool tensor
    np.testing.assert_array_equal(pack(torch.sign(x.detach()).to(torch.int8)), expected)  # ±1
    np.testing.assert_array_equal(pack((x.detach() >= 0).to(torch.float32)), expected)  # {0, 1}
    np.testing.assert_array_equal(unpack(torch.from_numpy(expected)), unpack(expected))
    with pytest.raises(ValueError, match="NaN or infinite"):
        pack(torch.tensor([[float("nan")] * 8]))


def test_pack_and_search_do_not_import_torch():
    script = (
        "import sys, numpy as np\n"
        "import hashsearch\n"
        "codes = hashsearch.pack(np.random.default_rng(0).standard_normal((100, 64)))\n"
        "index = hashsearch.BinaryIndex(64)\n"
        "index.add(codes)\n"
        "index.search(codes[:2], 3)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


# -- errors ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("x", "exc", "match"),
    [
        (np.array([[np.nan] + [0.0] * 7]), ValueError, "NaN or infinite values \\(1 found\\)"),
        (np.array([[np.inf, -np.inf] + [0.0] * 6]), ValueError, "NaN or infinite values \\(2 found\\)"),
        (np.full((2, 8), np.nan, dtype=np.float16), ValueError, "NaN or infinite"),
        (np.zeros((2, 12)), ValueError, "positive multiple of 8, got 12"),
        (np.zeros((2, 0)), ValueError, "positive multiple of 8, got 0"),
        (np.zeros((2, 2, 8)), ValueError, "shape"),
        (np.zeros(()), ValueError, "shape"),
        (np.array([["a"] * 8]), TypeError, "numeric or bool"),
        (np.zeros((1, 8), dtype=complex), TypeError, "numeric or bool"),
    ],
)
def test_pack_errors(x, exc, match):
    with pytest.raises(exc, match=match):
        pack(x)


def test_bad_encoding_and_unpack_errors():
    with pytest.raises(ValueError, match="encoding must be"):
        pack(np.zeros((1, 8)), encoding="threshold")
    with pytest.raises(ValueError, match="encoding must be"):
        unpack(np.zeros((1, 1), np.uint8), encoding="auto")
    with pytest.raises(TypeError, match="must be uint8"):
        unpack(np.zeros((1, 1), np.int64))
    with pytest.raises(ValueError, match="shape"):
        unpack(np.zeros((1, 0), np.uint8))


# -- round trips -----------------------------------------------------------------------
@pytest.mark.parametrize("nbits", NBITS)
def test_round_trips(nbits, rng):
    codes = rng.integers(0, 256, size=(17, nbits // 8), dtype=np.uint8)
    bits = unpack(codes)
    assert bits.dtype == np.uint8 and bits.shape == (17, nbits) and set(np.unique(bits)) <= {0, 1}
    np.testing.assert_array_equal(pack(bits), codes)
    signs = unpack(codes, encoding="sign")
    assert signs.dtype == np.int8 and set(np.unique(signs)) <= {-1, 1}
    np.testing.assert_array_equal(pack(signs), codes)
    np.testing.assert_array_equal(signs, 2 * bits.astype(np.int8) - 1)
    # real-valued features -> codes -> ±1 keeps every sign (zero counts as positive)
    x = rng.standard_normal((17, nbits))
    x[0, :5] = 0.0
    np.testing.assert_array_equal(unpack(pack(x), encoding="sign"), np.where(x >= 0, 1, -1))
    # Hamming distance of packed codes = number of differing bits
    np.testing.assert_array_equal(oracle_distances(codes[:3], codes), (bits[:3, None] != bits[None]).sum(-1))
