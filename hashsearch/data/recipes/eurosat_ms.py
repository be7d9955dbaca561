"""Recipe ``eurosat-ms``: class-level pairs with PAN derived from Sentinel-2 bands.

469 EuroSAT Sentinel-2 L1C tiles (64 x 64, 13 bands, uint16, ~10 m) in 10 class
folders. Sentinel-2 has no PAN band, so the pair is derived physically:
PAN (1 x 64 x 64, 10 m) = weighted sum of B02, B03, B04, B08 with
:data:`EUROSAT_PAN_WEIGHTS` = (0.169, 0.191, 0.303, 0.337). The weights model a flat
PAN response over GF-1's PAN range 450-900 nm: each band stands for the part of the
range nearer its centre (492, 560, 665, 833 nm) than any other band's, i.e. 76, 86,
137 and 151 nm of the 450 nm. MS (4 x 16 x 16, 40 m) = B02, B03, B04, B08 averaged
over 4 x 4 pixels: GF-1's 4:1 ratio and band set. Values stay uint16 (TOA reflectance
x 10000, rounded half up). ``pan_size`` 32 or 16 first averages the four bands over
2 x 2 or 4 x 4 pixels (20 m or 40 m PAN; 8 x 8 or 4 x 4 MS). Labels are the folders
(sorted); split: a seeded ``test_fraction`` (0.2) of each class. Files are checked
against ``manifest.json``'s md5 sums when it is present.

Imports: :mod:`hashsearch.data.dual`, ``splits``, ``_io`` and the recipes' ``_base``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hashsearch.data._io import open_raster, read_band
from hashsearch.data.dual import DualDatasetWriter, split_array
from hashsearch.data.errors import DataNotFoundError, MalformedDataError
from hashsearch.data.recipes._base import (
    Recipe,
    RecipeConfig,
    block_mean,
    check_against_manifest,
    option,
    read_manifest,
    recipe_dir,
)
from hashsearch.data.splits import split_per_class
from hashsearch.data.tiler import _crs_text

__all__ = ["EUROSAT_BANDS", "EUROSAT_PAN_WEIGHTS", "RECIPE", "EurosatConfig", "build_eurosat_ms", "eurosat_pair"]

#: EuroSAT band order in its GeoTIFFs.
EUROSAT_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A",
)
#: Weights of B02, B03, B04, B08 in the derived PAN band (see the module docstring).
EUROSAT_PAN_WEIGHTS: tuple[float, float, float, float] = (0.169, 0.191, 0.303, 0.337)
_EUROSAT_MS = ("B02", "B03", "B04", "B08")
_TILE = 64


@dataclass
class EurosatConfig(RecipeConfig):
    """Options of ``eurosat-ms`` (``test_fraction``: of each class)."""

    pan_weights: tuple[float, float, float, float] = option(
        EUROSAT_PAN_WEIGHTS, "Weights of B02, B03, B04, B08 in the derived PAN band.")
    pan_size: int = option(64, "PAN side: 64 (10 m), 32 or 16 (bands averaged 2x2 / 4x4 first); MS is a quarter.")
    verify: bool = option(True, "Check every tile against manifest.json's md5 sums.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.pan_weights) != 4:
            raise ValueError(f"pan_weights must be 4 numbers (B02, B03, B04, B08), got {self.pan_weights!r}")
        if self.pan_size not in (64, 32, 16):
            raise ValueError(f"pan_size must be 64, 32 or 16 (EuroSAT tiles are 64 x 64), got {self.pan_size}")


def eurosat_pair(
    tile: np.ndarray, weights: Sequence[float] = EUROSAT_PAN_WEIGHTS, pan_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Derive a PAN / MS pair from one EuroSAT tile.

    Args:
        tile: uint16 (13, H, W), EuroSAT band order; H and W multiples of 4.
        weights: weights of B02, B03, B04, B08 in the PAN band.
        pan_size: PAN side (H / pan_size a whole factor: the four bands are averaged
            over that many pixels first); default H.

    Returns:
        ``(pan, ms)``: uint16 (1, S, S) and uint16 (4, S/4, S/4), rounded half up,
        with S = ``pan_size``.
    """
    if tile.ndim != 3 or tile.shape[0] != len(EUROSAT_BANDS):
        raise MalformedDataError(f"a EuroSAT tile must be ({len(EUROSAT_BANDS)}, H, W), got {tile.shape}")
    h, w = tile.shape[1:]
    size = pan_size or h
    if h != w or h % size or size % 4:
        raise MalformedDataError(f"EuroSAT tile {h} x {w} cannot give {size} x {size} PAN with 4 x 4 MS blocks")
    wts = np.asarray(weights, dtype=np.float64)
    if wts.shape != (4,):
        raise ValueError(f"weights must be 4 numbers (B02, B03, B04, B08), got {weights!r}")
    bands = block_mean(tile[[EUROSAT_BANDS.index(b) for b in _EUROSAT_MS]], h // size)
    pan = np.floor(np.tensordot(wts, bands, axes=1) + 0.5)[None]
    ms = np.floor(block_mean(bands, 4) + 0.5)
    limit = np.iinfo(np.uint16).max
    return np.clip(pan, 0, limit).astype(np.uint16), np.clip(ms, 0, limit).astype(np.uint16)


def _tile_key(p: Path) -> tuple[str, int, str]:
    stem = p.stem.rsplit("_", 1)
    return (stem[0], int(stem[1]) if len(stem) == 2 and stem[1].isdigit() else -1, p.name)


def _build(out: Path, config: EurosatConfig, *, root: str | os.PathLike[str] | None, overwrite: bool,
           progress: bool) -> Path:
    from tqdm.auto import tqdm

    folder = recipe_dir("eurosat-ms", root)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DataNotFoundError(f"no class folders in {folder}")
    manifest = folder / "manifest.json"
    expected = read_manifest(manifest) if config.verify else {}
    files = [(k, f) for k, c in enumerate(classes) for f in sorted((folder / c).glob("*.tif"), key=_tile_key)]
    if not files:
        raise DataNotFoundError(f"no .tif tiles in the class folders of {folder}")
    labels = np.array([k for k, _ in files], dtype=np.int64)
    split = split_array(labels.size, *split_per_class(labels, test_fraction=config.test_fraction, seed=config.seed))
    s = config.pan_size
    q = s // 4
    weights = tuple(config.pan_weights)
    scenes: list[dict[str, Any]] = []
    with DualDatasetWriter(out, pan_shape=(1, s, s), ms_shape=(4, q, q), pan_dtype=np.uint16,
                           ms_dtype=np.uint16, overwrite=overwrite) as writer:
        for i, (k, path) in enumerate(tqdm(files, desc="eurosat-ms", unit="tile", disable=not progress)):
            rel = f"{path.parent.name}/{path.name}"
            check_against_manifest(path, rel, expected, manifest)
            with open_raster(path, "EuroSAT") as ds:
                tile = read_band(ds, None, "EuroSAT")
                if tile.shape != (13, _TILE, _TILE) or tile.dtype != np.uint16:
                    raise MalformedDataError(
                        f"{path}: expected uint16 (13, 64, 64) bands, got {tile.dtype} {tile.shape}")
                bounds = np.array([list(ds.bounds)], dtype=np.float64)
                crs = _crs_text(ds.crs) if ds.crs else None
            pan, ms = eurosat_pair(tile, weights, s)
            writer.append(pan[None], ms[None], [k], bounds=bounds, scene=i, pan_origin=np.zeros((1, 2), np.int64))
            scenes.append({"name": path.stem, "file": rel, "crs": crs})
        pixel = 10.0 * (_TILE // s)
        return writer.finalize(
            classes=classes, task="class", split=split,
            pan_bands=["pan (0.169 B02 + 0.191 B03 + 0.303 B04 + 0.337 B08)"
                       if weights == EUROSAT_PAN_WEIGHTS else f"pan (weights {list(weights)})"],
            ms_bands=list(_EUROSAT_MS), ms_rgb=[2, 1, 0],
            pan_pixel_size=[pixel, pixel], ms_pixel_size=[4 * pixel, 4 * pixel], ratio=4,
            crs=None, scenes=scenes,
            splits={"rule": "per-class", "test_fraction": config.test_fraction, "seed": config.seed},
            provenance={"recipe": "eurosat-ms", "source": str(folder),
                        "recipe_options": {**config.as_dict(), "verified_md5": bool(expected)}},
        )


RECIPE = Recipe(
    name="eurosat-ms",
    folder="eurosat-ms",
    task="class",
    summary="469 EuroSAT Sentinel-2 tiles, 10 classes; PAN = weighted B02/B03/B04/B08, MS = the four averaged 4x4.",
    config=EurosatConfig,
    build=_build,
)


def build_eurosat_ms(out: str | os.PathLike[str], **options: object) -> Path:
    """Build eurosat-ms (``build_recipe("eurosat-ms", out, **options)``)."""
    return RECIPE.run(out, **options)  # type: ignore[arg-type]
