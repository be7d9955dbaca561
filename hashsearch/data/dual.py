"""Dual-source (PAN + MS) datasets on disk: one Zarr v3 group per dataset.

Every producer in :mod:`hashsearch.data` (the scene tiler and the recipes) writes
this format through :class:`DualDatasetWriter`, and :class:`DualSourceDataset`
reads it back as a map-style dataset of sample dicts.

Layout (``N`` samples; the PAN patch covers exactly the MS patch's ground)::

    dataset.zarr/                 Zarr v3 group
      pan        (N, Cp, Hp, Wp)  PAN patches, source dtype (uint8 / uint16), upright
      ms         (N, Cm, Hm, Wm)  MS patches, Hp = ratio * Hm, Wp = ratio * Wm
      label      (N,)   int64     class index into attrs["classes"] (or an instance id)
      split      (N,)   int8      0 = train, 1 = test, -1 = unassigned
      scene      (N,)   int32     index into attrs["scenes"] of the scene a sample comes from
      bounds     (N, 4) float64   footprint (left, bottom, right, top) in the scene CRS; NaN if none
      pan_origin (N, 2) int64     (row, col) of the patch's top-left pixel in its scene's PAN raster

The image arrays are sharded (one inner chunk per sample, ``shard_samples`` samples
per shard file) so one sample is read without decompressing its neighbours. The
group attribute ``"hashsearch"`` holds the metadata: ``format`` ("hashsearch-dual"),
``format_version``, ``complete``, ``num_samples``, ``pan`` / ``ms`` (shape, dtype,
band names, pixel size; ``ms.rgb`` the positions of the red, green and blue MS bands
for true-colour display, or None), ``ratio``, ``task`` ("class" or "instance"), ``classes``,
``class_values`` (raw label values, when labels came from a raster), ``crs`` (WKT
when all scenes share one, else None), ``scenes``, ``stats`` (per-band mean / std of
each source over the train split, or all samples when there is no split),
``splits`` (how the split was drawn) and ``provenance`` (sources, configuration,
recipe, creation time, hashsearch version).

Atomicity: a writer builds the group in a hidden sibling folder
(``.NAME.partial-XXXX``) and renames it to its final name only after the last array
and the attributes (``complete: true``) are written. A failed build therefore never
leaves a folder under the final name, and the reader refuses any group whose
``complete`` flag is not set.

This module owns the reader (:class:`DualSourceDataset`, :func:`dataset_info`); the
writer lives in :mod:`hashsearch.data.dual_writer` and the shared format constants
and helpers in :mod:`hashsearch.data.dual_format`, both re-exported here. May import
numpy, zarr, those two modules, :mod:`hashsearch.data._view`, ``errors`` and ``splits``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hashsearch.data._view import LabelledView
from hashsearch.data.dual_format import (
    _META_ARRAYS,
    ATTR_KEY,
    FORMAT,
    FORMAT_VERSION,
    SPLIT_CODES,
    _band_stats,
    rgb_indices,
    split_array,
)
from hashsearch.data.dual_writer import DualDatasetWriter
from hashsearch.data.errors import DataNotFoundError, IncompleteDatasetError, MalformedDataError
from hashsearch.data.splits import split_per_class

if TYPE_CHECKING:  # pragma: no cover
    import zarr

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SPLIT_CODES",
    "DualDatasetWriter",
    "DualSourceDataset",
    "dataset_info",
    "rgb_indices",
    "split_array",
]

logger = logging.getLogger("hashsearch")


def _array(group: zarr.Group, key: str) -> zarr.Array:
    """The array ``key`` of a dataset group, or :class:`MalformedDataError` when it is a group."""
    import zarr

    node = group[key]
    if not isinstance(node, zarr.Array):
        raise MalformedDataError(f"{group.store_path}: {key!r} is a group, not an array")
    return node


def _open_group(path: Path) -> tuple[zarr.Group, dict[str, Any]]:
    import zarr

    if not path.exists():
        raise DataNotFoundError(
            f"no dual-source dataset at {path}; build one with `hashsearch dataset build ...` "
            "or `hashsearch dataset tile ...`"
        )
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for "not a group"
        raise MalformedDataError(f"{path} is not a Zarr group ({exc})") from exc
    meta = group.attrs.get(ATTR_KEY)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise MalformedDataError(f"{path} is a Zarr group but not a hashsearch dual-source dataset")
    if meta.get("format_version") != FORMAT_VERSION:
        raise MalformedDataError(
            f"{path} has format version {meta.get('format_version')}; this hashsearch reads {FORMAT_VERSION}"
        )
    if not meta.get("complete"):
        raise IncompleteDatasetError(f"{path} is an incomplete dataset (its build did not finish); build it again")
    n = int(meta["num_samples"])
    for key in ("pan", "ms", *_META_ARRAYS):
        if key not in group or _array(group, key).shape[0] != n:
            raise MalformedDataError(f"{path}: array {key!r} is missing or does not hold {n} samples")
    return group, meta


class DualSourceDataset(LabelledView):
    """A dual-source dataset on disk (:mod:`hashsearch.data.dual` format), map-style.

    Item ``i`` is ``{"pan": (Cp, Hp, Wp), "ms": (Cm, Hm, Wm), "label": int, "index": int}``
    with the stored dtype (uint8 or uint16) and ``index`` the sample's position in the
    whole dataset (stable across splits); ``indices`` and ``labels`` give those of every
    item of the view.

    Args:
        path: the dataset's Zarr group.
        split: "all", "train" or "test" (the stored split).
        indices: explicit sample indices (a custom split); overrides ``split``.
        in_memory: read the image arrays once into memory (small datasets, training).

    Raises:
        DataNotFoundError: nothing at ``path``.
        IncompleteDatasetError: the build that wrote ``path`` did not finish.
        MalformedDataError: not a dual-source dataset, or arrays inconsistent with it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        split: Literal["all", "train", "test"] = "all",
        *,
        indices: Sequence[int] | np.ndarray | None = None,
        in_memory: bool = False,
    ) -> None:
        self.path = Path(path).expanduser()
        self._group, self.meta = _open_group(self.path)
        self._all_labels = np.asarray(_array(self._group, "label")[:], dtype=np.int64)
        self._split = np.asarray(_array(self._group, "split")[:], dtype=np.int8)

        def stored_split(name: str) -> np.ndarray:
            idx = self.split_indices(name)  # type: ignore[arg-type]
            if not idx.size:
                raise ValueError(f"{self.path} has no {name!r} samples (its split is not assigned)")
            return idx

        self._select(split, indices, stored_split)
        # Opened once: looking an array up in the group reads its metadata from disk.
        self._images: dict[str, zarr.Array] = {k: _array(self._group, k) for k in ("pan", "ms")}
        self._cache: dict[str, np.ndarray] | None = None
        if in_memory:
            self._cache = {k: np.asarray(a[:]) for k, a in self._images.items()}

    # ---------------------------------------------------------------- metadata
    @property
    def classes(self) -> list[str] | None:
        """Class names (label k names ``classes[k]``); None for instance-level datasets."""
        return self.meta.get("classes")

    @property
    def stats(self) -> dict[str, dict[str, list[float]]]:
        """Stored per-band ``{"pan": {"mean", "std"}, "ms": {...}}`` in pixel units."""
        s = self.meta["stats"]
        return {"pan": s["pan"], "ms": s["ms"]}

    @property
    def pan_shape(self) -> tuple[int, int, int]:
        c, h, w = self.meta["pan"]["shape"]
        return (int(c), int(h), int(w))

    @property
    def ms_shape(self) -> tuple[int, int, int]:
        c, h, w = self.meta["ms"]["shape"]
        return (int(c), int(h), int(w))

    @property
    def split_codes(self) -> np.ndarray:
        """int8 (len,): stored split code of each item (0 train, 1 test, -1 unassigned)."""
        return self._split[self._indices]

    def array(self, name: str) -> np.ndarray:
        """A per-sample metadata array of this view: "scene", "bounds", "pan_origin", "label", "split"."""
        if name not in _META_ARRAYS:
            raise KeyError(f"unknown array {name!r}; one of {', '.join(_META_ARRAYS)}")
        return np.asarray(_array(self._group, name)[:])[self._indices]

    def split_indices(self, name: Literal["train", "test"]) -> np.ndarray:
        """Dataset indices (int64, sorted) of the stored split ``name``."""
        return np.flatnonzero(self._split == SPLIT_CODES[name]).astype(np.int64)

    def resplit(self, *, test_per_class: int | None = None, test_fraction: float | None = None,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """A new seeded per-class split of the whole dataset: ``(train, test)`` indices.

        Pass them as ``indices=`` to build views. The stored normalisation statistics
        stay those of the stored split.
        """
        return split_per_class(self._all_labels, test_per_class=test_per_class, test_fraction=test_fraction, seed=seed)

    # ---------------------------------------------------------------- reading
    def __getitem__(self, i: int) -> dict[str, Any]:
        j = self._file_index(i)
        source = self._cache if self._cache is not None else self._images
        pan, ms = source["pan"][j], source["ms"][j]
        return {"pan": np.asarray(pan), "ms": np.asarray(ms), "label": int(self._all_labels[j]), "index": j}

    def read(self, items: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Read several items at once.

        Args:
            items: positions in this view, int array (B,).

        Returns:
            ``{"pan": (B, Cp, Hp, Wp), "ms": (B, Cm, Hm, Wm), "label": int64 (B,),
            "index": int64 (B,)}`` in the order of ``items``.
        """
        pos = np.asarray(items, dtype=np.int64).reshape(-1)
        idx = self._indices[pos]
        uniq, inverse = np.unique(idx, return_inverse=True)
        out: dict[str, np.ndarray] = {}
        for key in ("pan", "ms"):
            if self._cache is not None:
                out[key] = self._cache[key][idx]
            else:
                arr = self._images[key]
                block = arr.get_orthogonal_selection((uniq,)) if uniq.size else \
                    np.empty((0, *arr.shape[1:]), arr.dtype)
                out[key] = np.asarray(block)[inverse]
        out["label"] = self._all_labels[idx]
        out["index"] = idx
        return out

    def compute_stats(self, batch: int = 256) -> dict[str, dict[str, list[float]]]:
        """Per-band mean / std of this view's images, computed now (e.g. after :meth:`resplit`)."""
        idx = np.sort(self._indices)
        return {k: _band_stats(a, idx, batch) for k, a in self._images.items()}

    def __repr__(self) -> str:
        return f"DualSourceDataset(path={str(self.path)!r}, split={self.split!r}, len={len(self)})"


def dataset_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Summarise a dual-source dataset: what it holds and where it came from.

    Returns:
        A JSON-ready dict (the CLI's ``hashsearch dataset info``): ``path``, ``format``,
        ``num_samples``, ``task``, ``pan`` / ``ms`` (dtype, shape, band names),
        ``ms_rgb``, ``pixel_size``, ``ratio``, ``splits`` (samples per split) and
        ``split_rule``, ``crs``, ``scenes`` (count), ``sensors`` and
        ``pairs_per_scene`` (when the scenes record them), ``stats``, ``recipe``,
        ``recipe_options``, ``source``, ``created``, ``size_bytes``; then ``classes``
        (train / test / total per class) for task "class", else ``distinct_labels``.
    """
    path = Path(path).expanduser()
    group, meta = _open_group(path)
    labels = np.asarray(_array(group, "label")[:])
    split = np.asarray(_array(group, "split")[:])
    per_split: dict[str, int] = {name: int((split == code).sum()) for name, code in SPLIT_CODES.items()}
    info: dict[str, Any] = {
        "path": str(path),
        "format": f"{meta['format']} v{meta['format_version']}",
        "num_samples": int(meta["num_samples"]),
        "task": meta.get("task"),
        "pan": f"{meta['pan']['dtype']} {tuple(meta['pan']['shape'])} bands={meta['pan']['bands']}",
        "ms": f"{meta['ms']['dtype']} {tuple(meta['ms']['shape'])} bands={meta['ms']['bands']}",
        "ms_rgb": meta["ms"].get("rgb"),
        "pixel_size": {"pan": meta["pan"].get("pixel_size"), "ms": meta["ms"].get("pixel_size")},
        "ratio": meta.get("ratio"),
        "splits": per_split,
        "split_rule": {k: v for k, v in (meta.get("splits") or {}).items() if k != "codes"},
        "crs": meta.get("crs_id") or (meta["crs"][:60] + "..." if meta.get("crs") else None),
        "scenes": len(meta.get("scenes") or []),
        "stats": meta["stats"],
        "recipe": meta["provenance"].get("recipe"),
        "recipe_options": meta["provenance"].get("recipe_options"),
        "source": meta["provenance"].get("source"),
        "created": meta["provenance"].get("created"),
        "size_bytes": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
    }
    scenes = meta.get("scenes") or []
    sensors = [s.get("sensor") for s in scenes if isinstance(s, dict) and "sensor" in s]
    if sensors:
        info["sensors"] = {str(k or "not stated"): sensors.count(k) for k in dict.fromkeys(sensors)}
    if scenes and len(scenes) <= 50 and all(isinstance(s, dict) and "pairs" in s for s in scenes):
        info["pairs_per_scene"] = {str(s.get("name", k)): int(s["pairs"]) for k, s in enumerate(scenes)}
    if meta.get("task") == "class" and meta.get("classes"):
        classes = meta["classes"]
        info["classes"] = {
            name: {
                "train": int(((labels == k) & (split == 0)).sum()),
                "test": int(((labels == k) & (split == 1)).sum()),
                "total": int((labels == k).sum()),
            }
            for k, name in enumerate(classes)
        }
    else:
        info["distinct_labels"] = int(np.unique(labels).size)
    return info
