"""Recipe nc-landsat7 on the real data (skipped when it is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hashsearch.data.dual import DualSourceDataset
from hashsearch.data.recipes import build_recipe


def _round_mean(x: np.ndarray, f: int) -> np.ndarray:
    h, w = x.shape[-2] // f, x.shape[-1] // f
    return np.floor(x.astype(np.float64).reshape(*x.shape[:-2], h, f, w, f).mean(axis=(-3, -1)) + 0.5)


# --------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_nc_landsat7_pairs_and_labels_follow_the_geotransforms(need_real, tmp_path: Path) -> None:
    import rasterio
    from rasterio.windows import from_bounds

    folder = need_real("nc-landsat7")
    ds = DualSourceDataset(build_recipe("nc-landsat7", tmp_path / "nc.zarr", progress=False))
    assert ds.pan_shape == (1, 32, 32) and ds.ms_shape == (4, 16, 16) and ds.meta["ratio"] == 2
    assert ds.classes == ["developed", "agriculture", "herbaceous", "shrubland", "forest", "water", "sediment"]
    counts = np.bincount(ds.labels, minlength=7)
    assert len(ds) > 500 and counts[4] > counts[0] > counts[2] > 0  # forest > developed > herbaceous
    assert ds.meta["crs_id"] == "EPSG:32119"
    bounds = ds.array("bounds")
    pan_ds = rasterio.open(folder / "lsat7_2000_80.tif")
    ms_ds = [rasterio.open(folder / f"lsat7_2000_{b}0.tif") for b in (1, 2, 3, 4)]
    lab_ds = rasterio.open(folder / "landclass96.tif")
    try:
        for i in np.random.default_rng(0).choice(len(ds), 12, replace=False):
            s, (left, bottom, right, top) = ds[i], bounds[i]
            win = from_bounds(left, bottom, right, top, pan_ds.transform).round_offsets().round_lengths()
            np.testing.assert_array_equal(s["pan"][0], pan_ds.read(1, window=win))
            for b, m in enumerate(ms_ds):
                mwin = from_bounds(left, bottom, right, top, m.transform).round_offsets().round_lengths()
                np.testing.assert_array_equal(s["ms"][b], m.read(1, window=mwin))
            # The label: landclass96 at the PAN pixel centres (its own, offset grid).
            xs = left + 14.25 * (np.arange(32) + 0.5)
            ys = top - 14.25 * (np.arange(32) + 0.5)
            pts = [(x, y) for y in ys for x in xs]
            values = np.array([v[0] for v in lab_ds.sample(pts)])
            top_value = np.bincount(values[values > 0]).argmax()
            assert top_value == ds.meta["class_values"][s["label"]]
            assert (values == top_value).mean() >= 0.6
    finally:
        for d in (pan_ds, lab_ds, *ms_ds):
            d.close()
    test = DualSourceDataset(ds.path, "test")
    assert abs(len(test) - 0.2 * len(ds)) < 8


@pytest.mark.realdata
def test_nc_landsat7_four_to_one(need_real, tmp_path: Path) -> None:
    import rasterio
    from rasterio.windows import from_bounds

    folder = need_real("nc-landsat7")
    ds = DualSourceDataset(build_recipe("nc-landsat7", tmp_path / "nc4.zarr", ratio=4, progress=False))
    assert ds.pan_shape == (1, 64, 64) and ds.ms_shape == (4, 16, 16) and ds.meta["ratio"] == 4
    assert ds.meta["ms"]["pixel_size"] == [57.0, 57.0]
    with rasterio.open(folder / "lsat7_2000_30.tif") as red:
        for i in (0, len(ds) // 2, len(ds) - 1):
            left, bottom, right, top = ds.array("bounds")[i]
            win = from_bounds(left, bottom, right, top, red.transform).round_offsets().round_lengths()
            np.testing.assert_array_equal(ds[i]["ms"][2], _round_mean(red.read(1, window=win), 2))
