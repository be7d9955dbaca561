"""Recipe ``nc-landsat7``: class-level pairs from a real PAN sensor (Landsat-7 ETM+).

Landsat-7 ETM+ over North Carolina. PAN = band 8 (14.25 m), MS = bands 1, 2, 3, 4
(blue, green, red, NIR; 28.5 m), so the native PAN:MS ratio is 2 (``ratio=2``:
32 x 32 PAN / 16 x 16 MS patches by default). ``ratio=4`` averages MS over 2 x 2
more pixels (57 m, GF-1's 4:1 ratio; 64 x 64 PAN / 16 x 16 MS by default). Labels
come from ``landclass96.tif`` (1996 land use, 28.5 m) sampled at each PAN pixel
centre through the geotransforms: its origin is offset from the bands' by
(-12.5 m, +14.25 m), a fraction of a pixel, so pixel indices would be wrong. A
patch keeps the majority class if it covers at least ``min_purity`` (0.6) of the
patch; classes are very unbalanced (mostly forest and developed). Split: a seeded
``test_fraction`` (0.2) of each class. The tiling itself is
:func:`hashsearch.data.tiler.tile_scenes` (geotransform alignment rules there).

Imports: :mod:`hashsearch.data.tiler` and the recipes' ``_base``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hashsearch.data.recipes._base import Recipe, RecipeConfig, need, option, recipe_dir
from hashsearch.data.tiler import Scene, TileConfig, tile_scenes

__all__ = ["NC_LANDCLASS96", "RECIPE", "NCLandsat7Config", "build_nc_landsat7"]

#: landclass96 raw values and names (0 is nodata).
NC_LANDCLASS96: dict[int, str] = {
    1: "developed", 2: "agriculture", 3: "herbaceous", 4: "shrubland", 5: "forest", 6: "water", 7: "sediment",
}


@dataclass
class NCLandsat7Config(RecipeConfig):
    """Options of ``nc-landsat7`` (``test_fraction``: of each class)."""

    ratio: int = option(2, "PAN:MS ratio: 2 (native) or 4 (MS averaged 2x2 to 57 m, GF-1's ratio).")
    patch_size: int | None = option(None,
                                    "PAN patch side in PAN pixels, a multiple of the ratio (default: 16 * ratio).")
    stride: int | None = option(None, "Step between patches in PAN pixels (default: the patch size).")
    min_purity: float = option(0.6, "Smallest majority-class share of a kept patch.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ratio not in (2, 4):
            raise ValueError(f"nc-landsat7 supports ratio 2 (native) or 4 (MS averaged 2x2), got {self.ratio}")


def _build(out: Path, config: NCLandsat7Config, *, root: str | os.PathLike[str] | None, overwrite: bool,
           progress: bool) -> Path:
    folder = recipe_dir("nc-landsat7", root)
    pan = need(folder / "lsat7_2000_80.tif", "nc-landsat7 PAN band 8")
    ms = [need(folder / f"lsat7_2000_{b}0.tif", f"nc-landsat7 band {b}") for b in (1, 2, 3, 4)]
    labels = need(folder / "landclass96.tif", "nc-landsat7 land-use labels")
    tile = TileConfig(
        patch_size=config.patch_size or 16 * config.ratio,
        stride=config.stride,
        target_ratio=config.ratio,
        min_purity=config.min_purity,
        ms_band_names=["blue", "green", "red", "nir"],
        classes=NC_LANDCLASS96,
        test_fraction=config.test_fraction,
        split_seed=config.seed,
    )
    scene = Scene(pan=pan, ms=ms, labels=labels, name="lsat7_2000")
    return tile_scenes([scene], out, tile, overwrite=overwrite, progress=progress,
                       provenance={"recipe": "nc-landsat7", "recipe_options": config.as_dict()})


RECIPE = Recipe(
    name="nc-landsat7",
    folder="nc-landsat7",
    task="class",
    summary="Landsat-7 PAN band 8 + MS bands 1-4 over North Carolina, land-use classes (real PAN sensor).",
    config=NCLandsat7Config,
    build=_build,
)


def build_nc_landsat7(out: str | os.PathLike[str], **options: object) -> Path:
    """Build nc-landsat7 (``build_recipe("nc-landsat7", out, **options)``)."""
    return RECIPE.run(out, **options)  # type: ignore[arg-type]
