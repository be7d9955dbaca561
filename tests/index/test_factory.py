"""hashsearch.index_factory: each string builds the type and parameters its table says."""

from __future__ import annotations

import importlib.util
import sys

import pytest

import hashsearch
from hashsearch import BinaryIndex, index_factory
from hashsearch.index import faiss_types as ft
from hashsearch.index.factory import FACTORY_STRINGS

HAVE_MIH = importlib.util.find_spec("hashsearch.index.mih") is not None


@pytest.mark.parametrize(
    ("description", "cls", "params"),
    [
        ("BFlat", ft.FaissFlat, {"device": "cpu"}),
        ("BIVF1024", ft.FaissIVF, {"nlist": 1024, "nprobe": 16}),
        ("BIVF4", ft.FaissIVF, {"nlist": 4, "nprobe": 4}),
        ("BHNSW32", ft.FaissHNSW, {"M": 32, "ef_construction": 40, "ef_search": 64}),
        ("BHash16", ft.FaissHash, {"b": 16, "nflip": 2}),
        ("BHash4x16", ft.FaissMultiHash, {"nhash": 4, "b": 16, "nflip": 2}),
        ("BMultiHash2x24", ft.FaissMultiHash, {"nhash": 2, "b": 24, "nflip": 2}),
        (" BHash8 ", ft.FaissHash, {"b": 8, "nflip": 2}),
    ],
)
def test_faiss_strings_build_their_types(description, cls, params):
    index = index_factory(64, description, **({"device": "cpu"} if cls is ft.FaissFlat else {}))
    assert type(index) is cls
    assert index.nbits == 64 and index.ntotal == 0 and index.exact is (cls is ft.FaissFlat)
    assert index.params() == params
    rebuilt = index_factory(64, index.factory_string)  # the string round-trips
    assert type(rebuilt) is cls and rebuilt.params() == index.params()
    info = index.info()
    assert info["type"] == cls.__name__ and info["factory"] == index.factory_string


def test_flat_is_our_binary_index_and_takes_its_parameters():
    index = index_factory(128, "Flat", backend="numpy", num_threads=1)
    assert type(index) is BinaryIndex and index.backend == "numpy" and index.num_threads == 1
    assert index.factory_string == "Flat" and index.info()["params"]["backend"] == "numpy"


def test_keyword_parameters_reach_the_type():
    assert index_factory(64, "BIVF64", nprobe=3).nprobe == 3
    assert index_factory(64, "BHNSW8", ef_search=100).ef_search == 100
    assert index_factory(64, "BHash4x16", nflip=0).nflip == 0
    with pytest.raises(TypeError, match="nprobe"):
        index_factory(64, "BFlat", nprobe=3)


@pytest.mark.parametrize(
    "description", ["", "IVF16", "BIVF", "BIVF0", "BHNSW-3", "bflat", "Flat,BFlat", "BIVF16_HNSW8"]
)
def test_unknown_strings_list_the_known_forms(description):
    with pytest.raises(ValueError, match="known forms: Flat, BFlat"):
        index_factory(64, description)


def test_non_strings_and_bad_widths_are_refused():
    with pytest.raises(TypeError, match="factory string"):
        index_factory(64, 16)
    with pytest.raises(ValueError, match="multiple of 8"):
        index_factory(60, "BFlat")
    assert set(FACTORY_STRINGS) >= {"Flat", "BFlat", "BIVF{nlist}", "BHNSW{M}", "BHash{b}", "MIH", "MIH{m}"}
    assert hashsearch.index_factory is index_factory and "index_factory" in hashsearch.__all__


def test_mih_without_its_module_is_a_clear_import_error(monkeypatch):
    # an installation without the module: None in sys.modules makes its import fail by that name
    monkeypatch.setitem(sys.modules, "hashsearch.index.mih", None)
    with pytest.raises(ImportError, match=r"needs the module hashsearch\.index\.mih.*use 'Flat'"):
        index_factory(64, "MIH")
    assert type(index_factory(64, "Flat")) is BinaryIndex  # the other types still build


@pytest.mark.skipif(not HAVE_MIH, reason="hashsearch.index.mih (issue 9, item 4) is not in this tree")
def test_mih_strings_build_multi_index_hashing():
    from hashsearch.index.mih import MultiIndexHashing

    index = index_factory(64, "MIH")
    assert type(index) is MultiIndexHashing and index.exact is True
    index = index_factory(64, "MIH4")
    assert type(index) is MultiIndexHashing and index.m == 4
