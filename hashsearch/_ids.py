"""The id policy shared by :class:`~hashsearch.BinaryIndex` and :class:`~hashsearch.CodeStore`.

Every stored code has an int64 id, distinct and non-negative. When the caller
gives none, ids are consecutive from ``next_id``, the first id above every id
assigned so far (ids of removed codes are never handed out again). Two facts
are tracked because they make lookups free:

- ``increasing``: ids increase strictly with position (binary search needs no
  sort);
- ``positions``: ids equal positions ``0..n-1`` (positions need no mapping).

:class:`IdPolicy` decides the ids of an append and updates this state only when
the append is accepted (:meth:`IdPolicy.accept`), so a rejected append changes
nothing. Whoever stores the ids answers "is one of these already stored?"
(the ``find_clash`` callback), because only it knows where its ids are.

:func:`sorted_lookup` and :func:`find_positions` are the one "ids -> positions"
lookup (binary search over the stored ids sorted) of the indexes and the retriever.

Base layer: imports NumPy and :mod:`hashsearch._validate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hashsearch._validate import as_ids

__all__ = ["IdPolicy", "find_positions", "sorted_lookup"]


@dataclass
class IdPolicy:
    """Id bookkeeping of one collection of codes.

    Attributes:
        next_id: first default id (above every id ever assigned or reserved).
        max_id: largest id ever assigned (-1 for none); ids at or below it may clash.
        increasing: ids increase strictly with position.
        positions: ids are exactly the positions ``0..n-1``.
    """

    next_id: int = 0
    max_id: int = -1
    increasing: bool = True
    positions: bool = True

    def propose(
        self, ids: Any, m: int, *, find_clash: Callable[[np.ndarray], int | None], what: str = "index"
    ) -> np.ndarray:
        """The ids of ``m`` appended codes: ``ids`` checked, or consecutive default ids.

        Nothing is changed: call :meth:`accept` once the append is sure to happen.

        Args:
            ids: int array-like (m,), or None for default ids.
            m: codes appended.
            find_clash: given the new ids (int64 (m,)), return one that is already
                stored, or None; called only when a clash is possible.
            what: "index" or "store", for the message.

        Returns:
            int64 (m,).

        Raises:
            TypeError: ids are not integers.
            ValueError: wrong length, negative, repeated or already stored ids.
        """
        if ids is None:
            return np.arange(self.next_id, self.next_id + m, dtype=np.int64)
        new_ids = as_ids(ids, m)
        if m and int(new_ids.min()) <= self.max_id:
            clash = find_clash(new_ids)
            if clash is not None:
                raise ValueError(f"id {clash} is already in the {what} (ids must be unique)")
        return new_ids

    def accept(self, new_ids: np.ndarray, n_before: int, last_id: int | None) -> None:
        """Record an accepted append of ``new_ids`` after ``n_before`` stored codes.

        Args:
            new_ids: int64 (m,), m >= 1, as returned by :meth:`propose`.
            n_before: codes stored before the append.
            last_id: id at position ``n_before - 1`` (None when empty).
        """
        m = new_ids.shape[0]
        steps = np.diff(new_ids) if m > 1 else None
        first, last = int(new_ids[0]), int(new_ids[-1])
        self.increasing = self.increasing and (last_id is None or first > last_id) and (
            steps is None or bool((steps > 0).all())
        )
        self.positions = self.positions and first == n_before and last == n_before + m - 1 and (
            steps is None or bool((steps == 1).all())
        )
        top = int(new_ids.max())
        self.max_id = max(self.max_id, top)
        self.next_id = max(self.next_id, top + 1)

    def removed(self, remaining: np.ndarray) -> None:
        """Record a removal; ``remaining`` are the ids left, int64 (n,), in position order."""
        n = remaining.shape[0]
        # order is kept, so increasing ids stay increasing; positions shift unless nothing is left
        # of the removed ones before the survivors (checked on the ends: increasing ids 0..n-1 are exact)
        self.positions = self.increasing and (n == 0 or (int(remaining[0]) == 0 and int(remaining[-1]) == n - 1))

    def reserve(self, next_id: int) -> None:
        """Make default ids start at ``next_id`` or later."""
        self.next_id = max(self.next_id, int(next_id))


def sorted_lookup(stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored ids sorted, for :func:`find_positions`.

    Args:
        stored: int64 (n,), ids in position order.

    Returns:
        (sorted ids int64 (n,), their positions int64 (n,)).
    """
    order = np.argsort(stored, kind="stable")
    return stored[order], order.astype(np.int64, copy=False)


def find_positions(
    sorted_ids: np.ndarray,
    order: np.ndarray | None,
    ids: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    missing_in: str | None = None,
) -> np.ndarray:
    """Positions of ``ids`` among stored ids, by binary search over the ids sorted.

    Args:
        sorted_ids: int64 (n,), the stored ids in increasing order.
        order: int64 (n,), the position of each of ``sorted_ids`` (as from
            :func:`sorted_lookup`), or None when the ids increase with position.
        ids: int64, any shape: the ids to find.
        valid: bool, shape of ``ids``: the ids to look up (the others get -1); None for all.
        missing_in: None: an absent id gets -1; a name ("store"): an absent valid id
            raises ``KeyError("id 7 is not in the store")``.

    Returns:
        int64, shape of ``ids``: positions, -1 where absent or not valid.

    Raises:
        KeyError: a valid id is absent and ``missing_in`` is given.
    """
    if sorted_ids.size == 0 or ids.size == 0:
        found = np.zeros(ids.shape, dtype=bool)
        positions = np.full(ids.shape, -1, dtype=np.int64)
    else:
        where = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
        found = sorted_ids[where] == ids
        if valid is not None:
            found &= valid
        positions = np.where(found, where if order is None else order[where], -1).astype(np.int64, copy=False)
    if missing_in is not None:
        missing = ~found if valid is None else valid & ~found
        if missing.any():
            raise KeyError(f"id {int(ids[missing][0])} is not in the {missing_in}")
    return positions
