"""The contract every search backend implements.

A backend is a set of exact kernels over packed codes; it owns no policy.
:class:`hashsearch.BinaryIndex` (and the out-of-core and distributed searches)
validate the input once, then call a backend with

- ``codes``: uint8 array (n, nbytes), C-contiguous, n >= 0;
- ``queries``: uint8 array (nq, nbytes), C-contiguous;
- ``k >= 1`` (may exceed n), ``radius >= 0``.

Backends return *database positions* (0..n-1), never user ids; ranking is by
Hamming distance ascending, ties broken by ascending position; rows past
``min(k, n)`` hold position -1 and distance :data:`PAD_DISTANCE`.

Backends that keep state per database (a GPU copy of the codes) override the
three state hooks, which :class:`hashsearch.BinaryIndex` calls as its codes
change, handing over only what changed:

- :meth:`Backend.extend` after an ``add``, with only the appended rows;
- :meth:`Backend.attach` when the whole database is replaced (a load,
  ``remove_ids``, which shifts positions);
- :meth:`Backend.reset` when the database is emptied.

Stateless backends (native, numba, numpy) inherit the no-op hooks: their kernels
read the ``codes`` argument of each call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from hashsearch._system import available_cpus
from hashsearch._validate import check_int

__all__ = ["Backend", "PAD_DISTANCE", "PAD_POSITION", "default_num_threads"]

#: Distance reported for the padding rows of ``search`` when k > ntotal (FAISS's value).
PAD_DISTANCE: int = np.iinfo(np.int32).max
#: Position (and id) reported for the padding rows of ``search`` when k > ntotal.
PAD_POSITION: int = -1


def default_num_threads() -> int:
    """Threads used when none are given: ``$HASHSEARCH_NUM_THREADS``, else the CPUs this process may use."""
    import os

    env = os.environ.get("HASHSEARCH_NUM_THREADS")
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"HASHSEARCH_NUM_THREADS must be a positive integer, got {env!r}") from None
        if value < 1:
            raise ValueError(f"HASHSEARCH_NUM_THREADS must be a positive integer, got {env!r}")
        return value
    return available_cpus()


class Backend(ABC):
    """Exact Hamming-distance kernels behind one signature.

    Subclasses set :attr:`name` and implement :meth:`knn`, :meth:`range_search`
    and :meth:`distances`; the arguments are already validated (see the module
    docstring), so kernels do no checking of their own.

    Args:
        num_threads: threads the kernels may use (>= 1); None for
            :func:`default_num_threads`.
    """

    #: Name used by ``BinaryIndex(backend=...)`` and ``HASHSEARCH_BACKEND``.
    name: ClassVar[str] = ""
    #: True when results are exact (every backend of this module is).
    exact: ClassVar[bool] = True

    def __init__(self, num_threads: int | None = None) -> None:
        self._num_threads = 1
        self.num_threads = default_num_threads() if num_threads is None else num_threads

    # -- availability -----------------------------------------------------------------
    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this backend cannot run here, or None when it can."""
        return None

    @classmethod
    def is_available(cls) -> bool:
        """True when this backend can run on this machine."""
        return cls.unavailable_reason() is None

    # -- threads ----------------------------------------------------------------------
    @property
    def num_threads(self) -> int:
        """Threads the kernels use (>= 1)."""
        return self._num_threads

    @num_threads.setter
    def num_threads(self, value: int) -> None:
        self._num_threads = check_int(value, "num_threads")

    @property
    def simd_level(self) -> str | None:
        """The instruction-set path the kernels take (None where it does not apply)."""
        return None

    # -- state hooks (no-ops: the kernels read their ``codes`` argument) ---------------
    def attach(self, codes: np.ndarray) -> None:  # noqa: B027 - a no-op by design (stateless backends)
        """The index's database was replaced as a whole (loaded, or positions shifted by a removal).

        Args:
            codes: uint8 (n, nbytes), C-contiguous, the whole new database (n >= 0).
        """

    def extend(self, new_codes: np.ndarray) -> None:  # noqa: B027 - a no-op by design
        """Rows were appended to the database: the cost of an add is that of its new rows only.

        Args:
            new_codes: uint8 (m, nbytes), C-contiguous, m >= 1, only the appended rows;
                they take positions ``n .. n + m - 1`` after the ``n`` rows already attached.
        """

    def reset(self) -> None:  # noqa: B027 - a no-op by design
        """The database was emptied (what :meth:`attach` with zero rows would say)."""

    # -- kernels ----------------------------------------------------------------------
    @abstractmethod
    def knn(self, codes: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest codes of each query.

        Args:
            codes: uint8 (n, nbytes) database.
            queries: uint8 (nq, nbytes).
            k: neighbours per query, >= 1.

        Returns:
            (distances int32 (nq, k), positions int64 (nq, k)), padded past min(k, n)
            with PAD_DISTANCE / PAD_POSITION.
        """

    @abstractmethod
    def range_search(
        self, codes: np.ndarray, queries: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every code within distance <= radius (inclusive) of each query.

        Args:
            codes: uint8 (n, nbytes) database.
            queries: uint8 (nq, nbytes).
            radius: largest distance kept, >= 0.

        Returns:
            (lims int64 (nq + 1,), distances int32 (m,), positions int64 (m,)); query i's
            results are ``[lims[i]:lims[i + 1]]``, in ascending position order.
        """

    @abstractmethod
    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Full distance matrix.

        Args:
            a: uint8 (na, nbytes).
            b: uint8 (nb, nbytes).

        Returns:
            int32 (na, nb), ``out[i, j] = popcount(a[i] ^ b[j])``.
        """

    def __repr__(self) -> str:
        simd = f", simd_level={self.simd_level!r}" if self.simd_level else ""
        return f"{type(self).__name__}(num_threads={self.num_threads}{simd})"
