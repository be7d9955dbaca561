"""``MultiIndexHashing``: exact sub-linear search by multi-index hashing (factory ``"MIH"``).

Norouzi, Punjani and Fleet ("Fast Search in Hamming Space with Multi-Index Hashing",
CVPR 2012 / TPAMI 2014): every code is cut into ``m`` disjoint substrings and each
substring value is a bucket of one table per substring. A code within Hamming distance
``d`` of a query has some substring within ``floor(d / m)`` of the query's (pigeonhole),
so the k nearest are found by probing the buckets around the query's substrings with a
growing radius, and proven once k verified codes lie below what the radius has covered.
The results equal the flat scan's exactly, ties included (by ascending position): the
index is ``exact`` and passes the contract suite.

>>> from hashsearch.index.mih import MultiIndexHashing
>>> from hashsearch.synthetic import clustered_codes
>>> codes, _ = clustered_codes(20_000, 64, n_clusters=1000, flip_prob=0.03, seed=0)
>>> index = MultiIndexHashing(64)
>>> index.add(codes)
>>> D, I = index.search(codes[:2], k=3)
>>> index.last_stats["path"]
'mih'

Where it wins and where it cannot. Probing radius ``s`` in a table of ``b``-bit
substrings visits ``C(b, s)`` buckets of about ``n / 2**b`` codes each, and proving a
k-th distance ``D_k`` needs radius ``floor(D_k / m)`` in (some of) the ``m`` tables.
Clustered codes (trained hashing codes of one class lie within a few bits of each other)
and near-duplicate queries have a small ``D_k``: a few hundred probes instead of a scan
of the whole database. Uniformly random 64-bit codes do not: at 1M codes the 10th
neighbour of a query lies about 14 bits away, radius 3-4 in 16-bit tables, tens of
thousands of probes and candidates, dearer than the flat scan. The compiled core
(``csrc/mih.cpp``) projects that cost per query from its own candidate counts and
hands such queries to the flat kernel (``policy="auto"``), so the index is never much
slower than :class:`~hashsearch.BinaryIndex`; :attr:`MultiIndexHashing.last_stats`
says which path ran and why.

Choice of ``m`` (:func:`default_m`): substrings of about ``log2(n) - 4`` bits, at least
16 and at most 32 — for 64-bit codes m = 4 up to about 1.5M codes, 3 up to about 45M,
2 beyond (the reference implementation's table). With ``m=None`` the index re-chooses
``m`` (and rebuilds its tables once) when it grows past such a bound; a given ``m`` is
kept.

Storage. The codes and ids live in a flat :class:`~hashsearch.BinaryIndex` over the
native backend (the tables hold positions into it); ``add`` gives the tables only the
new rows (a few rows wait in a scanned tail until enough are there); ``remove_ids``
filters them. ``save`` writes that index's code store (:class:`~hashsearch.CodeStore`
format) with the MIH parameters in its group attributes (key ``hashsearch_index``);
``load`` reads any code store, rebuilding the tables.

Imports the base modules, :mod:`hashsearch.index.base`, :mod:`hashsearch.index.flat`,
the compiled core, and (inside functions) :mod:`hashsearch.index.persistence` and zarr
(to read the saved parameters).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hashsearch._validate import as_codes, as_lookup_ids, check_int, check_k, check_nbits, check_radius
from hashsearch.backends import PAD_POSITION
from hashsearch.errors import BackendUnavailableError, IncompatibleStoreError
from hashsearch.index.base import IndexType
from hashsearch.index.flat import BinaryIndex

try:
    from hashsearch import _core
except ImportError:  # the compiled core is not built: MultiIndexHashing() says so
    _core = None  # type: ignore[assignment]

__all__ = ["MAX_ROWS", "POLICIES", "MIHConfig", "MultiIndexHashing", "default_m"]

logger = logging.getLogger("hashsearch")

#: What answers the queries: the tables unless the flat scan is cheaper, always the
#: tables, or always the flat kernel (results are the same).
POLICIES = ("auto", "mih", "flat")

#: Most codes one index holds (its tables keep 32-bit positions).
MAX_ROWS = 2**32 - 2

#: Group attribute of a saved store that holds the parameters below.
ATTRS_KEY = "hashsearch_index"


@dataclass(frozen=True)
class MIHConfig:
    """Parameters of a :class:`MultiIndexHashing` index.

    Attributes:
        m: substrings (tables), ``ceil(nbits / 64) <= m <= nbits``; None to choose it
            from the number of codes (:func:`default_m`) and re-choose it as they grow.
            Substrings of up to 32 bits are the fast case (``default_m`` stays there).
        policy: ``"auto"`` (per query: the tables unless their projected cost exceeds a
            flat scan's), ``"mih"`` (always the tables) or ``"flat"`` (always the scan).
    """

    m: int | None = None
    policy: str = "auto"

    def checked(self, nbits: int) -> MIHConfig:
        """This configuration after checking it against ``nbits``.

        Raises:
            TypeError: m is not an int, or policy not a string.
            ValueError: m outside ``[ceil(nbits / 32), nbits]``, or an unknown policy.
        """
        if self.m is not None:
            m = check_int(self.m, "m")
            low = (nbits + 63) // 64
            if not low <= m <= nbits:
                raise ValueError(
                    f"m must be between {low} (substrings of at most 64 bits) and {nbits} "
                    f"for {nbits}-bit codes, got {m}"
                )
        if not isinstance(self.policy, str):
            raise TypeError(f"policy must be a string, got {type(self.policy).__name__}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        return self


def _require_core() -> Any:
    if _core is None or not hasattr(_core, "MultiIndex"):
        raise BackendUnavailableError(
            "MultiIndexHashing needs the compiled core hashsearch._core with MultiIndex; build it with "
            "`pip install -e . --no-build-isolation`"
        )
    return _core


def default_m(nbits: int, n: int) -> int:
    """Norouzi's number of substrings for ``n`` codes of ``nbits`` bits.

    Substrings of about ``log2(n) - 4`` bits, at least 16 and at most 32 (64-bit codes:
    4 up to ~1.5M codes, 3 up to ~45M, 2 beyond; 128-bit codes: twice that).

    Raises:
        TypeError, ValueError: bad nbits or n.
    """
    return int(_require_core().mih_default_m(check_nbits(nbits), check_int(n, "n", 0)))


class MultiIndexHashing(IndexType):
    """Exact k-NN and range search by multi-index hashing (factory ``"MIH"``, ``"MIH{m}"``).

    Args:
        nbits: code length in bits, a positive multiple of 8.
        m: substrings; None (default) to choose it from the number of codes and
            re-choose it as they grow (:func:`default_m`).
        policy: ``"auto"``, ``"mih"`` or ``"flat"`` (see :class:`MIHConfig`).
        num_threads: threads over queries (and the flat kernel); default
            ``$HASHSEARCH_NUM_THREADS`` or the CPUs available to this process.

    Raises:
        TypeError, ValueError: bad nbits, m, policy or num_threads.
        BackendUnavailableError: the compiled core is not built.

    Attributes:
        nbits: code length in bits.
        code_size: bytes per code.
        last_stats: what the last search did: ``{"path": "mih" | "flat" | "mixed" |
            "none", "queries", "queries_mih", "queries_flat", "fallback_predicted",
            "lookups", "hits", "candidates", "max_radius", "reason"}``; ``reason`` is
            ``"k"`` or ``"radius"`` when the whole search went flat before probing (k
            candidates, or the radius's buckets, cost more than a scan), ``"cost"``
            when queries gave up while probing, ``"policy"`` for ``policy="flat"``.
            None before the first search.
    """

    exact = True

    def __init__(
        self, nbits: int, m: int | None = None, *, policy: str = "auto", num_threads: int | None = None
    ) -> None:
        core = _require_core()
        self.nbits = check_nbits(nbits)
        self.code_size = self.nbits // 8
        self.config = MIHConfig(m, policy).checked(self.nbits)
        self._flat = BinaryIndex(self.nbits, backend="native", num_threads=num_threads)
        self._core = core.MultiIndex(self.nbits, self._m_for(0))
        self._ids_are_positions: bool | None = True
        self.last_stats: dict[str, Any] | None = None

    # -- properties -------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        """Number of codes in the index."""
        return self._flat.ntotal

    @property
    def m(self) -> int:
        """Substrings (tables) in use now."""
        return int(self._core.m)

    @property
    def policy(self) -> str:
        """Which path answers queries: "auto", "mih" or "flat"."""
        return self.config.policy

    @policy.setter
    def policy(self, value: str) -> None:
        self.config = MIHConfig(self.config.m, value).checked(self.nbits)

    @property
    def num_threads(self) -> int:
        """Threads over queries."""
        return self._flat.num_threads

    @num_threads.setter
    def num_threads(self, value: int) -> None:
        self._flat.num_threads = value

    @property
    def codes(self) -> np.ndarray:
        """Read-only view of the stored codes, uint8 (ntotal, code_size), in position order."""
        return self._flat.codes

    @property
    def ids(self) -> np.ndarray:
        """Read-only view of the ids, int64 (ntotal,), in position order."""
        return self._flat.ids

    @property
    def factory_string(self) -> str:
        """``"MIH"`` (m chosen from n) or ``"MIH{m}"`` (m given)."""
        return "MIH" if self.config.m is None else f"MIH{self.config.m}"

    def params(self) -> dict[str, Any]:
        """m (and whether it is chosen automatically), policy, threads, the substring tables."""
        return {
            "m": self.m,
            "m_auto": self.config.m is None,
            "policy": self.policy,
            "num_threads": self.num_threads,
            "substring_bits": [int(t["bits"]) for t in self._core.tables()],
        }

    def info(self) -> dict[str, Any]:
        """:meth:`IndexType.info` plus ``"tables"`` (per substring: offset, bits, kind,
        buckets, nonempty, memory_bytes), ``"indexed"`` (rows in the tables; the rest
        wait in the scanned tail) and ``"last_search"`` (:attr:`last_stats`)."""
        info = super().info()
        info["tables"] = list(self._core.tables())
        info["indexed"] = int(self._core.indexed)
        info["last_search"] = self.last_stats
        return info

    def memory_bytes(self) -> int:
        """Bytes of the codes and ids and of the tables."""
        return int(self._flat.memory_bytes() + self._core.memory_bytes)

    def __repr__(self) -> str:
        return (
            f"MultiIndexHashing(nbits={self.nbits}, ntotal={self.ntotal}, m={self.m}"
            f"{' (auto)' if self.config.m is None else ''}, policy={self.policy!r}, num_threads={self.num_threads})"
        )

    # -- adding and removing ----------------------------------------------------------
    def add(self, codes: Any, ids: Any = None) -> None:
        """Append codes; the tables take only the new rows.

        Args:
            codes: uint8 (n, code_size), or (code_size,) for one code.
            ids: int (n,) distinct non-negative ids not already in the index; default
                consecutive ids after the largest id assigned so far.

        Raises:
            TypeError, ValueError: as :meth:`BinaryIndex.add`, or more than
                :data:`MAX_ROWS` codes in all; the index is unchanged.
        """
        new_codes = as_codes(codes, self.nbits, "codes")
        before = self._flat.ntotal
        if before + new_codes.shape[0] > MAX_ROWS:
            wanted = before + new_codes.shape[0]
            raise ValueError(f"MultiIndexHashing holds at most {MAX_ROWS} codes, asked for {wanted}")
        self._sync_tables()
        saved_policy = replace(self._flat._id_policy)
        self._flat.add(new_codes, ids)  # validates the ids; a rejected add changes nothing
        n = self._flat.ntotal
        if n == before:
            return
        self._ids_are_positions = None
        m = self._m_for(n)
        try:
            core = self._core
            if m != core.m:
                logger.info("MIH: %d codes, rebuilding the tables with m=%d (was %d)", n, m, core.m)
                core = _require_core().MultiIndex(self.nbits, m)
            core.add(self._flat.codes, self.num_threads)
            self._core = core
        except BaseException:
            # the tables failed (MemoryError...): take the rows back out of the flat index
            # (ids and their bookkeeping as before) and rebuild the tables if they were touched
            self._flat.remove_ids(self._flat.ids[before:].copy())
            self._flat._id_policy = saved_policy
            self._ids_are_positions = None
            if self._core.ntotal != before or m == self._core.m:
                self._rebuild_tables()
            raise

    def remove_ids(self, ids: Any) -> int:
        """Remove the codes with the given ids; ids not in the index are ignored.

        Remaining codes keep their ids and their relative order.

        Returns:
            Number of codes removed.

        Raises:
            TypeError: ids are not integers.
        """
        lookup, valid = as_lookup_ids(ids)
        if self.ntotal == 0 or not valid.any():
            return 0
        keep = ~np.isin(self._flat.ids, lookup[valid])
        if keep.all():
            return 0
        self._sync_tables()
        removed = self._flat.remove_ids(lookup[valid])
        self._ids_are_positions = None
        try:
            self._core.remove(keep.astype(np.uint8), self.num_threads)
        except BaseException:
            self._rebuild_tables()  # the tables may be half filtered: build them over what is left
            raise
        return int(removed)

    def reset(self) -> None:
        """Remove every code (ids restart at 0)."""
        self._flat.reset()
        self._core = _require_core().MultiIndex(self.nbits, self._m_for(0))
        self._ids_are_positions = True

    def flush(self) -> None:
        """Put the rows waiting in the scanned tail into the tables now (searches scan
        them until then; ``add`` does this by itself once enough are there)."""
        self._sync_tables()
        self._core.flush(self._flat.codes, self.num_threads)

    def reconstruct(self, id: int) -> np.ndarray:
        """A copy of the code stored under ``id``, uint8 (code_size,).

        Raises:
            TypeError: id is not an integer. KeyError: no code has this id.
        """
        return self._flat.reconstruct(id)

    def reconstruct_batch(self, ids: Any) -> np.ndarray:
        """Copies of the codes stored under ``ids``: uint8 (m, code_size)."""
        return self._flat.reconstruct_batch(ids)

    # -- searching --------------------------------------------------------------------
    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest codes of each query (equal to the flat scan, ties included).

        Args:
            queries: uint8 (nq, code_size), or (code_size,) for one query.
            k: neighbours per query, >= 1; may exceed ``ntotal``.

        Returns:
            (D, I): D int32 (nq, k) distances, ascending; I int64 (nq, k) ids; equal
            distances by ascending position; past ``ntotal`` id -1 and distance
            2**31 - 1.

        Raises:
            TypeError, ValueError: bad queries or k.
        """
        q = as_codes(queries, self.nbits, "queries")
        k = check_k(k, self.ntotal, q.shape[0])
        self._sync_tables()
        distances = np.empty((q.shape[0], k), dtype=np.int32)
        positions = np.empty((q.shape[0], k), dtype=np.int64)
        stats = self._core.knn(self._flat.codes, q, k, distances, positions, self.num_threads, self.policy)
        self.last_stats = dict(stats)
        return distances, self._to_ids(positions)

    def range_search(self, queries: Any, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every code within Hamming distance ``<= radius`` (inclusive) of each query.

        Returns:
            (lims int64 (nq + 1,), D int32 (m,), I int64 (m,)); query i's results are
            ``[lims[i]:lims[i+1]]``, in position order.

        Raises:
            TypeError, ValueError: bad queries, or a negative or non-integer radius.
        """
        q = as_codes(queries, self.nbits, "queries")
        radius = check_radius(radius, self.nbits)
        self._sync_tables()
        lims, distances, positions, stats = self._core.range_search(
            self._flat.codes, q, radius, self.num_threads, self.policy
        )
        self.last_stats = dict(stats)
        return lims, distances, self._to_ids(positions)

    # -- persistence ------------------------------------------------------------------
    def save(self, path: Any, *, overwrite: bool = False, **store_kwargs: Any) -> None:
        """Write the codes and ids as a code store, with the MIH parameters in its attributes.

        Args:
            path: local path, URL or zarr Store.
            overwrite: replace an existing store.
            **store_kwargs: layout and provenance for :meth:`CodeStore.create`.

        Raises:
            StoreError: a store exists at ``path`` and ``overwrite`` is False.
        """
        attrs = {"type": type(self).__name__, "m": self.config.m, "policy": self.policy}
        # the flat index's own save; save_arrays writes attrs on the empty group, before any
        # row: never a store without them
        self._flat.save(path, overwrite=overwrite, attrs={ATTRS_KEY: attrs}, **store_kwargs)

    @classmethod
    def load(
        cls,
        path: Any,
        *,
        m: int | None = None,
        num_threads: int | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> MultiIndexHashing:
        """Load a saved index, or any code store, and build its tables.

        Args:
            path: local path, URL or zarr Store.
            m: substrings; default the saved ones (automatic for a plain code store).
            num_threads: threads over queries.
            storage_options: fsspec options for URLs.

        Raises:
            StoreError, IncompatibleStoreError, CorruptStoreError: see ``CodeStore.open``;
            IncompatibleStoreError also when the store was saved by another index type.
        """
        from hashsearch.index.persistence import open_store

        saved = dict(_group(path, storage_options).attrs.get(ATTRS_KEY) or {})
        if saved and saved.get("type") != cls.__name__:
            raise IncompatibleStoreError(f"{path} was saved by index type {saved.get('type')!r}, not {cls.__name__}")
        with open_store(path, storage_options) as store:
            flat = BinaryIndex.from_store(store, "native", num_threads=num_threads)
        m = m if m is not None else saved.get("m")
        index = cls(flat.nbits, m, policy=saved.get("policy", "auto"), num_threads=num_threads)
        index._flat = flat
        index._core = _require_core().MultiIndex(index.nbits, index._m_for(flat.ntotal))
        index._core.add(flat.codes, index.num_threads)
        index._core.flush(flat.codes, index.num_threads)
        index._ids_are_positions = None
        return index

    # -- internals --------------------------------------------------------------------
    def _rebuild_tables(self) -> None:
        """New tables over every stored code (after a failed change of the old ones).

        Built aside and swapped in only when complete; if building fails too, empty
        tables take their place, which :meth:`_sync_tables` rebuilds before the next
        use (the error propagates: never a search over tables that miss codes).
        """
        core = _require_core()
        m = self._m_for(self._flat.ntotal)
        self._core = core.MultiIndex(self.nbits, m)  # empty: ntotal 0, caught by _sync_tables
        tables = core.MultiIndex(self.nbits, m)
        tables.add(self._flat.codes, self.num_threads)
        self._core = tables

    def _sync_tables(self) -> None:
        """Rebuild the tables when they do not cover exactly the stored codes (a
        rebuild after a failure failed as well)."""
        if self._core.ntotal != self._flat.ntotal:
            logger.warning(
                "MIH: the tables hold %d of %d codes (an earlier change failed); rebuilding them",
                self._core.ntotal,
                self._flat.ntotal,
            )
            self._rebuild_tables()

    def _m_for(self, n: int) -> int:
        """The m to use with n codes: the configured one, else Norouzi's choice."""
        if self.config.m is not None:
            return self.config.m
        return int(_require_core().mih_default_m(self.nbits, int(n)))

    def _to_ids(self, positions: np.ndarray) -> np.ndarray:
        """Positions (int64, -1 for padding) to ids, in place."""
        n = self.ntotal
        if n == 0:
            return positions
        if self._ids_are_positions is None:
            ids = self._flat.ids
            self._ids_are_positions = bool(ids[0] == 0 and ids[-1] == n - 1 and (n < 2 or (np.diff(ids) == 1).all()))
        if self._ids_are_positions:
            return positions
        pad = positions < 0
        out = np.take(self._flat.ids, np.maximum(positions, 0))
        out[pad] = PAD_POSITION
        return out


def _group(path: Any, storage_options: dict[str, Any] | None) -> Any:
    """The Zarr group of the code store at ``path``, read-only (for the index attributes,
    which :meth:`MultiIndexHashing.save` writes through ``save_arrays(attrs=)``)."""
    import os

    import zarr

    if isinstance(path, (str, bytes)) or hasattr(path, "__fspath__"):
        location = os.fsdecode(os.fspath(path))
        if storage_options:
            return zarr.open_group(location, mode="r", storage_options=storage_options)
        return zarr.open_group(location, mode="r")
    return zarr.open_group(store=path, mode="r")
