"""``hashsearch dataset``: tile scenes, build the real-data recipes, inspect datasets.

- ``hashsearch dataset tile --pan P.tif --ms M.tif [--ms M2.tif ...] [--labels L.tif] --out D.zarr``
- ``hashsearch dataset build nc-landsat7|eurosat-ms|fusebox-landsat7 --out D.zarr``
- ``hashsearch dataset info D.zarr|DSRSID.mat [--json]``

rasterio, h5py and scipy (the ``data`` extra) are imported inside the commands.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import typer

from hashsearch.cli._common import cli_errors, emit

def register(app: typer.Typer) -> None:
    """Add the ``dataset`` command group to ``app``."""
    group = typer.Typer(
        name="dataset",
        help="Build and inspect dual-source (PAN + MS) datasets.",
        no_args_is_help=True,
    )
    group.command("tile")(tile)
    group.command("build")(build)
    group.command("info")(info)
    app.add_typer(group, name="dataset")


def _int_list(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None


def _summary(path: Path, seconds: float) -> dict[str, Any]:
    from hashsearch.data.dual import dataset_info

    info = dataset_info(path)
    result = {k: info[k] for k in ("path", "num_samples", "task", "pan", "ms", "ratio", "splits")}
    if "classes" in info:
        result["classes"] = {name: c["total"] for name, c in info["classes"].items()}
    result["size_bytes"] = info["size_bytes"]
    result["seconds"] = round(seconds, 2)
    return result


@cli_errors
def tile(
    pan: Path = typer.Option(..., "--pan", help="PAN GeoTIFF."),
    ms: list[Path] = typer.Option(..., "--ms", help="MS GeoTIFF; repeat for one file per band."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset to write (a Zarr folder, e.g. pairs.zarr)."),
    labels: Path | None = typer.Option(None, "--labels", help="Label raster (integer classes)."),
    patch_size: int = typer.Option(256, help="PAN patch side in PAN pixels."),
    stride: int | None = typer.Option(None, help="Step between patches in PAN pixels [default: patch size]."),
    ratio: int | None = typer.Option(None, "--ratio", help="Target PAN:MS ratio (MS block-averaged to reach it)."),
    min_purity: float = typer.Option(0.5, help="Smallest majority-class share of a patch."),
    max_nodata: float = typer.Option(0.0, help="Largest nodata share of a kept patch."),
    ms_bands: str | None = typer.Option(None, help="1-based bands of a multi-band MS file, e.g. 1,2,3,4."),
    band_names: str | None = typer.Option(None, help="Names of the MS bands, e.g. blue,green,red,nir."),
    test_fraction: float | None = typer.Option(None, help="Fraction of each class put in the test split."),
    seed: int = typer.Option(0, help="Seed of the split."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Tile a co-registered PAN / MS scene (aligned by geotransform) into a dataset."""
    from hashsearch.data.tiler import Scene, TileConfig, tile_scenes

    config = TileConfig(
        patch_size=patch_size, stride=stride, target_ratio=ratio, min_purity=min_purity,
        max_nodata_fraction=max_nodata, ms_bands=_int_list(ms_bands, "--ms-bands"),
        ms_band_names=[b.strip() for b in band_names.split(",")] if band_names else None,
        test_fraction=test_fraction, split_seed=seed,
    )
    scene = Scene(pan=pan, ms=ms[0] if len(ms) == 1 else list(ms), labels=labels)
    start = time.perf_counter()
    path = tile_scenes([scene], out, config, overwrite=overwrite, progress=progress)
    emit(_summary(path, time.perf_counter() - start), as_json)


@cli_errors
def build(
    name: str = typer.Argument(..., help="Recipe: nc-landsat7, eurosat-ms or fusebox-landsat7."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset to write (a Zarr folder)."),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Folder holding the data sets [default: $HASHSEARCH_DATA or ../shared/data]."
    ),
    ratio: int | None = typer.Option(None, help="nc-landsat7: PAN:MS ratio, 2 (native) or 4 (MS averaged 2x2)."),
    patch_size: int | None = typer.Option(None, help="nc-landsat7, fusebox-landsat7: PAN patch side."),
    stride: int | None = typer.Option(None, help="nc-landsat7, fusebox-landsat7: PAN step."),
    min_purity: float | None = typer.Option(None, help="nc-landsat7: smallest majority-class share."),
    test_fraction: float | None = typer.Option(None, help="Fraction of each class (fusebox: of scene groups) in test."),
    seed: int | None = typer.Option(None, help="Seed of the split [default 0]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Build a dataset from the real data (never downloads anything)."""
    from hashsearch.data.recipes import RECIPES, build_recipe

    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; one of {', '.join(RECIPES)}")
    given = {
        "ratio": ratio, "patch_size": patch_size, "stride": stride, "min_purity": min_purity,
        "test_fraction": test_fraction, "seed": seed,
    }
    accepted = inspect.signature(RECIPES[name]).parameters
    options: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:
            continue
        if key not in accepted:
            raise ValueError(f"--{key.replace('_', '-')} does not apply to the {name} recipe")
        options[key] = value
    start = time.perf_counter()
    path = build_recipe(name, out, root=data_root, overwrite=overwrite, progress=progress, **options)
    emit(_summary(path, time.perf_counter() - start), as_json)


@cli_errors
def info(
    path: Path = typer.Argument(..., help="A dataset folder, or a DSRSID .mat file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Describe a dataset: sizes, shapes, classes per split, CRS, statistics, provenance."""
    if path.suffix.lower() == ".mat" or path.is_file():
        import numpy as np

        from hashsearch.data.dsrsid import DSRSID

        with DSRSID(path) as ds:
            counts = np.bincount(ds.labels, minlength=len(ds.classes))
            result: dict[str, Any] = {
                "path": str(ds.path),
                "format": "DSRSID (MATLAB v7.3)",
                "num_samples": len(ds),
                "pan": f"uint8 {ds.pan_shape}",
                "ms": f"uint8 {ds.ms_shape}",
                "classes": {name: int(c) for name, c in zip(ds.classes, counts)},
            }
        emit(result, as_json)
        return
    from hashsearch.data.dual import dataset_info

    emit(dataset_info(path), as_json)
