"""Recipes on the real data in $HASHSEARCH_DATA (skipped when it is absent), and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hashsearch.data.dual import DualSourceDataset
from hashsearch.data.errors import DataNotFoundError
from hashsearch.data.recipes import (
    EUROSAT_PAN_WEIGHTS,
    FUSEBOX_PAN_SHIFT,
    _overlap_groups,
    build_recipe,
    eurosat_pair,
    fusebox_pairs,
)


def _round_mean(x: np.ndarray, f: int) -> np.ndarray:
    h, w = x.shape[-2] // f, x.shape[-1] // f
    return np.floor(x.astype(np.float64).reshape(*x.shape[:-2], h, f, w, f).mean(axis=(-3, -1)) + 0.5)


def test_missing_data_names_path_and_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHSEARCH_DATA", str(tmp_path))
    for name in ("nc-landsat7", "eurosat-ms", "fusebox-landsat7"):
        with pytest.raises(DataNotFoundError, match="HASHSEARCH_DATA") as info:
            build_recipe(name, tmp_path / "out.zarr")
        assert str(tmp_path / name) in str(info.value)
    with pytest.raises(ValueError, match="unknown recipe"):
        build_recipe("dsrsid", tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


def test_eurosat_pair_is_the_documented_transform() -> None:
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 10_000, (13, 64, 64), dtype=np.uint16)
    pan, ms = eurosat_pair(tile)
    bands = tile[[1, 2, 3, 7]].astype(np.float64)  # B02, B03, B04, B08
    assert sum(EUROSAT_PAN_WEIGHTS) == pytest.approx(1.0)
    np.testing.assert_array_equal(pan[0], np.floor(np.tensordot(EUROSAT_PAN_WEIGHTS, bands, 1) + 0.5))
    np.testing.assert_array_equal(ms, _round_mean(bands, 4))
    assert pan.dtype == ms.dtype == np.uint16 and ms.shape == (4, 16, 16)


def test_fusebox_pairs_apply_the_shift() -> None:
    pan = np.arange(40 * 40, dtype=np.int64).reshape(40, 40)
    ms = np.arange(20 * 20, dtype=np.int64).reshape(1, 20, 20)
    pans, mss, origins = fusebox_pairs(pan, ms, patch_size=8, stride=8, pan_shift=(-1, -1))
    # MS patches start at MS pixel 1 (so that PAN row 2 i - 1 >= 0), then every 4 MS pixels.
    assert origins[:3].tolist() == [[1, 1], [1, 9], [1, 17]]
    np.testing.assert_array_equal(mss[0, 0], ms[0, 1:5, 1:5])
    np.testing.assert_array_equal(pans[0, 0], pan[1:9, 1:9])
    _, _, origins0 = fusebox_pairs(pan, ms, patch_size=8, stride=8, pan_shift=(0, 0))
    assert origins0[0].tolist() == [0, 0] and len(origins0) == 25


def test_overlapping_crops_share_a_group() -> None:
    loc = [
        {"path_row": "P1", "date": "d", "x": 0, "y": 0, "width": 400, "height": 400},
        {"path_row": "P1", "date": "d", "x": 399, "y": 10, "width": 400, "height": 400},
        {"path_row": "P1", "date": "d", "x": 0, "y": 410, "width": 400, "height": 400},  # touches 0 and 1 only
        {"path_row": "P2", "date": "d", "x": 0, "y": 0, "width": 400, "height": 400},
    ]
    g = _overlap_groups(loc)
    assert g[0] == g[1] and len({g[0], g[2], g[3]}) == 3


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


@pytest.mark.realdata
def test_fusebox_landsat7_subset(need_real, tmp_path: Path) -> None:
    import scipy.io

    folder = need_real("fusebox-landsat7")
    ds = DualSourceDataset(build_recipe("fusebox-landsat7", tmp_path / "fb.zarr", scenes=[1, 7, 33, 34],
                                        progress=False))
    assert len(ds) == 4 * 144 and ds.meta["task"] == "instance"
    np.testing.assert_array_equal(ds.labels, np.arange(len(ds)))
    assert ds.pan_shape == (1, 64, 64) and ds.ms_shape == (4, 32, 32)
    scene, split = ds.array("scene"), ds.split_codes
    groups = {s["name"]: s["group"] for s in ds.meta["scenes"]}
    assert groups["33"] == groups["34"] != groups["1"]
    # Overlapping crops 33 and 34 are on the same side of the split.
    assert len(set(split[np.isin(scene, [2, 3])])) == 1
    # MS band order: blue, green, red, NIR from the red-first file.
    ms_raw = scipy.io.loadmat(folder / "cropped" / "1_ms.mat")["cropped_im"]
    r, c = ds.array("pan_origin")[0]
    i, j = (r + 1) // 2, (c + 1) // 2
    np.testing.assert_array_equal(ds[0]["ms"][0], ms_raw[i : i + 32, j : j + 32, 2])
    np.testing.assert_array_equal(ds[0]["ms"][2], ms_raw[i : i + 32, j : j + 32, 0])


@pytest.mark.realdata
def test_fusebox_shift_is_the_best_registration(need_real) -> None:
    import scipy.io

    folder = need_real("fusebox-landsat7") / "cropped"
    for n in (2, 20):
        ms = scipy.io.loadmat(folder / f"{n}_ms.mat")["cropped_im"].astype(np.float64)[..., [0, 1, 3]].mean(-1)
        pan = scipy.io.loadmat(folder / f"{n}_pan.mat")["cropped_gray"].astype(np.float64)
        score = {}
        for dr in (-2, -1, 0, 1):
            for dc in (-2, -1, 0, 1):
                block = pan[8 + dr : 784 + dr, 8 + dc : 784 + dc].reshape(388, 2, 388, 2).mean(axis=(1, 3))
                score[(dr, dc)] = np.corrcoef(block.ravel(), ms[4:392, 4:392].ravel())[0, 1]
        assert max(score, key=score.get) == FUSEBOX_PAN_SHIFT


@pytest.mark.realdata
@pytest.mark.slow
def test_fusebox_landsat7_full(need_real, tmp_path: Path) -> None:
    need_real("fusebox-landsat7")
    ds = DualSourceDataset(build_recipe("fusebox-landsat7", tmp_path / "fb.zarr", progress=False))
    assert len(ds) == 39 * 144
    scene, split = ds.array("scene"), ds.split_codes
    by_group: dict[int, set[int]] = {}
    for k, meta in enumerate(ds.meta["scenes"]):
        by_group.setdefault(meta["group"], set()).update(set(split[scene == k].tolist()))
    assert all(len(sides) == 1 for sides in by_group.values())  # no group straddles the split
    assert len(by_group) == 36  # 39 scenes, three overlapping pairs
