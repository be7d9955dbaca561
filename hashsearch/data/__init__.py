"""Datasets for cross-source (PAN <-> MS) retrieval.

- :class:`DSRSID` — lazy reader of the released DSRSID.mat (MATLAB v7.3 / HDF5).
- :func:`tile_scene` / :func:`tile_scenes` — cut co-registered PAN / MS GeoTIFF scenes
  (aligned by geotransform) into a dual-source dataset on disk.
- :class:`DualSourceDataset` / :class:`DualDatasetWriter` — that on-disk format, a
  Zarr v3 group (pan, ms, label, split, footprints, CRS, provenance, statistics).
- :func:`build_recipe` — datasets from the real data in ``$HASHSEARCH_DATA``, one
  module per recipe in :mod:`hashsearch.data.recipes` ("aid-subset", "eurosat-ms",
  "fusebox-landsat7", "nc-landsat7", "pansharpening-pairs"); :data:`RECIPES` lists them.
- :mod:`hashsearch.data.fake` — seeded fake inputs in the exact layouts, for tests.

Every sample is ``{"pan": (Cp, Hp, Wp), "ms": (Cm, Hm, Wm), "label": int, "index": int}``
(NumPy arrays in the stored dtype; torch adapters live in ``hashsearch.training``).
rasterio, h5py and scipy (from the ``data`` extra) are imported only inside the
functions that need them, so importing this package stays light. See docs/datasets.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from hashsearch.data.dsrsid import DSRSID, DSRSID_CLASSES
from hashsearch.data.dual import DualDatasetWriter, DualSourceDataset, dataset_info
from hashsearch.data.errors import (
    AlignmentError,
    DataNotFoundError,
    DatasetError,
    IncompleteDatasetError,
    MalformedDataError,
)
from hashsearch.data.recipes import RECIPES, build_recipe
from hashsearch.data.splits import split_by_group, split_per_class
from hashsearch.data.tiler import Scene, TileConfig, tile_scene, tile_scenes

__all__ = [
    "DSRSID",
    "DSRSID_CLASSES",
    "RECIPES",
    "AlignmentError",
    "DataNotFoundError",
    "DatasetError",
    "DualDatasetWriter",
    "DualSourceDataset",
    "IncompleteDatasetError",
    "MalformedDataError",
    "Scene",
    "TileConfig",
    "build_recipe",
    "dataset_info",
    "open_dataset",
    "split_by_group",
    "split_per_class",
    "tile_scene",
    "tile_scenes",
]


def open_dataset(
    path: str | os.PathLike[str],
    split: Literal["all", "train", "test"] = "all",
    **kwargs: Any,
) -> DSRSID | DualSourceDataset:
    """Open a dataset by path: a DSRSID ``.mat`` file or a dual-source Zarr group.

    Args:
        path: ``*.mat`` (DSRSID) or a dataset folder written by this package.
        split: "all", "train" or "test".
        **kwargs: passed to :class:`DSRSID` or :class:`DualSourceDataset`.

    Returns:
        A :class:`DSRSID` or a :class:`DualSourceDataset`.
    """
    p = Path(path)
    if p.suffix.lower() == ".mat" or p.is_file():
        return DSRSID(p, split, **kwargs)
    return DualSourceDataset(p, split, **kwargs)
