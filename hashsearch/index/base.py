"""The index-type protocol: one API for every structure over packed codes.

An *index type* holds packed binary codes with int64 ids and answers k-NN and
range queries by Hamming distance. Kernel backends (:mod:`hashsearch.backends`)
stay kernels over bare arrays; index types are the structures built on top of
them (the flat scan :class:`~hashsearch.BinaryIndex`, multi-index hashing, the
FAISS binary indexes of :mod:`hashsearch.index.faiss_types`). Every index type
implements :class:`IndexType`:

============================  =============================================================
``add(codes, ids=None)``      append uint8 (n, code_size) codes; the structure gets only
                              the new rows (never the whole database again)
``search(q, k)``              ``(D int32 (nq, k), I int64 (nq, k))``, distance ascending,
                              ties by ascending database position, padded with id -1 and
                              distance ``2**31 - 1`` past ``ntotal``
``range_search(q, radius)``   ``(lims int64 (nq + 1,), D int32 (m,), I int64 (m,))``, every
                              code at distance ``<= radius`` (inclusive), in position order
``remove_ids(ids)``           number removed; the other codes keep their ids and order
``reconstruct(id)``           a copy of one code, uint8 (code_size,)
``ntotal``                    number of codes
``save(path)`` / ``load``     persistence (format per type)
``exact``                     True when ``search`` and ``range_search`` equal a flat scan
                              exactly (ties included); approximate types may miss codes
``repr`` / ``info()``         what the index is: type, factory string, parameters, size
============================  =============================================================

Approximate index types return codes in the same layout and the same order
(distance, then position) among what they find; they may find fewer.

Base layer of :mod:`hashsearch.index`: imports NumPy, :mod:`hashsearch._validate`
and :mod:`hashsearch.errors` only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from hashsearch.errors import HashsearchError

__all__ = ["IndexType", "ReadOnlyIndexError", "order_by_distance_position"]


class ReadOnlyIndexError(HashsearchError, RuntimeError):
    """A change (add, remove, reset) was asked of an index that cannot change, such as a
    FAISS index loaded memory-mapped; the index is left as it was."""


class IndexType(ABC):
    """Base class of every index type (see the module docstring for the contract).

    Subclasses set :attr:`exact` and implement the abstract methods; the
    arguments are checked by each implementation with :mod:`hashsearch._validate`
    (``TypeError`` for a wrong kind, ``ValueError`` for a wrong shape or value), and
    a rejected call leaves the index unchanged.

    Attributes:
        nbits: code length in bits (a positive multiple of 8).
        code_size: bytes per code (``nbits // 8``), as in FAISS.
    """

    #: True when results equal the exact flat scan (ties by ascending position included).
    exact: ClassVar[bool] = True

    nbits: int
    code_size: int

    # -- size -------------------------------------------------------------------------
    @property
    @abstractmethod
    def ntotal(self) -> int:
        """Number of codes in the index."""

    def __len__(self) -> int:
        return self.ntotal

    # -- changes ----------------------------------------------------------------------
    @abstractmethod
    def add(self, codes: Any, ids: Any = None) -> None:
        """Append codes (uint8 (n, code_size) or (code_size,)) with distinct new int64 ids.

        Args:
            codes: packed codes.
            ids: int (n,) distinct non-negative ids not yet in the index; default
                consecutive ids after the largest id assigned so far.
        """

    @abstractmethod
    def remove_ids(self, ids: Any) -> int:
        """Remove the codes with these ids (absent ids are ignored); return how many went."""

    @abstractmethod
    def reconstruct(self, id: int) -> np.ndarray:
        """A copy of the code stored under ``id``, uint8 (code_size,); KeyError when absent."""

    # -- searching --------------------------------------------------------------------
    @abstractmethod
    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """k nearest codes of each query: (D int32 (nq, k), I int64 (nq, k))."""

    @abstractmethod
    def range_search(self, queries: Any, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every code within distance ``<= radius``: (lims int64 (nq + 1,), D int32 (m,), I int64 (m,))."""

    # -- persistence ------------------------------------------------------------------
    @abstractmethod
    def save(self, path: Any, *, overwrite: bool = False) -> None:
        """Write the index to ``path``."""

    @classmethod
    @abstractmethod
    def load(cls, path: Any) -> IndexType:
        """Read an index written by :meth:`save`."""

    # -- description ------------------------------------------------------------------
    @property
    def factory_string(self) -> str:
        """The :func:`hashsearch.index_factory` string that builds an index of this type."""
        return type(self).__name__

    def params(self) -> dict[str, Any]:
        """The type's parameters (JSON-serialisable), e.g. ``{"nlist": 1024, "nprobe": 16}``."""
        return {}

    def info(self) -> dict[str, Any]:
        """What this index is, as a JSON-serialisable dict.

        Returns:
            ``{"type", "factory", "exact", "nbits", "ntotal", "params", "memory_bytes"}``;
            ``memory_bytes`` is the size of what the index holds in RAM (None when unknown).
        """
        return {
            "type": type(self).__name__,
            "factory": self.factory_string,
            "exact": bool(self.exact),
            "nbits": int(self.nbits),
            "ntotal": int(self.ntotal),
            "params": self.params(),
            "memory_bytes": self.memory_bytes(),
        }

    def memory_bytes(self) -> int | None:
        """Bytes of RAM the index's structures take (None when unknown)."""
        return None

    def __repr__(self) -> str:
        params = "".join(f", {key}={value!r}" for key, value in self.params().items())
        return f"{type(self).__name__}(nbits={self.nbits}, ntotal={self.ntotal}{params})"


def order_by_distance_position(distances: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder each row by (distance, position): the library's tie rule.

    Args:
        distances: int32 (nq, k); padding columns hold ``PAD_DISTANCE``.
        positions: int64 (nq, k) database positions; padding holds -1.

    Returns:
        (distances, positions), new arrays of the same shapes; padding stays last
        (its distance is above every real one).
    """
    if distances.size == 0:
        return distances.copy(), positions.copy()
    order = np.lexsort((positions, distances), axis=-1)
    return np.take_along_axis(distances, order, axis=1), np.take_along_axis(positions, order, axis=1)
