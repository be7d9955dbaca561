"""hashsearch.data._io: a damaged input file gets an error naming it and the damage.

The real-data cases truncate or corrupt a copy of a real file in tmp_path (the shared
data stay read-only); the fake-scene cases run everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from hashsearch.data._io import load_mat, open_raster, read_image
from hashsearch.data.errors import MalformedDataError
from hashsearch.data.fake import write_fake_scene
from hashsearch.data.tiler import Scene, TileConfig, tile_scenes

NC_MS = [f"lsat7_2000_{b}0.tif" for b in (1, 2, 3, 4)]


def _truncate(src: Path, dst: Path, keep: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def _rewrite(src: Path, dst: Path) -> Path:
    """The same raster written again by GDAL: header and directory first, then the strips."""
    import rasterio

    with rasterio.open(src) as ds:
        profile, data = ds.profile, ds.read()
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    return dst


def test_truncated_fake_scene_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    sc = write_fake_scene(tmp_path / "in", pan_shape=(64, 64), ratio=4, seed=2)
    bad = _truncate(Path(sc.pan), tmp_path / "pan_cut.tif", 0.7)
    out = tmp_path / "d.zarr"
    with pytest.raises(MalformedDataError, match="truncated") as info:
        tile_scenes([Scene(pan=bad, ms=sc.ms)], out, TileConfig(patch_size=16), progress=False)
    assert str(bad) in str(info.value) and "PAN" in str(info.value)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".d.zarr")]


@pytest.mark.realdata
def test_truncated_real_geotiff_names_the_file(need_real, tmp_path: Path) -> None:
    folder = need_real("nc-landsat7")
    ms = [folder / f for f in NC_MS]
    # A byte-for-byte truncated copy of the published file (its directory is at the end).
    cut = _truncate(folder / "lsat7_2000_80.tif", tmp_path / "lsat7_2000_80.tif")
    with pytest.raises(MalformedDataError, match="could not be read \\(truncated") as info:
        tile_scenes([Scene(pan=cut, ms=ms)], tmp_path / "a.zarr", TileConfig(patch_size=32), progress=False)
    assert str(cut) in str(info.value) and "TIFFReadDirectory" in str(info.value)
    # The same raster rewritten (directory first), then truncated: the block check refuses it
    # instead of rasterio's bare "Read failed. See previous exception for details.".
    cut2 = _truncate(_rewrite(folder / "lsat7_2000_80.tif", tmp_path / "full.tif"), tmp_path / "pan_cut.tif")
    with pytest.raises(MalformedDataError) as info:
        tile_scenes([Scene(pan=cut2, ms=ms)], tmp_path / "b.zarr", TileConfig(patch_size=32), progress=False)
    msg = str(info.value)
    assert str(cut2) in msg and "truncated" in msg and "bytes" in msg and "Read failed" not in msg
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "b.zarr").exists()


@pytest.mark.realdata
def test_corrupt_block_of_a_real_geotiff_names_file_band_and_window(need_real, tmp_path: Path) -> None:
    folder = need_real("nc-landsat7")
    good = _rewrite(folder / "lsat7_2000_30.tif", tmp_path / "red.tif")
    data = bytearray(good.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 1500] = np.random.default_rng(0).integers(0, 256, 1500, dtype=np.uint8).tobytes()
    bad = tmp_path / "red_bad.tif"
    bad.write_bytes(bytes(data))  # same size: only decoding finds the damage
    ms = [folder / NC_MS[0], folder / NC_MS[1], bad, folder / NC_MS[3]]
    with pytest.raises(MalformedDataError) as info:
        tile_scenes([Scene(pan=folder / "lsat7_2000_80.tif", ms=ms)], tmp_path / "c.zarr",
                    TileConfig(patch_size=32), progress=False)
    msg = str(info.value)
    assert str(bad) in msg and "MS raster" in msg and "band 1" in msg and "Window(" in msg
    assert "Read failed" not in msg and "IReadBlock" in msg  # GDAL's own reason, not the bare wrapper
    assert not (tmp_path / "c.zarr").exists()


@pytest.mark.realdata
def test_truncated_mat_names_the_file(need_real, tmp_path: Path) -> None:
    mat = _truncate(need_real("fusebox-landsat7") / "cropped" / "1_ms.mat", tmp_path / "1_ms.mat", 0.5)
    with pytest.raises(MalformedDataError, match="could not be read as a MATLAB v5 file") as info:
        load_mat(mat, ["cropped_im"], "FuseBox MS")
    assert str(mat) in str(info.value)


@pytest.mark.realdata
def test_truncated_jpeg_names_the_file(need_real, tmp_path: Path) -> None:
    jpg = _truncate(need_real("aid-subset") / "Airport" / "airport_1.jpg", tmp_path / "airport_1.jpg", 0.5)
    with pytest.raises(MalformedDataError, match="truncated") as info:
        read_image(jpg, "AID")
    assert str(jpg) in str(info.value)


@pytest.mark.realdata
def test_cmyk_tagged_tiff_is_read_raw(need_real) -> None:
    import rasterio

    path = need_real("pansharpening-pairs") / "dgif" / "MS1.tif"
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning), rasterio.open(path) as converted:
        rgba = converted.read()
    with open_raster(path, "MS", georeferenced=False) as ds:
        raw = ds.read()
    # GDAL's RGBA view has a constant alpha band; the stored fourth band (NIR) varies.
    assert (rgba[3] == 255).all() and raw[3].std() > 5
    assert raw.shape == (4, 256, 256) and not np.array_equal(raw[:3], rgba[:3])


def test_missing_raster_is_data_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope.tif")):
        open_raster(tmp_path / "nope.tif", "PAN")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(os.urandom(64))
    with pytest.raises(MalformedDataError, match="could not be read \\(truncated"):
        open_raster(junk, "PAN")
