"""What the readers share: a view (a subset of sample indices) over N labelled pairs,
and per-band statistics streamed over batches of images."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

__all__ = ["LabelledView", "band_stats"]


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


def band_stats(batches: Iterable[np.ndarray], channels: int) -> dict[str, list[float]]:
    """Per-band mean and (population) standard deviation over batches of images.

    Args:
        batches: arrays (B, C, H, W) of any numeric dtype, ``C == channels``.
        channels: band count (the length of the result when there are no pixels).

    Returns:
        ``{"mean": [C floats], "std": [C floats]}`` in the pixel units of the input
        (zeros when the batches hold no pixels).
    """
    s1 = np.zeros(channels)
    s2 = np.zeros(channels)
    count = 0
    for batch in batches:
        x = np.asarray(batch, dtype=np.float64)
        s1 += x.sum(axis=(0, 2, 3))
        s2 += np.einsum("nchw,nchw->c", x, x)
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = s1 / max(count, 1)
    std = np.sqrt(np.maximum(s2 / max(count, 1) - mean * mean, 0.0))
    return {"mean": mean.tolist(), "std": std.tolist()}
