"""Seeded generators of small fake inputs in the exact layouts the readers expect.

- :func:`write_fake_dsrsid` writes a DSRSID-shaped MATLAB v7.3 file: an HDF5 file
  behind a 512-byte userblock whose first 128 bytes are MATLAB's text header
  (``MATLAB 7.3 MAT-file, Platform: ..., Created on: ... HDF5 schema 1.00 .``,
  8 bytes of subsystem offset, version ``0x0200`` and the endian mark ``IM``), with
  ``PAN_IMAGES`` (N, 1, W, H), ``MUL_IMAGES`` (N, 4, w, h) and ``LAND_COVER_TYPES``
  (1, N) float64, each carrying MATLAB's ``MATLAB_class`` attribute and stored as
  MATLAB does (column-major, so the spatial axes are swapped; chunked, deflate 3).
  Every image carries an **asymmetric marker** (a wide, short bright block in the
  top-left corner) and its pair index, so a test proves the reader returns it upright
  and paired: :func:`fake_dsrsid_sample` regenerates the expected upright arrays.
- :func:`write_fake_scene` writes a co-registered PAN / MS / label GeoTIFF triple
  with known geometry for the tiler: MS band ``b`` is exactly the rounded block mean
  of the PAN pixels it covers plus ``10 * b``, so any misalignment of a tile pair is
  visible, and the labels are quadrants of the ground split at known coordinates.

Nothing here is committed as binary data; tests call these functions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hashsearch.data.dsrsid import LABEL_KEY, MS_KEY, PAN_KEY

__all__ = [
    "FAKE_MARKER",
    "FakeScene",
    "fake_dsrsid_sample",
    "matlab_v73_header",
    "write_fake_dsrsid",
    "write_fake_scene",
]

#: Pixel value of the top-left orientation marker (the PAN band; MS band b uses 250 - 10 b).
FAKE_MARKER = 255
_BACKGROUND_MAX = 200  # background and index digits stay below every marker value


def matlab_v73_header(created: str = "Mon Oct  1 12:00:00 2018", platform: str = "GLNXA64") -> bytes:
    """The 128-byte header MATLAB writes at the start of a v7.3 MAT-file's userblock.

    116 bytes of space-padded text, 8 bytes of subsystem-data offset (spaces: none),
    the version 0x0200 as little-endian bytes, and the endian indicator ``IM``.
    """
    text = f"MATLAB 7.3 MAT-file, Platform: {platform}, Created on: {created} HDF5 schema 1.00 ."
    raw = text.encode("ascii")
    if len(raw) > 116:
        raise ValueError("header text longer than 116 bytes")
    return raw.ljust(116, b" ") + b" " * 8 + b"\x00\x02" + b"IM"


def _marker_values(n_bands: int, pan: bool) -> list[int]:
    return [FAKE_MARKER] if pan else [250 - 10 * b for b in range(n_bands)]


def fake_dsrsid_sample(
    index: int, *, seed: int = 0, pan_size: int = 256, ms_size: int = 64, ms_bands: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """The upright images of pair ``index`` of a file made by :func:`write_fake_dsrsid`.

    Each image (C, S, S) is seeded noise in 0..199 with, in every band: a marker block
    of rows ``[0, S//8)`` and columns ``[0, S//4)`` (wider than tall, top-left) set to
    the band's marker value (PAN 255, MS band b ``250 - 10 b``), and the pair index in
    base 200 in the last row: ``[S-1, S-1] = index % 200``, ``[S-1, S-2] = index // 200 % 200``.

    Returns:
        ``(pan, ms)``: uint8 (1, pan_size, pan_size) and uint8 (ms_bands, ms_size, ms_size).
    """
    rng = np.random.default_rng([seed, index])
    out = []
    for size, bands, is_pan in ((pan_size, 1, True), (ms_size, ms_bands, False)):
        if size < 8:
            raise ValueError(f"fake images need a side of at least 8 pixels, got {size}")
        img = rng.integers(0, _BACKGROUND_MAX, size=(bands, size, size), dtype=np.uint8)
        for b, value in enumerate(_marker_values(bands, is_pan)):
            img[b, : size // 8, : size // 4] = value
        img[:, size - 1, size - 1] = index % _BACKGROUND_MAX
        img[:, size - 1, size - 2] = index // _BACKGROUND_MAX % _BACKGROUND_MAX
        out.append(img)
    return out[0], out[1]


def write_fake_dsrsid(
    path: str | os.PathLike[str],
    *,
    per_class: int = 4,
    n_classes: int = 8,
    seed: int = 0,
    pan_size: int = 256,
    ms_size: int = 64,
    ms_bands: int = 4,
    userblock: bool = True,
) -> Path:
    """Write a small DSRSID file in the released layout (see the module docstring).

    Classes come in contiguous blocks of ``per_class`` pairs, labels ``1..n_classes``.
    The default sizes are the released ones (256 / 64); tests of the split counts use
    smaller images (e.g. 8 / 8) to afford 626+ pairs per class.

    Args:
        path: file to create (overwritten).
        per_class: pairs per class.
        n_classes: number of classes.
        seed: seed of the pixel noise.
        pan_size, ms_size: side of the PAN and MS images.
        ms_bands: MS band count.
        userblock: write the 512-byte MATLAB userblock and header (as MATLAB does).

    Returns:
        The path written.
    """
    import h5py

    path = Path(path)
    n = per_class * n_classes
    labels = np.repeat(np.arange(1, n_classes + 1, dtype=np.float64), per_class)
    kwargs = {"userblock_size": 512} if userblock else {}
    with h5py.File(path, "w", libver="earliest", **kwargs) as f:
        pan_ds = f.create_dataset(
            PAN_KEY, shape=(n, 1, pan_size, pan_size), dtype=np.uint8,
            chunks=(1, 1, pan_size, pan_size), compression="gzip", compression_opts=3,
        )
        ms_ds = f.create_dataset(
            MS_KEY, shape=(n, ms_bands, ms_size, ms_size), dtype=np.uint8,
            chunks=(1, ms_bands, ms_size, ms_size), compression="gzip", compression_opts=3,
        )
        for i in range(n):
            pan, ms = fake_dsrsid_sample(i, seed=seed, pan_size=pan_size, ms_size=ms_size, ms_bands=ms_bands)
            # MATLAB's H x W x C x N array, column-major, reads back in h5py as (N, C, W, H).
            pan_ds[i] = pan.transpose(0, 2, 1)
            ms_ds[i] = ms.transpose(0, 2, 1)
        lab_ds = f.create_dataset(LABEL_KEY, data=labels.reshape(1, n))
        for ds, cls in ((pan_ds, "uint8"), (ms_ds, "uint8"), (lab_ds, "double")):
            ds.attrs.create("MATLAB_class", np.bytes_(cls))
    if userblock:
        with open(path, "r+b") as fh:
            fh.write(matlab_v73_header())
    return path


@dataclass
class FakeScene:
    """Paths and known geometry of a scene made by :func:`write_fake_scene`.

    Attributes:
        pan: PAN GeoTIFF path.
        ms: MS GeoTIFF path, or one path per band.
        labels: label GeoTIFF path (None when not written).
        origin: (x, y) ground coordinates of the PAN raster's top-left corner.
        pan_pixel: PAN pixel size in CRS units.
        ratio: MS pixel size / PAN pixel size.
        split_xy: (x, y) ground coordinates where the label quadrants meet; the label
            of ground point (x, y) is ``1 + (x >= split_x) + 2 * (y < split_y)``.
        crs: the CRS string used.
        nodata_box: (row0, row1, col0, col1) PAN pixels set to nodata (0), or None.
    """

    pan: Path
    ms: Path | list[Path]
    labels: Path | None
    origin: tuple[float, float]
    pan_pixel: float
    ratio: int
    split_xy: tuple[float, float]
    crs: str
    nodata_box: tuple[int, int, int, int] | None = None


def write_fake_scene(
    folder: str | os.PathLike[str],
    *,
    pan_shape: tuple[int, int] = (64, 80),
    ratio: int = 4,
    ms_bands: int = 4,
    pan_pixel: float = 2.0,
    origin: tuple[float, float] = (500000.0, 4000000.0),
    crs: str = "EPSG:32650",
    band_per_file: bool = False,
    labels: bool = True,
    label_pixel: float | None = None,
    label_offset: tuple[float, float] = (-3.0, 2.5),
    split_xy: tuple[float, float] | None = None,
    nodata_box: tuple[int, int, int, int] | None = None,
    ms_origin_shift: tuple[int, int] = (0, 0),
    seed: int = 0,
    name: str = "scene",
) -> FakeScene:
    """Write a PAN / MS (/ label) GeoTIFF scene with known geometry.

    Geometry: PAN (H, W) pixels of ``pan_pixel`` from ``origin`` (top-left, north up);
    MS pixels of ``ratio * pan_pixel`` covering the PAN extent plus a margin of
    ``ms_origin_shift = (rows, cols)`` whole MS pixels north and west of it (filled with
    nodata), so the two rasters' origins differ. MS band ``b`` at an MS pixel is
    ``round(mean of the PAN pixels under it) + 10 * b`` (uint8; PAN noise is 20..200),
    and 0 (nodata) where the pixel lies outside the PAN raster. The optional label
    raster (uint8, nodata 0) has pixels of ``label_pixel`` (default: the MS pixel) and
    its origin offset from PAN's by ``label_offset`` ground units, like landclass96's.

    Args:
        folder: where the files go (created).
        nodata_box: PAN pixel rows/cols ``(r0, r1, c0, c1)`` set to 0 (the nodata value).
        band_per_file: write ``{name}_ms_b{k}.tif`` files instead of one multi-band file.
        seed: seed of the PAN noise.

    Returns:
        A :class:`FakeScene` describing what was written.
    """
    import rasterio
    from rasterio.transform import from_origin

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = pan_shape
    if h % ratio or w % ratio:
        raise ValueError("pan_shape must be a multiple of ratio for the fake scene")
    x0, y0 = origin
    rng = np.random.default_rng(seed)
    pan = rng.integers(20, 201, size=(h, w), dtype=np.uint8)
    if nodata_box is not None:
        r0, r1, c0, c1 = nodata_box
        pan[r0:r1, c0:c1] = 0
    profile = {"driver": "GTiff", "dtype": "uint8", "crs": crs, "nodata": 0}
    pan_path = folder / f"{name}_pan.tif"
    with rasterio.open(pan_path, "w", height=h, width=w, count=1,
                       transform=from_origin(x0, y0, pan_pixel, pan_pixel), **profile) as dst:
        dst.write(pan, 1)

    # MS: block means of PAN on the nested grid, padded with nodata around PAN.
    sr, sc = ms_origin_shift
    if sr < 0 or sc < 0:
        raise ValueError("ms_origin_shift must be non-negative (a margin north and west of PAN)")
    hm, wm = h // ratio, w // ratio
    blocks = pan.reshape(hm, ratio, wm, ratio).astype(np.float64)
    mean = np.floor(blocks.mean(axis=(1, 3)) + 0.5)
    has_nodata = (pan.reshape(hm, ratio, wm, ratio) == 0).any(axis=(1, 3))
    top, left = sr, sc
    full_h, full_w = hm + sr, wm + sc
    ms = np.zeros((ms_bands, full_h, full_w), dtype=np.uint8)
    for b in range(ms_bands):
        band = np.where(has_nodata, 0, np.minimum(mean + 10 * b, 255)).astype(np.uint8)
        ms[b, top : top + hm, left : left + wm] = band
    # MS origin: PAN's, moved north-west by the margin.
    ms_pixel = ratio * pan_pixel
    ms_x0 = x0 - sc * ms_pixel
    ms_y0 = y0 + sr * ms_pixel
    ms_transform = from_origin(ms_x0, ms_y0, ms_pixel, ms_pixel)
    if band_per_file:
        ms_paths: Path | list[Path]
        band_files: list[Path] = []
        for b in range(ms_bands):
            p = folder / f"{name}_ms_b{b + 1}.tif"
            with rasterio.open(p, "w", height=full_h, width=full_w, count=1, transform=ms_transform, **profile) as dst:
                dst.write(ms[b], 1)
            band_files.append(p)
        ms_paths = band_files
    else:
        ms_paths = folder / f"{name}_ms.tif"
        with rasterio.open(ms_paths, "w", height=full_h, width=full_w, count=ms_bands,
                           transform=ms_transform, **profile) as dst:
            dst.write(ms)

    if split_xy is None:
        split_xy = (x0 + (w // 2) * pan_pixel + 0.3 * pan_pixel, y0 - (h // 2) * pan_pixel - 0.3 * pan_pixel)
    label_path = None
    if labels:
        lp = ms_pixel if label_pixel is None else label_pixel
        lx0, ly0 = x0 + label_offset[0], y0 + label_offset[1]
        lh = int(np.ceil((h * pan_pixel + abs(label_offset[1]) + lp) / lp))
        lw = int(np.ceil((w * pan_pixel + abs(label_offset[0]) + lp) / lp))
        xc = lx0 + (np.arange(lw) + 0.5) * lp
        yc = ly0 - (np.arange(lh) + 0.5) * lp
        lab = (1 + (xc[None, :] >= split_xy[0]) + 2 * (yc[:, None] < split_xy[1])).astype(np.uint8)
        label_path = folder / f"{name}_labels.tif"
        with rasterio.open(label_path, "w", height=lh, width=lw, count=1,
                           transform=from_origin(lx0, ly0, lp, lp), **profile) as dst:
            dst.write(lab, 1)
    return FakeScene(
        pan=pan_path, ms=ms_paths, labels=label_path, origin=(x0, y0), pan_pixel=pan_pixel,
        ratio=ratio, split_xy=split_xy, crs=crs, nodata_box=nodata_box,
    )
