"""``index_factory``: every index type from one string, FAISS's binary strings where they exist.

==============================  =============================================  =====  ===========================
string                          index type                                     exact  keyword parameters
==============================  =============================================  =====  ===========================
``"Flat"``                      :class:`~hashsearch.BinaryIndex`: our flat     yes    ``backend``, ``num_threads``
                                scan (native SIMD core, Numba or NumPy)
``"BFlat"``                     :class:`~.faiss_types.FaissFlat`: FAISS        yes    ``device``
                                ``IndexBinaryFlat``
``"BIVF{nlist}"``               :class:`~.faiss_types.FaissIVF`: FAISS         no     ``nprobe`` (min(16, nlist))
                                ``IndexBinaryIVF``, trained on the first add
``"BHNSW{M}"``                  :class:`~.faiss_types.FaissHNSW`: FAISS        no     ``ef_construction`` (40),
                                ``IndexBinaryHNSW`` (no range search)                 ``ef_search`` (64)
``"BHash{b}"``                  :class:`~.faiss_types.FaissHash`: one hash     no     ``nflip`` (2)
                                table on the first b bits
``"BHash{nhash}x{b}"``,         :class:`~.faiss_types.FaissMultiHash`: FAISS   no     ``nflip`` (2)
``"BMultiHash{nhash}x{b}"``     ``IndexBinaryMultiHash``
``"MIH"``, ``"MIH{m}"``         :class:`~.mih.MultiIndexHashing`: exact        yes    ``policy`` ("auto"),
                                multi-index hashing (``m`` chosen from n and          ``num_threads``
                                nbits unless given)
==============================  =============================================  =====  ===========================

The strings that start with ``B`` are exactly FAISS's (``faiss.index_binary_factory``)
and build the FAISS structure they build there, wrapped with the library's
semantics (ids, inclusive range search, ties by position; see
:mod:`hashsearch.index.faiss_types`); ``"BMultiHash{nhash}x{b}"`` is an alias of
FAISS's ``"BHash{nhash}x{b}"``. ``"Flat"`` and ``"MIH"`` are ours.

>>> from hashsearch import index_factory
>>> index_factory(64, "BIVF256", nprobe=8)
FaissIVF(nbits=64, ntotal=0, nlist=256, nprobe=8)

May import :mod:`hashsearch.index`'s modules (``mih`` only when asked for) and the base modules.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from hashsearch._validate import check_nbits
from hashsearch.index.base import IndexType

__all__ = ["FACTORY_STRINGS", "index_factory"]

#: The forms :func:`index_factory` accepts, as the error message lists them.
FACTORY_STRINGS: tuple[str, ...] = (
    "Flat",
    "BFlat",
    "BIVF{nlist}",
    "BHNSW{M}",
    "BHash{b}",
    "BHash{nhash}x{b}",
    "BMultiHash{nhash}x{b}",
    "MIH",
    "MIH{m}",
)

_INT = r"([1-9][0-9]*)"
_FORMS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Flat"), "flat"),
    (re.compile(r"BFlat"), "bflat"),
    (re.compile(rf"BIVF{_INT}"), "ivf"),
    (re.compile(rf"BHNSW{_INT}"), "hnsw"),
    (re.compile(rf"BHash{_INT}"), "hash"),
    (re.compile(rf"B(?:Multi)?Hash{_INT}x{_INT}"), "multihash"),
    (re.compile(rf"MIH(?:{_INT})?"), "mih"),
]


def index_factory(nbits: int, description: str, **params: Any) -> IndexType:
    """Build an empty index of the type ``description`` names (see the module's table).

    Args:
        nbits: code length in bits, a positive multiple of 8 (checked before any
            structure, FAISS's included, sees it).
        description: a factory string, e.g. ``"Flat"``, ``"BIVF1024"``, ``"MIH"``.
        **params: the type's keyword parameters (``nprobe=``, ``ef_search=``,
            ``nflip=``, ``backend=``...).

    Returns:
        An empty :class:`~hashsearch.index.base.IndexType`.

    Raises:
        TypeError: description is not a string, or a parameter the type does not take.
        ValueError: unknown description, bad nbits or bad parameters.
        ImportError: ``"MIH"`` asked for where :mod:`hashsearch.index.mih` is missing.
    """
    nbits = check_nbits(nbits)
    if not isinstance(description, str):
        raise TypeError(f"description must be a factory string, got {type(description).__name__}")
    text = description.strip()
    for pattern, kind in _FORMS:
        match = pattern.fullmatch(text)
        if match:
            return _build(kind, nbits, [int(g) for g in match.groups() if g is not None], params)
    raise ValueError(f"unknown index description {description!r}; known forms: {', '.join(FACTORY_STRINGS)}")


def _build(kind: str, nbits: int, numbers: list[int], params: dict[str, Any]) -> IndexType:
    if kind == "flat":
        from hashsearch.index.flat import BinaryIndex

        return BinaryIndex(nbits, **params)
    if kind == "mih":
        cls = _mih_class()
        if numbers:
            params = {**params, "m": numbers[0]}
        return cls(nbits, **params)
    from hashsearch.index import faiss_types as ft

    if kind == "bflat":
        return ft.FaissFlat(nbits, **params)
    if kind == "ivf":
        return ft.FaissIVF(nbits, numbers[0], **params)
    if kind == "hnsw":
        return ft.FaissHNSW(nbits, numbers[0], **params)
    if kind == "hash":
        return ft.FaissHash(nbits, numbers[0], **params)
    return ft.FaissMultiHash(nbits, numbers[0], numbers[1], **params)


def _mih_class() -> Any:
    """:class:`hashsearch.index.mih.MultiIndexHashing`, imported on first use."""
    try:
        module = importlib.import_module("hashsearch.index.mih")
    except ModuleNotFoundError as exc:
        if exc.name != "hashsearch.index.mih":
            raise
        raise ImportError(
            "index type 'MIH' (multi-index hashing) needs the module hashsearch.index.mih, "
            "which this installation does not have; use 'Flat' for exact search"
        ) from exc
    return module.MultiIndexHashing
