"""Torch adapters over the :mod:`hashsearch.data` readers (the training contract).

:class:`DualSourceTorchDataset` wraps a reader (:class:`hashsearch.data.DSRSID`,
:class:`hashsearch.data.DualSourceDataset`, or anything map-style whose items are
``{"pan", "ms", "label", "index"}`` NumPy dicts) as a ``torch.utils.data.Dataset`` of
length V whose item ``i`` is::

    {"pan": float32 tensor (Cp, Hp, Wp), "ms": float32 tensor (Cm, Hm, Wm),
     "label": int, "index": int}

Pixels are normalised per band, ``(x - mean[c]) / std[c]``, with the statistics
stored with the dataset (computed on its train split), or given explicitly, so the
train and test views share one normalisation. An optional
:class:`~hashsearch.training.augment.PairedAugment` applies the same flip / rotation
to both sources of a pair. ``index`` is the item's position ``i`` in this view
(0..V-1), the row of the feature matrices F^P, F^M of Algorithm 1; the sample's
position in the file is ``source_indices[i]``.

:func:`dual_source_splits` opens a dataset's stored train and test views at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from hashsearch.data import open_dataset

from .augment import PairedAugment

__all__ = ["DualSourceTorchDataset", "dual_source_splits"]

logger = logging.getLogger("hashsearch")

Stats = Mapping[str, Mapping[str, Sequence[float]]]


def _stats_of(source: Any) -> Stats:
    stored = getattr(source, "stats", None)
    if isinstance(stored, Mapping):
        return stored
    if hasattr(source, "compute_stats"):
        logger.info("no stored statistics for %r: computing them from a sample of this view", source)
        return source.compute_stats()
    raise ValueError("the source has no normalisation statistics; pass stats={'pan': {...}, 'ms': {...}}")


def _mean_std(stats: Stats, key: str, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    if key not in stats or "mean" not in stats[key] or "std" not in stats[key]:
        raise ValueError(f"stats must hold {key!r} with 'mean' and 'std' lists")
    mean = torch.as_tensor(np.asarray(stats[key]["mean"], dtype=np.float32))
    std = torch.as_tensor(np.asarray(stats[key]["std"], dtype=np.float32))
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(
            f"stats[{key!r}] has {tuple(mean.shape)} means and {tuple(std.shape)} stds for {channels} band(s)"
        )
    std = torch.where(std > 1e-6, std, torch.ones_like(std))  # a constant band stays constant, not inf
    return mean.view(-1, 1, 1), std.view(-1, 1, 1)


class DualSourceTorchDataset(Dataset):
    """A :mod:`hashsearch.data` reader as float32, normalised, optionally augmented tensors.

    Args:
        source: a reader (``DSRSID``, ``DualSourceDataset``) or a path to open one.
        split: the split to open when ``source`` is a path.
        stats: ``{"pan": {"mean": [...], "std": [...]}, "ms": {...}}`` in pixel units;
            default: the source's stored statistics (``DSRSID`` has none: they are
            estimated from a seeded sample of the view; pass the train view's for a test view).
        normalize: apply the normalisation (False: raw pixel values as float32).
        augment: a :class:`PairedAugment` (or None); see :meth:`set_epoch`.
        preload: read every image of the view into memory once (small datasets).

    Raises:
        ValueError: statistics that do not match the band counts.
    """

    def __init__(
        self,
        source: Any,
        *,
        split: str = "all",
        stats: Stats | None = None,
        normalize: bool = True,
        augment: PairedAugment | None = None,
        preload: bool = False,
    ) -> None:
        if isinstance(source, (str, os.PathLike)):
            source = open_dataset(source, split)  # type: ignore[arg-type]
        self.source = source
        self.augment = augment
        self.normalize = normalize
        first = source[0] if len(source) else None
        if first is None:
            raise ValueError(f"{source!r} is empty")
        cp, cm = first["pan"].shape[0], first["ms"].shape[0]
        self.stats: Stats | None = None
        if normalize:
            self.stats = stats if stats is not None else _stats_of(source)
            self._pan_ms = _mean_std(self.stats, "pan", cp)
            self._ms_ms = _mean_std(self.stats, "ms", cm)
        self._cache: dict[str, np.ndarray] | None = None
        if preload:
            self._cache = source.read(np.arange(len(source)))

    def __len__(self) -> int:
        return len(self.source)

    @property
    def labels(self) -> np.ndarray:
        """int64 (V,): labels of the items, in order (for the similarity matrix S)."""
        return np.asarray(self.source.labels, dtype=np.int64)

    @property
    def source_indices(self) -> np.ndarray:
        """int64 (V,): position of each item in the underlying file / dataset."""
        return np.asarray(self.source.indices, dtype=np.int64)

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the augmentation (new draws each epoch)."""
        if self.augment is not None:
            self.augment.set_epoch(epoch)

    def _to_tensor(self, x: np.ndarray, mean_std: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x).astype(np.float32, copy=False))
        if mean_std is not None:
            t = (t - mean_std[0]) / mean_std[1]
        return t

    def __getitem__(self, i: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= int(i) < n:
            raise IndexError(f"index {i} out of range for a dataset of {n} samples")
        i = int(i) % n
        if self._cache is not None:
            sample = {key: values[i] for key, values in self._cache.items()}
        else:
            sample = self.source[i]
        pan = self._to_tensor(sample["pan"], self._pan_ms if self.normalize else None)
        ms = self._to_tensor(sample["ms"], self._ms_ms if self.normalize else None)
        if self.augment is not None:
            pan, ms = self.augment(pan, ms, int(sample["index"]))  # the draw follows the file index
        return {"pan": pan, "ms": ms, "label": int(sample["label"]), "index": i}

    def __repr__(self) -> str:
        return f"DualSourceTorchDataset({self.source!r}, normalize={self.normalize}, augment={self.augment})"


def dual_source_splits(
    path: str | os.PathLike[str],
    *,
    augment: PairedAugment | bool = False,
    preload: bool = False,
    **reader_kwargs: Any,
) -> tuple[DualSourceTorchDataset, DualSourceTorchDataset]:
    """The train and test views of a dataset, both normalised with the train statistics.

    Args:
        path: a dual-source Zarr dataset (stored split) or a DSRSID ``.mat`` file
            (standard split; ``test_per_class`` / ``seed`` in ``reader_kwargs``).
        augment: a :class:`PairedAugment` for the train view, or True for the default one.
            The test view is never augmented.
        preload: read the images into memory.
        **reader_kwargs: passed to the reader.

    Returns:
        ``(train, test)``.
    """
    train_src = open_dataset(path, "train", **reader_kwargs)
    test_src = open_dataset(path, "test", **reader_kwargs)
    stats = _stats_of(train_src)
    aug = PairedAugment() if augment is True else (augment or None)
    return (
        DualSourceTorchDataset(train_src, stats=stats, augment=aug, preload=preload),
        DualSourceTorchDataset(test_src, stats=stats, preload=preload),
    )
