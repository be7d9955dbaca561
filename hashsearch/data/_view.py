"""What the readers share: a view (a subset of sample indices) over N labelled pairs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["LabelledView"]


class LabelledView:
    """Base of :class:`~hashsearch.data.DSRSID` and :class:`~hashsearch.data.DualSourceDataset`.

    A subclass sets ``_all_labels`` (int64 (N,), one label per pair in the file) and
    calls :meth:`_select` once; the view is then ``_indices``, the file indices of its
    items, and ``split`` says how it was chosen.
    """

    split: str
    _all_labels: np.ndarray
    _indices: np.ndarray

    def _select(
        self,
        split: str,
        indices: Sequence[int] | np.ndarray | None,
        split_indices: Callable[[str], np.ndarray],
    ) -> None:
        """Choose the view: explicit ``indices`` ("custom"), "all", or ``split_indices(split)``
        for "train" / "test".

        Raises:
            ValueError: an unknown split or out-of-range indices.
        """
        n = self._all_labels.size
        if indices is not None:
            idx = np.asarray(indices, dtype=np.int64).reshape(-1)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"indices must be in [0, {n}), got min {idx.min()} max {idx.max()}")
            self.split = "custom"
        elif split == "all":
            idx = np.arange(n, dtype=np.int64)
            self.split = split
        elif split in ("train", "test"):
            idx = split_indices(split)
            self.split = split
        else:
            raise ValueError(f"split must be 'all', 'train' or 'test', got {split!r}")
        self._indices = idx

    def __len__(self) -> int:
        return int(self._indices.size)

    @property
    def indices(self) -> np.ndarray:
        """int64 (len,): file index of each item of this view."""
        return self._indices

    @property
    def labels(self) -> np.ndarray:
        """int64 (len,): label of each item of this view."""
        return self._all_labels[self._indices]

    def _file_index(self, i: int) -> int:
        """File index of item ``i`` (negative ``i`` counts from the end).

        Raises:
            IndexError: ``i`` out of range.
        """
        n = len(self)
        if not -n <= int(i) < n:
            raise IndexError(f"index {i} out of range for a dataset of {n} samples")
        return int(self._indices[int(i)])

