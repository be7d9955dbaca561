"""Grid registration and pixel helpers of the scene tiler (:mod:`hashsearch.data.tiler`).

Owns opening a raster for the tiler, the north-up and CRS checks, the PAN / MS grid
registration (rules 2 to 4 of the tiler's docstring: integer ratio, nesting grids,
overlap; :func:`_geometry` returns the patch grid as :class:`_Geometry`), and the
pixel helpers on strips (nodata masks, MS block averaging, cutting patches).

May import numpy, rasterio (for types only), :mod:`hashsearch.data._io` and
:mod:`hashsearch.data.errors`; never :mod:`hashsearch.data.tiler` (which imports
this module): the tile configuration reaches :func:`_geometry` through the
:class:`_GridConfig` protocol that :class:`~hashsearch.data.tiler.TileConfig` satisfies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from hashsearch.data._io import open_raster
from hashsearch.data.errors import AlignmentError

if TYPE_CHECKING:  # pragma: no cover
    import rasterio

__all__: list[str] = []

_RATIO_RTOL = 1e-4
_NEST_TOL = 1e-3


class _GridConfig(Protocol):
    """What :func:`_geometry` reads of a tile configuration (a ``TileConfig``)."""

    @property
    def patch_size(self) -> int: ...

    @property
    def step(self) -> int: ...

    @property
    def target_ratio(self) -> int | None: ...


@dataclass
class _Geometry:
    ratio: int          # native PAN:MS ratio
    factor: int         # MS block-averaging factor
    off_row: int        # MS origin in PAN pixels (may be negative)
    off_col: int
    rows: list[int]     # patch top rows in PAN pixels
    cols: list[int]     # patch left columns in PAN pixels

    @property
    def eff(self) -> int:
        """Effective PAN:MS ratio of the stored pairs: ``ratio * factor``."""
        return self.ratio * self.factor


def _open(path: Path, role: str) -> rasterio.DatasetReader:
    return open_raster(path, role)


def _check_north_up(ds: rasterio.DatasetReader, role: str) -> None:
    t = ds.transform
    if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
        raise AlignmentError(
            f"{role} raster {ds.name} has a rotated, sheared or flipped geotransform {tuple(t)[:6]}; "
            "warp it to a north-up grid first (e.g. gdalwarp)"
        )


def _crs_text(crs: Any) -> str:
    if crs is None:
        return "no CRS"
    epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def _is_integral(value: float, tol: float) -> bool:
    return abs(value - round(value)) <= tol


def _geometry(pan: rasterio.DatasetReader, ms: rasterio.DatasetReader, config: _GridConfig) -> _Geometry:
    tp, tm = pan.transform, ms.transform
    rx, ry = tm.a / tp.a, tm.e / tp.e
    if not (_is_integral(rx, _RATIO_RTOL * rx) and _is_integral(ry, _RATIO_RTOL * ry)) or round(rx) != round(ry) \
            or round(rx) < 1:
        raise AlignmentError(
            f"PAN:MS resolution ratio must be the same whole number along x and y; PAN pixels are "
            f"{tp.a:g} x {-tp.e:g}, MS pixels {tm.a:g} x {-tm.e:g}, ratio {rx:g} x {ry:g}. "
            "Resample one raster so that the MS pixel is a whole number of PAN pixels."
        )
    ratio = round(rx)
    factor = 1
    if config.target_ratio is not None:
        if config.target_ratio % ratio:
            raise AlignmentError(
                f"target_ratio {config.target_ratio} is not a multiple of the native PAN:MS ratio {ratio}"
            )
        factor = config.target_ratio // ratio
    eff = ratio * factor
    oc = (tm.c - tp.c) / tp.a
    orow = (tm.f - tp.f) / tp.e
    if not (_is_integral(oc, _NEST_TOL) and _is_integral(orow, _NEST_TOL)):
        raise AlignmentError(
            f"the MS grid does not nest in the PAN grid: the MS origin is {orow:.4f} rows and {oc:.4f} "
            "columns of PAN pixels from the PAN origin, not whole numbers. Resample MS onto a grid "
            "aligned with PAN first."
        )
    off_row, off_col = round(orow), round(oc)
    p, s = config.patch_size, config.step
    if p % eff or s % eff:
        raise ValueError(
            f"patch_size ({p}) and stride ({s}) must be multiples of the effective PAN:MS ratio {eff} "
            "so that each MS patch covers exactly the PAN patch's ground"
        )
    # Effective MS extent in PAN pixels (whole averaged blocks only).
    ms_rows = (ms.height // factor) * eff
    ms_cols = (ms.width // factor) * eff

    def starts(offset: int, ms_len: int, pan_len: int) -> tuple[list[int], bool]:
        lo, hi = max(0, offset), min(pan_len, offset + ms_len)
        if hi <= lo:
            return [], False
        first = offset + math.ceil((lo - offset) / eff) * eff
        return list(range(first, hi - p + 1, s)), True

    rows, ok_r = starts(off_row, ms_rows, pan.height)
    cols, ok_c = starts(off_col, ms_cols, pan.width)
    if not (ok_r and ok_c):
        raise AlignmentError(
            f"the PAN and MS rasters do not overlap: PAN bounds {tuple(round(v, 3) for v in pan.bounds)}, "
            f"MS bounds {tuple(round(v, 3) for v in ms.bounds)} ({_crs_text(pan.crs)})"
        )
    return _Geometry(ratio=ratio, factor=factor, off_row=off_row, off_col=off_col, rows=rows, cols=cols)


def _nodata(override: float | None, ds: rasterio.DatasetReader, band: int) -> float | None:
    if override is not None:
        return override
    value = ds.nodatavals[band - 1]
    return None if value is None else float(value)


def _is_nodata(x: np.ndarray, nodata: float | None) -> np.ndarray:
    if nodata is None:
        return np.isnan(x) if np.issubdtype(x.dtype, np.floating) else np.zeros(x.shape, bool)
    if math.isnan(nodata):
        return np.isnan(x)
    return x == nodata


def _block_mean(x: np.ndarray, mask: np.ndarray, f: int, dtype: np.dtype[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Average (H, W) by f x f blocks, rounding half up for integer dtypes; a block with any
    masked pixel is masked."""
    h, w = x.shape[0] // f, x.shape[1] // f
    x = x[: h * f, : w * f].reshape(h, f, w, f)
    m = np.asarray(mask[: h * f, : w * f].reshape(h, f, w, f).any(axis=(1, 3)))
    mean = x.astype(np.float64).mean(axis=(1, 3))
    if np.issubdtype(dtype, np.integer):
        mean = np.floor(mean + 0.5)
    return mean.astype(dtype), m


def _patches(strip: np.ndarray, cols: Sequence[int], size: int) -> np.ndarray:
    """Cut (..., size, W) strip into (B, ..., size, size) at the given column starts."""
    return np.stack([strip[..., :, c : c + size] for c in cols])
