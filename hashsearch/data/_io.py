"""Reading input files so that a damaged one gets an error naming it and the damage.

Owns the low-level reads of every producer in :mod:`hashsearch.data` (the tiler and
the recipes): GeoTIFFs through rasterio (:func:`open_raster`, :func:`read_band`),
MATLAB v5 files through scipy (:func:`load_mat`), JPEG / PNG scenes through Pillow
(:func:`read_image`), and md5 sums (:func:`md5`). Each turns the library's bare
failure (rasterio's "Read failed. See previous exception for details.", Pillow's
"image file is truncated", scipy's struct errors) into a
:class:`~hashsearch.data.errors.MalformedDataError` that names the file, what was
being read and GDAL's or the library's underlying reason.

A GeoTIFF is also checked when it is opened: the byte range of every data block
(from GDAL's ``TIFF`` metadata) must lie inside the file, so a truncated copy is
refused before a dataset build writes anything. GDAL presents an 8-bit 4-band TIFF
tagged CMYK (what MATLAB's ``imwrite`` makes of an (H, W, 4) array) as converted
RGBA; :func:`open_raster` reopens such a file raw (``GTIFF_RAW:``), so the stored
band values are read.

Imports: :mod:`hashsearch.data.errors` only; rasterio, scipy and Pillow inside the
functions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hashsearch.data.errors import DataNotFoundError, MalformedDataError

if TYPE_CHECKING:  # pragma: no cover
    import rasterio

__all__ = ["check_blocks", "load_mat", "md5", "open_raster", "read_band", "read_image"]

logger = logging.getLogger("hashsearch")


def _cause(exc: BaseException) -> str:
    """The most specific message in an exception chain (GDAL's own reason comes as the cause)."""
    messages: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(messages) < 5:
        text = str(seen).strip()
        if text and "see previous exception" not in text.lower() and not any(text in m for m in messages):
            messages.append(text)
        seen = seen.__cause__ or seen.__context__
    return "; ".join(messages) or type(exc).__name__


def md5(path: str | os.PathLike[str]) -> str:
    """Hex md5 of a file's bytes."""
    return hashlib.md5(Path(path).read_bytes(), usedforsecurity=False).hexdigest()


def check_blocks(ds: rasterio.DatasetReader, role: str) -> None:
    """Refuse a GeoTIFF whose data blocks do not all lie inside the file (a truncated copy).

    Args:
        ds: an open rasterio dataset (other drivers and non-local files are not checked).
        role: what the raster is, for the message ("PAN", "MS", ...).

    Raises:
        MalformedDataError: a block ends past the end of the file.
    """
    path = Path(ds.name.removeprefix("GTIFF_RAW:"))
    if ds.driver != "GTiff" or not path.is_file():
        return
    size = path.stat().st_size
    bands = [1] if ds.interleaving is not None and ds.interleaving.name == "pixel" else list(ds.indexes)
    end, where = 0, None
    for b in bands:
        for (r, c), _ in ds.block_windows(b):
            off = ds.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=b)
            n = ds.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=b)
            if off is None or n is None:
                return  # GDAL does not expose the layout (e.g. a virtual file): nothing to check
            if int(off) + int(n) > end:
                end, where = int(off) + int(n), (b, r, c)
    if end > size:
        band, r, c = where  # type: ignore[misc]
        raise MalformedDataError(
            f"{role} raster {path} is truncated or damaged: its data blocks end at byte {end:,} "
            f"(band {band}, block row {r}, column {c}) but the file has {size:,} bytes; copy it again"
        )


def open_raster(
    path: str | os.PathLike[str], role: str, *, check: bool = True, georeferenced: bool = True
) -> rasterio.DatasetReader:
    """Open a raster with rasterio, raw if GDAL would convert CMYK, checked for truncation.

    Args:
        path: the file.
        role: what it is ("PAN", "MS", "label"), for messages.
        check: run :func:`check_blocks`.
        georeferenced: False for a file known to carry no geotransform (silences
            rasterio's NotGeoreferencedWarning; pixel correspondence is then the caller's).

    Returns:
        The open dataset (the caller closes it).

    Raises:
        DataNotFoundError: no file at ``path``.
        MalformedDataError: rasterio cannot open it, or it is truncated.
    """
    import rasterio

    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"{role} raster not found: {path}")
    try:
        with warnings.catch_warnings():
            if not georeferenced:
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            ds = rasterio.open(path)
            if ds.driver == "GTiff" and ds.tags(ns="IMAGE_STRUCTURE").get("SOURCE_COLOR_SPACE") == "CMYK":
                ds.close()
                logger.debug("%s is tagged CMYK; reading its bands raw", path)
                ds = rasterio.open(f"GTIFF_RAW:{path}")
    except rasterio.errors.RasterioIOError as exc:
        raise MalformedDataError(
            f"{role} raster {path} could not be read (truncated, damaged or not a raster): {_cause(exc)}"
        ) from exc
    if check:
        try:
            check_blocks(ds, role)
        except BaseException:
            ds.close()
            raise
    return ds


def read_band(ds: rasterio.DatasetReader, band: int | list[int] | None, role: str, **kwargs: Any) -> np.ndarray:
    """``ds.read(band, **kwargs)``, or an error naming the file, band and window that failed.

    Raises:
        MalformedDataError: GDAL could not decode the data (a truncated or damaged file).
    """
    import rasterio

    try:
        return ds.read(band, **kwargs) if band is not None else ds.read(**kwargs)
    except rasterio.errors.RasterioIOError as exc:
        window = kwargs.get("window")
        where = f" window {window}" if window is not None else ""
        raise MalformedDataError(
            f"{role} raster {ds.name} is truncated or damaged: reading band {band if band is not None else 'all'}"
            f"{where} failed: {_cause(exc)}"
        ) from exc


def load_mat(path: str | os.PathLike[str], variables: list[str], role: str) -> dict[str, np.ndarray]:
    """Read variables of a MATLAB v5 file (``scipy.io.loadmat``).

    Args:
        path: the ``.mat`` file.
        variables: the names that must be present.
        role: what the file is, for messages.

    Returns:
        ``{name: ndarray}`` for the requested names.

    Raises:
        DataNotFoundError: no file.
        MalformedDataError: not readable as MATLAB v5 (truncated, damaged, v7.3), or a
            variable is missing.
    """
    import scipy.io

    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"{role} is missing: {path}")
    try:
        content = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises ValueError, TypeError, struct.error, OSError, ... on damage
        raise MalformedDataError(
            f"{role} {path} could not be read as a MATLAB v5 file (truncated, damaged or another "
            f"format): {type(exc).__name__}: {exc}"
        ) from exc
    missing = [v for v in variables if v not in content]
    if missing:
        found = sorted(k for k in content if not k.startswith("__"))
        raise MalformedDataError(f"{role} {path} has no variable(s) {missing} (found {found})")
    return {v: np.asarray(content[v]) for v in variables}


def read_image(path: str | os.PathLike[str], role: str) -> np.ndarray:
    """Decode a JPEG / PNG with Pillow into an (H, W, C) uint8 array (C = 3 for RGB).

    Raises:
        DataNotFoundError: no file.
        MalformedDataError: Pillow cannot decode it fully (truncated or damaged).
        ImportError: Pillow is not installed (the message says how to install it).
    """
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError(f"reading {role} images needs Pillow: pip install pillow") from exc
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"{role} image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's decode errors
        raise MalformedDataError(f"{role} image {path} is truncated or damaged: {exc}") from exc
    return arr if arr.ndim == 3 else arr[..., None]
