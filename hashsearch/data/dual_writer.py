"""The writer of dual-source datasets: :class:`DualDatasetWriter`.

Owns building a dataset group (format: :mod:`hashsearch.data.dual`) atomically in a
hidden sibling folder, appending samples in batches, computing the stored statistics
and metadata, and moving the finished group into place.

May import numpy, zarr, :mod:`hashsearch._version` and
:mod:`hashsearch.data.dual_format`; never :mod:`hashsearch.data.dual` (which
re-exports the writer) nor the producers that use it (tiler, recipes).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np

from hashsearch._version import __version__
from hashsearch.data.dual_format import (
    ATTR_KEY,
    FORMAT,
    FORMAT_VERSION,
    SPLIT_CODES,
    _band_stats,
    _jsonable,
    rgb_indices,
)

if TYPE_CHECKING:  # pragma: no cover
    import zarr

__all__ = ["DualDatasetWriter"]

logger = logging.getLogger("hashsearch")


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
