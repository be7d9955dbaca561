"""Recipe eurosat-ms: the documented derivation, and the build on the real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hashsearch.data.dual import DualSourceDataset
from hashsearch.data.recipes import build_recipe
from hashsearch.data.recipes.eurosat_ms import EUROSAT_PAN_WEIGHTS, eurosat_pair


def _round_mean(x: np.ndarray, f: int) -> np.ndarray:
    h, w = x.shape[-2] // f, x.shape[-1] // f
    return np.floor(x.astype(np.float64).reshape(*x.shape[:-2], h, f, w, f).mean(axis=(-3, -1)) + 0.5)


def test_eurosat_pair_is_the_documented_transform() -> None:
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 10_000, (13, 64, 64), dtype=np.uint16)
    pan, ms = eurosat_pair(tile)
    bands = tile[[1, 2, 3, 7]].astype(np.float64)  # B02, B03, B04, B08
    assert sum(EUROSAT_PAN_WEIGHTS) == pytest.approx(1.0)
    np.testing.assert_array_equal(pan[0], np.floor(np.tensordot(EUROSAT_PAN_WEIGHTS, bands, 1) + 0.5))
    np.testing.assert_array_equal(ms, _round_mean(bands, 4))
    assert pan.dtype == ms.dtype == np.uint16 and ms.shape == (4, 16, 16)


@pytest.mark.realdata
def test_eurosat_ms(need_real, tmp_path: Path) -> None:
    import rasterio

    folder = need_real("eurosat-ms")
    ds = DualSourceDataset(build_recipe("eurosat-ms", tmp_path / "eu.zarr", progress=False))
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert ds.classes == classes and len(classes) == 10
    sizes = [len(list((folder / c).glob("*.tif"))) for c in classes]
    np.testing.assert_array_equal(np.bincount(ds.labels), sizes)
    assert len(ds) == sum(sizes) == 469
    test = DualSourceDataset(ds.path, "test")
    np.testing.assert_array_equal(np.bincount(test.labels), [round(0.2 * n) for n in sizes])
    assert ds.pan_shape == (1, 64, 64) and ds.ms_shape == (4, 16, 16) and ds.meta["pan"]["dtype"] == "uint16"
    name = ds.meta["scenes"][int(ds.array("scene")[100])]["file"]
    with rasterio.open(folder / name) as src:
        pan, ms = eurosat_pair(src.read())
    np.testing.assert_array_equal(ds[100]["pan"], pan)
    np.testing.assert_array_equal(ds[100]["ms"], ms)
    assert ds[100]["label"] == classes.index(name.split("/")[0])


def test_eurosat_pair_small_pan_sizes() -> None:
    # Every band constant except B04 (red), 100 and 101 alternating along columns:
    # averaging 2 x 2 or more gives 100.5 exactly, which rounds half up to 101.
    tile = np.zeros((13, 64, 64), np.uint16)
    for k, v in zip((1, 2, 7), (1000, 2000, 4000), strict=True):  # B02, B03, B08
        tile[k] = v
    tile[3] = 100 + (np.arange(64) % 2)
    for size in (32, 16):
        pan, ms = eurosat_pair(tile, pan_size=size)
        assert pan.shape == (1, size, size) and ms.shape == (4, size // 4, size // 4)
        assert ms[:, 0, 0].tolist() == [1000, 2000, 101, 4000]
        # 0.169 * 1000 + 0.191 * 2000 + 0.303 * 100.5 + 0.337 * 4000 = 169 + 382 + 30.45 + 1348 = 1929.45
        assert (pan == 1929).all()
    with pytest.raises(ValueError, match="cannot give"):
        eurosat_pair(tile, pan_size=24)


@pytest.mark.realdata
def test_eurosat_ms_32(need_real, tmp_path: Path) -> None:
    need_real("eurosat-ms")
    ds = DualSourceDataset(build_recipe("eurosat-ms", tmp_path / "eu32.zarr", pan_size=32, progress=False))
    assert ds.pan_shape == (1, 32, 32) and ds.ms_shape == (4, 8, 8) and len(ds) == 469
    assert ds.meta["pan"]["pixel_size"] == [20.0, 20.0] and ds.meta["ms"]["rgb"] == [2, 1, 0]
