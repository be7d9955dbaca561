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
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np

from hashsearch._version import __version__
from hashsearch.data._view import LabelledView, band_stats
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


class DualDatasetWriter:
    """Write a dual-source dataset, atomically (see the module docstring).

    Use as a context manager: samples are appended in batches, :meth:`finalize` writes
    the metadata and moves the group into place; leaving the ``with`` block on an
    exception (or without finalizing) deletes the partial group.

    Example::

        with DualDatasetWriter(out, pan_shape=(1, 64, 64), ms_shape=(4, 16, 16),
                               pan_dtype="uint16", ms_dtype="uint16") as w:
            w.append(pan_batch, ms_batch, labels)
            w.finalize(classes=["forest", "river"], split=split_codes)

    Args:
        out: final path of the group (conventionally ``*.zarr``).
        pan_shape: (Cp, Hp, Wp) of one PAN patch.
        ms_shape: (Cm, Hm, Wm) of one MS patch.
        pan_dtype, ms_dtype: numpy dtypes of the stored pixels.
        shard_samples: samples per shard file (one inner chunk per sample).
        overwrite: replace an existing dataset at ``out`` (only when finalizing).

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ValueError: shapes that are not 3-D positive.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        pan_shape: Sequence[int],
        ms_shape: Sequence[int],
        pan_dtype: Any = np.uint8,
        ms_dtype: Any = np.uint8,
        shard_samples: int = 256,
        overwrite: bool = False,
    ) -> None:
        import zarr

        self.out = Path(out).expanduser().absolute()
        if self.out.exists() and not overwrite:
            raise FileExistsError(f"{self.out} exists; pass overwrite=True (CLI: --overwrite) to replace it")
        for name, shape in (("pan_shape", pan_shape), ("ms_shape", ms_shape)):
            if len(shape) != 3 or min(shape) < 1:
                raise ValueError(f"{name} must be (C, H, W) with positive sizes, got {tuple(shape)}")
        self.pan_shape = tuple(int(s) for s in pan_shape)
        self.ms_shape = tuple(int(s) for s in ms_shape)
        self.pan_dtype = np.dtype(pan_dtype)
        self.ms_dtype = np.dtype(ms_dtype)
        self.shard_samples = int(shard_samples)
        self.overwrite = overwrite
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.parent / f".{self.out.name}.partial-{uuid.uuid4().hex[:8]}"
        self._group = zarr.open_group(str(self.tmp), mode="w-", zarr_format=3)
        self._group.attrs[ATTR_KEY] = {"format": FORMAT, "format_version": FORMAT_VERSION, "complete": False}
        s = self.shard_samples
        self._arrays: dict[str, zarr.Array] = {
            "pan": self._group.create_array(
                "pan", shape=(0, *self.pan_shape), dtype=self.pan_dtype,
                chunks=(1, *self.pan_shape), shards=(s, *self.pan_shape),
            ),
            "ms": self._group.create_array(
                "ms", shape=(0, *self.ms_shape), dtype=self.ms_dtype,
                chunks=(1, *self.ms_shape), shards=(s, *self.ms_shape),
            ),
            "label": self._group.create_array("label", shape=(0,), dtype=np.int64, chunks=(65536,)),
            "split": self._group.create_array("split", shape=(0,), dtype=np.int8, chunks=(65536,), fill_value=-1),
            "scene": self._group.create_array("scene", shape=(0,), dtype=np.int32, chunks=(65536,)),
            "bounds": self._group.create_array("bounds", shape=(0, 4), dtype=np.float64, chunks=(16384, 4),
                                               fill_value=np.nan),
            "pan_origin": self._group.create_array("pan_origin", shape=(0, 2), dtype=np.int64, chunks=(16384, 2),
                                                   fill_value=-1),
        }
        self._buffer: dict[str, list[np.ndarray]] = {k: [] for k in self._arrays}
        self._buffered = 0
        self._written = 0
        self._done = False

    # -------------------------------------------------------------- appending
    def __len__(self) -> int:
        return self._written + self._buffered

    def append(
        self,
        pan: np.ndarray,
        ms: np.ndarray,
        label: np.ndarray | Sequence[int],
        *,
        bounds: np.ndarray | None = None,
        scene: np.ndarray | int | None = None,
        pan_origin: np.ndarray | None = None,
        split: np.ndarray | int | None = None,
    ) -> None:
        """Append a batch of B pairs.

        Args:
            pan: (B, Cp, Hp, Wp) array castable to ``pan_dtype`` without change.
            ms: (B, Cm, Hm, Wm) array castable to ``ms_dtype``.
            label: int (B,) labels.
            bounds: float64 (B, 4) footprints (left, bottom, right, top), or None (NaN).
            scene: int32 (B,) scene index per sample, or one int for the batch (default 0).
            pan_origin: int64 (B, 2) (row, col) in the scene's PAN raster, or None (-1).
            split: int8 (B,) split codes (:data:`SPLIT_CODES`), or one code, or None (-1).

        Raises:
            ValueError: inconsistent batch sizes or patch shapes.
            TypeError: pixel values that the stored dtype cannot hold exactly.
        """
        if self._done:
            raise RuntimeError("the writer is finalized or aborted")
        pan = np.asarray(pan)
        ms = np.asarray(ms)
        b = pan.shape[0] if pan.ndim == 4 else -1
        if pan.shape[1:] != self.pan_shape or pan.ndim != 4:
            raise ValueError(f"pan batch must be (B, {', '.join(map(str, self.pan_shape))}), got {pan.shape}")
        if ms.ndim != 4 or ms.shape[1:] != self.ms_shape or ms.shape[0] != b:
            raise ValueError(f"ms batch must be ({b}, {', '.join(map(str, self.ms_shape))}), got {ms.shape}")
        for name, arr, dtype in (("pan", pan, self.pan_dtype), ("ms", ms, self.ms_dtype)):
            if arr.dtype != dtype and not np.can_cast(arr.dtype, dtype, casting="safe"):
                raise TypeError(f"{name} batch has dtype {arr.dtype}, which {dtype} cannot hold exactly")

        def column(value: Any, dtype: Any, shape: tuple[int, ...], default: Any) -> np.ndarray:
            if value is None:
                return np.full((b, *shape), default, dtype=dtype)
            arr = np.asarray(value, dtype=dtype)
            if arr.ndim == 0:
                return np.full((b, *shape), arr, dtype=dtype)
            if arr.shape != (b, *shape):
                raise ValueError(f"expected shape {(b, *shape)}, got {arr.shape}")
            return arr

        cols = {
            "pan": pan.astype(self.pan_dtype, copy=False),
            "ms": ms.astype(self.ms_dtype, copy=False),
            "label": column(label, np.int64, (), 0),
            "split": column(split, np.int8, (), -1),
            "scene": column(scene, np.int32, (), 0),
            "bounds": column(bounds, np.float64, (4,), np.nan),
            "pan_origin": column(pan_origin, np.int64, (2,), -1),
        }
        for key, arr in cols.items():
            self._buffer[key].append(arr)
        self._buffered += b
        if self._buffered >= self.shard_samples:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        if not self._buffered:
            return
        joined = {k: np.concatenate(v) for k, v in self._buffer.items()}
        total = self._buffered
        # Write whole shards only (a partial shard would be rewritten on the next flush),
        # except for the tail at the end.
        take = total if final else (total // self.shard_samples) * self.shard_samples
        start, stop = self._written, self._written + take
        for key, arr in self._arrays.items():
            arr.resize((stop, *arr.shape[1:]))
            arr[start:stop] = joined[key][:take]
            self._buffer[key] = [joined[key][take:]] if take < total else []
        self._written = stop
        self._buffered = total - take

    # -------------------------------------------------------------- finishing
    def finalize(
        self,
        *,
        classes: Sequence[str] | None = None,
        class_values: Sequence[int] | None = None,
        task: Literal["class", "instance"] = "class",
        pan_bands: Sequence[str] | None = None,
        ms_bands: Sequence[str] | None = None,
        ms_rgb: Sequence[int] | None = None,
        pan_pixel_size: Sequence[float] | None = None,
        ms_pixel_size: Sequence[float] | None = None,
        ratio: int | None = None,
        crs: str | None = None,
        crs_id: str | None = None,
        scenes: Sequence[dict[str, Any]] | None = None,
        splits: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        split: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> Path:
        """Write the metadata and statistics and move the group to its final path.

        Args:
            classes: class names; label ``k`` names ``classes[k]`` (task "class").
            class_values: the raw label value of each class (e.g. raster codes).
            task: "class" (same label = relevant) or "instance" (unique label per pair).
            pan_bands, ms_bands: band names (defaults "b1", "b2", ...).
            ms_rgb: positions of the MS bands that show red, green and blue (true
                colour), stored as ``ms.rgb``; default: the bands named "red", "green"
                and "blue" (:func:`rgb_indices`), else None.
            pan_pixel_size, ms_pixel_size: (x, y) ground pixel sizes in CRS units.
            ratio: PAN pixels per MS pixel along each axis.
            crs: WKT of the CRS shared by all samples, or None.
            crs_id: a short name of that CRS (e.g. "EPSG:32119").
            scenes: one dict per scene (name, crs, source paths, ...).
            splits: how the split was drawn (rule, seed, sizes), stored as metadata.
            provenance: extra provenance (recipe, configuration, sources).
            split: int8 (N,) split codes replacing those given to :meth:`append`.
            labels: int64 (N,) labels replacing those given to :meth:`append` (e.g. raw
                raster values remapped to class indices once every scene was seen).

        Returns:
            The final path.

        Raises:
            ValueError: no samples, or a ``split`` of the wrong length.
        """
        if self._done:
            raise RuntimeError("the writer is finalized or aborted")
        self._flush(final=True)
        n = self._written
        if n == 0:
            raise ValueError("no samples were produced; nothing to write (check the purity bar, nodata and sizes)")
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int64)
            if labels.shape != (n,):
                raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
            self._arrays["label"][:] = labels
        if split is not None:
            split = np.asarray(split, dtype=np.int8)
            if split.shape != (n,):
                raise ValueError(f"split must have shape ({n},), got {split.shape}")
            self._arrays["split"][:] = split
        split_arr = self._arrays["split"][:]
        labels = np.asarray(self._arrays["label"][:])
        train = np.flatnonzero(split_arr == SPLIT_CODES["train"])
        stats_idx = train if train.size else np.arange(n)
        stats = {
            "pan": _band_stats(self._arrays["pan"], stats_idx, self.shard_samples),
            "ms": _band_stats(self._arrays["ms"], stats_idx, self.shard_samples),
            "computed_on": "train" if train.size else "all",
            "count": int(stats_idx.size),
        }
        if ms_rgb is None and ms_bands:
            ms_rgb = rgb_indices(ms_bands)
        if ms_rgb is not None:
            ms_rgb = [int(v) for v in ms_rgb]
            if len(ms_rgb) != 3 or not all(0 <= v < self.ms_shape[0] for v in ms_rgb):
                raise ValueError(f"ms_rgb must be 3 band positions below {self.ms_shape[0]}, got {ms_rgb}")
        if classes is None and task == "class":
            classes = [str(v) for v in range(int(labels.max()) + 1)]
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "complete": True,
            "num_samples": n,
            "task": task,
            "classes": list(classes) if classes is not None else None,
            "class_values": list(class_values) if class_values is not None else None,
            "pan": {
                "shape": list(self.pan_shape), "dtype": self.pan_dtype.name,
                "bands": list(pan_bands) if pan_bands else [f"b{i + 1}" for i in range(self.pan_shape[0])],
                "pixel_size": list(pan_pixel_size) if pan_pixel_size is not None else None,
            },
            "ms": {
                "shape": list(self.ms_shape), "dtype": self.ms_dtype.name,
                "bands": list(ms_bands) if ms_bands else [f"b{i + 1}" for i in range(self.ms_shape[0])],
                "rgb": ms_rgb,
                "pixel_size": list(ms_pixel_size) if ms_pixel_size is not None else None,
            },
            "ratio": ratio,
            "crs": crs,
            "crs_id": crs_id,
            "scenes": list(scenes or []),
            "stats": stats,
            "splits": {"codes": SPLIT_CODES, **(splits or {})},
            "provenance": {
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "hashsearch_version": __version__,
                **(provenance or {}),
            },
        }
        self._group.attrs[ATTR_KEY] = _jsonable(meta)
        self._done = True
        self._move_into_place()
        logger.info("wrote dual-source dataset %s: %d pairs", self.out, n)
        return self.out

    def _move_into_place(self) -> None:
        old = None
        if self.out.exists():
            if not self.overwrite:
                raise FileExistsError(f"{self.out} appeared while building; not overwriting it")
            old = self.out.parent / f".{self.out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Delete the partial group (idempotent)."""
        self._done = True
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.tmp.exists():
            if exc_type is None and not self._done:
                logger.warning("DualDatasetWriter for %s left without finalize(); discarding it", self.out)
            self.abort()


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
