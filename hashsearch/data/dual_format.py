"""Constants and helpers of the dual-source dataset format (:mod:`hashsearch.data.dual`).

Owns the format identifiers (``FORMAT``, ``FORMAT_VERSION``, ``ATTR_KEY``), the split
codes and :func:`split_array`, :func:`rgb_indices`, the JSON conversion of attributes
and the streamed per-band statistics of a stored image array: what both the writer
(:mod:`hashsearch.data.dual_writer`) and the reader (:mod:`hashsearch.data.dual`) share.

May import numpy, zarr (for types only) and :mod:`hashsearch.data._view`; never the
writer or the reader (they import this module).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hashsearch.data._view import band_stats

if TYPE_CHECKING:  # pragma: no cover
    import zarr

__all__ = ["ATTR_KEY", "FORMAT", "FORMAT_VERSION", "SPLIT_CODES", "rgb_indices", "split_array"]

FORMAT = "hashsearch-dual"
FORMAT_VERSION = 1
ATTR_KEY = "hashsearch"
#: Values of the ``split`` array.
SPLIT_CODES: dict[str, int] = {"train": 0, "test": 1, "unassigned": -1}
_META_ARRAYS = ("label", "split", "scene", "bounds", "pan_origin")


def split_array(n: int, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The ``split`` array of ``n`` samples: int8 (n,), train / test codes at those
    indices (:data:`SPLIT_CODES`), "unassigned" elsewhere."""
    split = np.full(n, SPLIT_CODES["unassigned"], np.int8)
    split[train], split[test] = SPLIT_CODES["train"], SPLIT_CODES["test"]
    return split


def rgb_indices(bands: Sequence[str]) -> list[int] | None:
    """Positions of the bands named "red", "green" and "blue" (any case), in that order, or None."""
    names = [str(b).lower() for b in bands]
    try:
        return [names.index("red"), names.index("green"), names.index("blue")]
    except ValueError:
        return None


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays, paths and tuples into plain JSON values (for zarr attrs)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value



def _band_stats(arr: zarr.Array, idx: np.ndarray, batch: int) -> dict[str, list[float]]:
    """Per-band mean and (population) std of ``arr[idx]`` (N, C, H, W), streamed in batches."""

    def batches() -> Iterator[np.ndarray]:
        for start in range(0, idx.size, batch):
            sel = idx[start : start + batch]
            if sel.size == sel[-1] - sel[0] + 1:  # contiguous: a plain slice reads whole shards
                yield np.asarray(arr[int(sel[0]) : int(sel[-1]) + 1])
            else:
                yield np.asarray(arr.get_orthogonal_selection((sel,)))

    return band_stats(batches(), arr.shape[1])

