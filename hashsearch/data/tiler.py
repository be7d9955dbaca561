"""Tile co-registered PAN / MS GeoTIFF scenes into a dual-source dataset.

This is how DSRSID itself was made (GF-1 scene pairs cut into 256 x 256 PAN and
64 x 64 MS patches of the same ground). :func:`tile_scene` (one scene) and
:func:`tile_scenes` (several) read the rasters with rasterio, cut pairs, and write a
:mod:`hashsearch.data.dual` Zarr dataset.

Alignment rules (everything goes through the geotransforms, never pixel indices):

1. All rasters (PAN, every MS file, labels) must share one CRS, and have north-up
   geotransforms (no rotation or shear); otherwise :class:`AlignmentError`.
2. The PAN:MS ratio ``r`` is the MS pixel size over the PAN pixel size. It must be
   the same integer along x and y (within a relative 1e-4), else
   :class:`AlignmentError`. ``TileConfig.target_ratio`` (a multiple of ``r``)
   block-averages MS by ``target_ratio / r`` along each axis first (e.g. Landsat's 2
   to GF-1's 4); an averaged pixel that covers any nodata pixel is nodata.
3. The MS grid must nest in the PAN grid: the MS origin lies a whole number of PAN
   pixels from the PAN origin (within 1e-3 pixel). A patch starts on an (effective)
   MS pixel corner, so its PAN patch (``patch_size``) and its MS patch
   (``patch_size / R``, with ``R`` the effective ratio) cover exactly the same
   ground; ``patch_size`` and ``stride`` must be multiples of ``R``.
4. Patches lie inside the intersection of the PAN and the MS extents; rasters whose
   extents do not intersect raise :class:`AlignmentError`.
5. A label raster may have any pixel size and origin (landclass96's origin is offset
   from the bands' by a fraction of a pixel): each PAN pixel takes the label of the
   label pixel containing its centre (nearest neighbour, by geotransform), outside
   the label raster it is nodata. A patch's label is its majority class; its purity
   is the count of that class over all the patch's PAN pixels (nodata and classes
   outside ``TileConfig.classes`` count against it). Patches below
   ``TileConfig.min_purity`` are skipped.
6. A patch is skipped when more than ``max_nodata_fraction`` of its PAN pixels or of
   its MS pixels (any band) equal the raster's nodata value (or the override in
   :class:`TileConfig`).
7. Without a label raster, the dataset is instance-level: each pair's label is its
   own index (a PAN patch must find its own MS patch).

Damaged inputs: every raster is opened through :mod:`hashsearch.data._io`, which
checks that a GeoTIFF's data blocks lie inside the file (a truncated copy is refused
before anything is written) and turns a failed read into a
:class:`MalformedDataError` naming the file, band, window and GDAL's reason.

Labels are stored as indices into the class list: ``TileConfig.classes`` (raw value
to name, fixing the order) or, when not given, the sorted raw values found.

This module owns the configuration, the scene reader and the tiling loop; the grid
registration and pixel helpers live in :mod:`hashsearch.data.tiler_grid`. May import
numpy, rasterio, :mod:`hashsearch.data._io`, ``dual`` (the writer), ``errors``,
``splits`` and ``tiler_grid``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np

from hashsearch._validate import check_int
from hashsearch.data._io import read_band
from hashsearch.data.dual import DualDatasetWriter, split_array
from hashsearch.data.errors import AlignmentError, MalformedDataError
from hashsearch.data.splits import split_per_class
from hashsearch.data.tiler_grid import (
    _block_mean,
    _check_north_up,
    _geometry,
    _is_nodata,
    _nodata,
    _open,
    _patches,
)
from hashsearch.data.tiler_grid import _crs_text as _crs_text  # re-exported (recipes use it)

if TYPE_CHECKING:  # pragma: no cover
    import rasterio

__all__ = ["Scene", "TileBatch", "TileConfig", "iter_scene_tiles", "tile_scene", "tile_scenes"]

logger = logging.getLogger("hashsearch")

@dataclass
class TileConfig:
    """How to cut a scene into pairs.

    Attributes:
        patch_size: PAN patch side in PAN pixels (a multiple of the effective ratio).
        stride: step between patches in PAN pixels (default ``patch_size``: no overlap).
        target_ratio: PAN:MS ratio to reach by block-averaging MS (a multiple of the
            native ratio); None keeps the native ratio.
        min_purity: smallest fraction of a patch's PAN pixels in its majority class.
        max_nodata_fraction: largest fraction of nodata pixels in a kept patch (0: none).
        pan_band: 1-based band of the PAN file.
        ms_bands: 1-based bands of a multi-band MS file (default: all); with one file
            per band, each file's band 1 is used in the order given.
        ms_band_names: names of the MS bands (default: the files' band descriptions or b1..).
        pan_nodata, ms_nodata, label_nodata: override the rasters' nodata values.
        classes: raw label value -> class name; fixes the class list and its order;
            other values count as unlabelled. Default: every value found, sorted.
        test_fraction: fraction of each class put in the test split (None: no split).
        split_seed: seed of the split.
    """

    patch_size: int = 256
    stride: int | None = None
    target_ratio: int | None = None
    min_purity: float = 0.5
    max_nodata_fraction: float = 0.0
    pan_band: int = 1
    ms_bands: Sequence[int] | None = None
    ms_band_names: Sequence[str] | None = None
    pan_nodata: float | None = None
    ms_nodata: float | None = None
    label_nodata: int | None = None
    classes: Mapping[int, str] | None = None
    test_fraction: float | None = None
    split_seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.patch_size, "patch_size")
        if self.stride is not None:
            check_int(self.stride, "stride")
        if self.target_ratio is not None:
            check_int(self.target_ratio, "target_ratio")
        if not 0.0 <= self.min_purity <= 1.0:
            raise ValueError(f"min_purity must be in [0, 1], got {self.min_purity!r}")
        if not 0.0 <= self.max_nodata_fraction <= 1.0:
            raise ValueError(f"max_nodata_fraction must be in [0, 1], got {self.max_nodata_fraction!r}")
        if self.test_fraction is not None and not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction!r}")

    @property
    def step(self) -> int:
        return int(self.stride or self.patch_size)


@dataclass
class Scene:
    """One co-registered scene pair.

    Attributes:
        pan: PAN GeoTIFF.
        ms: MS GeoTIFF (multi-band) or a sequence of single-band GeoTIFFs, one per band.
        labels: optional label raster (integer classes).
        name: a name for provenance (default: the PAN file's stem).
    """

    pan: str | os.PathLike[str]
    ms: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
    labels: str | os.PathLike[str] | None = None
    name: str | None = None

    @property
    def ms_paths(self) -> list[Path]:
        if isinstance(self.ms, (str, os.PathLike)):
            return [Path(self.ms)]
        return [Path(p) for p in self.ms]


@dataclass
class TileBatch:
    """Pairs cut from one strip of a scene (B pairs).

    Attributes:
        pan: (B, 1, P, P) PAN patches, the PAN file's dtype.
        ms: (B, Cm, P/R, P/R) MS patches, the MS files' dtype.
        raw_label: int64 (B,) majority raw label value (-1 without labels).
        purity: float64 (B,) majority fraction (1 without labels).
        bounds: float64 (B, 4) footprint (left, bottom, right, top).
        pan_origin: int64 (B, 2) (row, col) of each patch in the PAN raster.
    """

    pan: np.ndarray
    ms: np.ndarray
    raw_label: np.ndarray
    purity: np.ndarray
    bounds: np.ndarray
    pan_origin: np.ndarray



class _OpenScene:
    """A scene's rasters, opened and checked against the alignment rules (a context manager)."""

    def __init__(self, scene: Scene, config: TileConfig) -> None:
        self.config = config
        self.name = scene.name or Path(scene.pan).stem
        self._all: list[Any] = []
        try:
            self.pan = self._keep(_open(Path(scene.pan), "PAN"))
            self.ms_list = [self._keep(_open(p, "MS")) for p in scene.ms_paths]
            self.lab = self._keep(_open(Path(scene.labels), "label")) if scene.labels is not None else None
            self._check()
        except BaseException:
            self.close()
            raise

    def _keep(self, ds: Any) -> Any:
        self._all.append(ds)
        return ds

    def _check(self) -> None:
        config, pan = self.config, self.pan
        if not 1 <= config.pan_band <= pan.count:
            raise MalformedDataError(f"PAN raster {pan.name} has {pan.count} band(s); pan_band={config.pan_band}")
        ref = self.ms_list[0]
        if len(self.ms_list) == 1:
            bands = list(config.ms_bands) if config.ms_bands is not None else list(range(1, ref.count + 1))
            missing = [b for b in bands if not 1 <= b <= ref.count]
            if missing:
                raise MalformedDataError(
                    f"MS raster {ref.name} has {ref.count} band(s); requested band(s) {missing} are "
                    "missing (bands are numbered from 1)"
                )
            self.sources = [(ref, b) for b in bands]
            default_names = [ref.descriptions[b - 1] or f"b{b}" for b in bands]
        else:
            if config.ms_bands is not None:
                raise ValueError("ms_bands selects bands of one multi-band MS file; with one file per band, "
                                 "list the files in the order wanted")
            self.sources = [(ds, 1) for ds in self.ms_list]
            default_names = [Path(ds.name).stem for ds in self.ms_list]
        if not self.sources:
            raise MalformedDataError(f"no MS bands selected from {ref.name}")
        if config.ms_band_names is not None and len(config.ms_band_names) != len(self.sources):
            raise ValueError(f"ms_band_names has {len(config.ms_band_names)} names for {len(self.sources)} MS bands")
        self.band_names = list(config.ms_band_names) if config.ms_band_names is not None else default_names
        roles = [(pan, "PAN"), *[(m, "MS") for m in self.ms_list], *([(self.lab, "label")] if self.lab else [])]
        for ds, role in roles:
            if ds.crs != pan.crs:
                raise AlignmentError(
                    f"CRS mismatch: {role} raster {ds.name} is in {_crs_text(ds.crs)}, the PAN raster "
                    f"{pan.name} in {_crs_text(pan.crs)}; reproject one of them first"
                )
            _check_north_up(ds, role)
        for m in self.ms_list[1:]:
            if m.transform != ref.transform or m.shape != ref.shape:
                raise MalformedDataError(
                    f"MS band files must share one grid: {m.name} has shape {m.shape} and transform "
                    f"{tuple(m.transform)[:6]}, {ref.name} has {ref.shape} and {tuple(ref.transform)[:6]}"
                )
        dtypes = {ds.dtypes[b - 1] for ds, b in self.sources}
        if len(dtypes) > 1:
            raise MalformedDataError(f"MS bands have different dtypes {sorted(dtypes)}; convert them to one")
        self.ms_dtype = np.dtype(dtypes.pop())
        self.pan_dtype = np.dtype(pan.dtypes[config.pan_band - 1])
        self.geo = _geometry(pan, ref, config)
        self.pan_nodata = _nodata(config.pan_nodata, pan, config.pan_band)
        self.ms_nodata = [_nodata(config.ms_nodata, ds, b) for ds, b in self.sources]
        self.label_nodata = None
        if self.lab is not None:
            self.label_nodata = config.label_nodata if config.label_nodata is not None else self.lab.nodata

    @property
    def crs_wkt(self) -> str | None:
        return self.pan.crs.to_wkt() if self.pan.crs else None

    @property
    def crs_id(self) -> str | None:
        return _crs_text(self.pan.crs) if self.pan.crs else None

    def close(self) -> None:
        for ds in self._all:
            ds.close()
        self._all = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tiles(self, progress: bool = False) -> Iterator[TileBatch]:
        from rasterio.windows import Window
        from tqdm.auto import tqdm

        config, geo, pan_ds = self.config, self.geo, self.pan
        p, eff, f = config.patch_size, geo.eff, geo.factor
        q = p // eff  # MS patch side
        if not geo.rows or not geo.cols:
            logger.warning("scene %s: the overlap is smaller than one %d-pixel patch; no pairs", self.name, p)
            return
        tp = pan_ds.transform
        classes = set(config.classes) if config.classes is not None else None
        c_first, c_last = geo.cols[0], geo.cols[-1] + p
        cols_rel = [c - c_first for c in geo.cols]
        ms_cols_rel = [c // eff for c in cols_rel]
        for row in tqdm(geo.rows, desc=f"tiling {self.name}", unit="strip", disable=not progress, leave=False):
            pan_strip = read_band(pan_ds, config.pan_band, "PAN", window=Window(c_first, row, c_last - c_first, p))
            pan_bad = _is_nodata(pan_strip, self.pan_nodata)
            # The native MS window of the same ground.
            mr0 = (row - geo.off_row) // geo.ratio
            mc0 = (c_first - geo.off_col) // geo.ratio
            mh, mw = p // geo.ratio, (c_last - c_first) // geo.ratio
            bands, bads = [], []
            for (ds, b), nd in zip(self.sources, self.ms_nodata, strict=True):
                x = read_band(ds, b, "MS", window=Window(mc0, mr0, mw, mh))
                bad = _is_nodata(x, nd)
                if f > 1:
                    x, bad = _block_mean(x, bad, f, self.ms_dtype)
                    if nd is not None:
                        x[bad] = nd
                bands.append(x)
                bads.append(bad)
            ms_strip = np.stack(bands)                                   # (Cm, q, strip width / eff)
            ms_bad = np.asarray(np.stack(bads).any(axis=0))
            pan_frac = _patches(pan_bad, cols_rel, p).mean(axis=(1, 2))
            ms_frac = _patches(ms_bad, ms_cols_rel, q).mean(axis=(1, 2))
            keep = (pan_frac <= config.max_nodata_fraction) & (ms_frac <= config.max_nodata_fraction)
            raw = np.full(len(cols_rel), -1, np.int64)
            purity = np.ones(len(cols_rel))
            if self.lab is not None:
                lab_strip = _sample_labels(self.lab, tp, row, c_first, p, c_last - c_first, self.label_nodata)
                for k, c in enumerate(cols_rel):
                    raw[k], purity[k] = _majority(lab_strip[:, c : c + p], self.label_nodata, classes)
                keep &= (raw >= 0) & (purity >= config.min_purity)
            if not keep.any():
                continue
            sel = np.flatnonzero(keep)
            cols_abs = np.asarray(geo.cols)[sel]
            left = tp.c + cols_abs * tp.a
            top = np.full(sel.size, tp.f + row * tp.e)
            yield TileBatch(
                pan=_patches(pan_strip[None], [cols_rel[k] for k in sel], p),
                ms=_patches(ms_strip, [ms_cols_rel[k] for k in sel], q),
                raw_label=raw[sel],
                purity=purity[sel],
                bounds=np.stack([left, top + p * tp.e, left + p * tp.a, top], axis=1),
                pan_origin=np.stack([np.full(sel.size, row), cols_abs], axis=1).astype(np.int64),
            )


def iter_scene_tiles(scene: Scene, config: TileConfig, *, progress: bool = False) -> Iterator[TileBatch]:
    """Yield the pairs of one scene, strip by strip (bounded memory), after the skips.

    Args:
        scene: the rasters.
        config: the tiling configuration.
        progress: show a tqdm bar over the strips.

    Yields:
        One :class:`TileBatch` per row of patches that kept at least one pair.

    Raises:
        DataNotFoundError: a raster is missing.
        AlignmentError: CRS mismatch, non-integer ratio, grids that do not nest, no overlap.
        MalformedDataError: a requested band is missing, or MS files disagree.
    """
    with _OpenScene(scene, config) as opened:
        yield from opened.tiles(progress)


def _sample_labels(lab_ds: rasterio.DatasetReader, tp: Any, row: int, col: int, height: int, width: int,
                   nodata: float | None) -> np.ndarray:
    """Label of the label pixel containing each PAN pixel centre of a PAN window (height, width)."""
    from rasterio.windows import Window

    tl = lab_ds.transform
    xs = tp.c + (col + np.arange(width) + 0.5) * tp.a
    ys = tp.f + (row + np.arange(height) + 0.5) * tp.e
    lc = np.floor((xs - tl.c) / tl.a).astype(np.int64)
    lr = np.floor((ys - tl.f) / tl.e).astype(np.int64)
    r0, c0 = int(lr.min()), int(lc.min())
    fill = -1 if nodata is None else nodata
    win = read_band(lab_ds, 1, "label", window=Window(c0, r0, int(lc.max()) - c0 + 1, int(lr.max()) - r0 + 1),
                    boundless=True, fill_value=fill, out_dtype=np.int64)
    out = win[np.ix_(lr - r0, lc - c0)]
    if nodata is None:
        # Without a declared nodata, the boundless fill must still mean "no label".
        inside_r = (lr >= 0) & (lr < lab_ds.height)
        inside_c = (lc >= 0) & (lc < lab_ds.width)
        out[~np.outer(inside_r, inside_c)] = -1
    return out


def _majority(lab: np.ndarray, nodata: float | None, classes: set[int] | None) -> tuple[int, float]:
    """Majority raw value of a label patch and its share of all the patch's pixels."""
    values, counts = np.unique(lab, return_counts=True)
    valid = values >= 0 if nodata is None else (values != nodata) & (values >= 0)
    if classes is not None:
        valid &= np.isin(values, list(classes))
    if not valid.any():
        return -1, 0.0
    k = int(np.argmax(np.where(valid, counts, -1)))
    return int(values[k]), float(counts[k] / lab.size)


def tile_scenes(
    scenes: Sequence[Scene],
    out: str | os.PathLike[str],
    config: TileConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    provenance: Mapping[str, Any] | None = None,
    shard_samples: int = 256,
) -> Path:
    """Tile several scenes (same band layout and dtypes) into one dual-source dataset.

    Every scene is opened and checked before anything is written.

    Args:
        scenes: the scene pairs.
        out: path of the Zarr group to write (atomically; see :mod:`hashsearch.data.dual`).
        config: tiling configuration (default :class:`TileConfig`).
        overwrite: replace an existing dataset at ``out``.
        progress: tqdm bars.
        provenance: extra provenance stored with the dataset (e.g. the recipe).
        shard_samples: samples per shard file.

    Returns:
        The dataset path.

    Raises:
        See :func:`iter_scene_tiles`; ValueError when scenes disagree (bands, dtypes,
        ratio, labels given for some only) or no pair survives the skips.
    """
    config = config or TileConfig()
    if not scenes:
        raise ValueError("no scenes given")
    labelled = [s.labels is not None for s in scenes]
    if any(labelled) and not all(labelled):
        raise ValueError("either every scene has a label raster or none has")
    layouts = []
    for scene in scenes:
        with _OpenScene(scene, config) as opened:
            layouts.append((len(opened.sources), opened.pan_dtype, opened.ms_dtype, opened.geo.eff))
            if len(layouts) == 1:
                band_names = opened.band_names
                pan_res = opened.pan.res
    if len(set(layouts)) > 1:
        raise ValueError(
            "scenes differ in (MS band count, PAN dtype, MS dtype, effective ratio): "
            + "; ".join(f"{s.name or Path(s.pan).stem}: {lay}" for s, lay in zip(scenes, layouts, strict=True))
        )
    n_bands, pan_dtype, ms_dtype, ratio = layouts[0]
    p = config.patch_size
    q = p // ratio

    raw_labels: list[np.ndarray] = []
    scene_meta: list[dict[str, Any]] = []
    crs_set: set[tuple[str | None, str | None]] = set()
    with DualDatasetWriter(out, pan_shape=(1, p, p), ms_shape=(n_bands, q, q), pan_dtype=pan_dtype,
                           ms_dtype=ms_dtype, overwrite=overwrite, shard_samples=shard_samples) as writer:
        for k, scene in enumerate(scenes):
            count = 0
            with _OpenScene(scene, config) as opened:
                for batch in opened.tiles(progress):
                    writer.append(batch.pan, batch.ms, np.zeros(len(batch.raw_label), np.int64),
                                  bounds=batch.bounds, scene=k, pan_origin=batch.pan_origin)
                    raw_labels.append(batch.raw_label)
                    count += len(batch.raw_label)
                crs_set.add((opened.crs_wkt, opened.crs_id))
                scene_meta.append({
                    "name": opened.name,
                    "pan": str(Path(scene.pan).absolute()),
                    "ms": [str(m.absolute()) for m in scene.ms_paths],
                    "labels": str(Path(scene.labels).absolute()) if scene.labels is not None else None,
                    "crs": opened.crs_id,
                    "pairs": count,
                })
            logger.info("scene %s: %d pairs", scene_meta[-1]["name"], count)
        if not len(writer):
            raise ValueError(
                f"no pairs survived the tiling of {len(scenes)} scene(s) (patch {p}, min_purity "
                f"{config.min_purity}, max_nodata_fraction {config.max_nodata_fraction})"
            )
        raw = np.concatenate(raw_labels)
        task: Literal["class", "instance"]
        if all(labelled):
            if config.classes is not None:
                values = sorted(int(v) for v in config.classes)
                names: list[str] | None = [config.classes[v] for v in values]
            else:
                values = sorted(int(v) for v in np.unique(raw))
                names = [str(v) for v in values]
            lut = np.full(max(values) + 1, -1, np.int64)
            lut[values] = np.arange(len(values))
            labels = lut[raw]
            task = "class"
        else:
            values, names = None, None
            labels = np.arange(raw.size, dtype=np.int64)
            task = "instance"
        train = test = np.empty(0, np.int64)
        split_meta: dict[str, Any] = {"rule": None}
        if config.test_fraction:
            strata = labels if task == "class" else np.zeros_like(labels)
            train, test = split_per_class(strata, test_fraction=config.test_fraction, seed=config.split_seed)
            split_meta = {"rule": "per-class" if task == "class" else "random",
                          "test_fraction": config.test_fraction, "seed": config.split_seed}
        cfg = asdict(config)
        cfg["classes"] = {str(k): v for k, v in config.classes.items()} if config.classes else None
        return writer.finalize(
            classes=names, class_values=values, task=task, labels=labels,
            pan_bands=["pan"], ms_bands=band_names,
            pan_pixel_size=[pan_res[0], pan_res[1]],
            ms_pixel_size=[pan_res[0] * ratio, pan_res[1] * ratio],
            ratio=ratio,
            crs=next(iter(crs_set))[0] if len(crs_set) == 1 else None,
            crs_id=next(iter(crs_set))[1] if len(crs_set) == 1 else None,
            scenes=scene_meta, splits=split_meta, split=split_array(raw.size, train, test),
            provenance={"tool": "hashsearch.data.tile_scenes", "config": cfg, **(provenance or {})},
        )


def tile_scene(
    pan: str | os.PathLike[str],
    ms: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None = None,
    config: TileConfig | None = None,
    **kwargs: Any,
) -> Path:
    """Tile one co-registered PAN / MS (/ label) scene into a dual-source dataset.

    Args:
        pan: PAN GeoTIFF.
        ms: MS GeoTIFF or one GeoTIFF per band.
        out: Zarr group to write.
        labels: optional label raster.
        config: :class:`TileConfig`.
        **kwargs: passed to :func:`tile_scenes` (overwrite, progress, provenance).

    Returns:
        The dataset path.
    """
    return tile_scenes([Scene(pan=pan, ms=ms, labels=labels)], out, config, **kwargs)
