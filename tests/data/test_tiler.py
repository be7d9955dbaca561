"""The scene tiler on GeoTIFFs written here with known geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from hashsearch.data.dual import DualSourceDataset
from hashsearch.data.errors import AlignmentError, DataNotFoundError, MalformedDataError
from hashsearch.data.fake import FakeScene, write_fake_scene
from hashsearch.data.tiler import Scene, TileConfig, iter_scene_tiles, tile_scene, tile_scenes


def _round_mean(x: np.ndarray, f: int) -> np.ndarray:
    h, w = x.shape[-2] // f, x.shape[-1] // f
    m = x.astype(np.float64).reshape(*x.shape[:-2], h, f, w, f).mean(axis=(-3, -1))
    return np.floor(m + 0.5)


def _rewrite(src: Path, dst: Path, **changes: object) -> Path:
    with rasterio.open(src) as ds:
        data, profile = ds.read(), ds.profile
    profile.update(changes)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    return dst


def _reference_majority(scene: FakeScene, patch: int, stride: int) -> dict[tuple[int, int], tuple[int, float]]:
    """(row, col) -> (majority raw label, purity) of every nodata-free patch, computed
    independently: labels sampled with rasterio's ``sample`` at every PAN pixel centre."""
    with rasterio.open(scene.pan) as pan_ds, rasterio.open(scene.labels) as lab_ds:
        pan = pan_ds.read(1)
        h, w = pan.shape
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        xs, ys = rasterio.transform.xy(pan_ds.transform, rows.ravel(), cols.ravel(), offset="center")
        lab = np.array([v[0] for v in lab_ds.sample(zip(xs, ys, strict=True))]).reshape(h, w)
    out = {}
    for r in range(0, h - patch + 1, stride):
        for c in range(0, w - patch + 1, stride):
            if (pan[r : r + patch, c : c + patch] == 0).any():
                continue
            values, counts = np.unique(lab[r : r + patch, c : c + patch], return_counts=True)
            counts[values == 0] = -1
            k = np.argmax(counts)
            out[(r, c)] = (int(values[k]), counts[k] / patch**2)
    return out


def _reference(scene: FakeScene, patch: int, stride: int, purity: float) -> set[tuple[int, int, int]]:
    """Kept (row, col, raw label) of the reference."""
    return {(r, c, v) for (r, c), (v, p) in _reference_majority(scene, patch, stride).items() if p >= purity}


def _tiled(sc: FakeScene, out: Path, config: TileConfig, *, labels: bool = True) -> DualSourceDataset:
    """Tile a fake scene (with its label raster unless ``labels=False``) and open the dataset."""
    return DualSourceDataset(tile_scene(sc.pan, sc.ms, out, sc.labels if labels else None, config, progress=False))


def _ms_transform(sc: FakeScene) -> Affine:
    with rasterio.open(sc.ms) as ds:
        return ds.transform


@pytest.fixture
def scene(tmp_path: Path) -> FakeScene:
    # landclass96-like label grid: its own pixel size, origin offset by a fraction of a pixel.
    return write_fake_scene(
        tmp_path / "in", pan_shape=(64, 96), ratio=4, pan_pixel=2.0, label_pixel=7.0,
        label_offset=(-3.1, 2.6), nodata_box=(40, 44, 10, 12), seed=3,
    )


def test_pairs_cover_the_same_ground(tmp_path: Path) -> None:
    sc = write_fake_scene(tmp_path / "in", pan_shape=(48, 64), ratio=4, ms_origin_shift=(1, 2), seed=5)
    ds = _tiled(sc, tmp_path / "d.zarr", TileConfig(patch_size=16, stride=8, min_purity=0.0))
    assert ds.pan_shape == (1, 16, 16) and ds.ms_shape == (4, 4, 4) and ds.meta["ratio"] == 4
    origins, bounds = ds.array("pan_origin"), ds.array("bounds")
    assert len(ds) == 5 * 7  # every patch of the 48 x 64 PAN raster at stride 8 (min_purity 0)
    with rasterio.open(sc.pan) as pan_ds:
        for i in range(len(ds)):
            s = ds[i]
            r, c = origins[i]
            np.testing.assert_array_equal(s["pan"][0], pan_ds.read(1, window=Window(c, r, 16, 16)))
            mean = _round_mean(s["pan"][0], 4)
            for b in range(4):  # MS band b is the block mean of the PAN under it, plus 10 b
                np.testing.assert_array_equal(s["ms"][b], mean + 10 * b)
            x0, y0 = sc.origin
            np.testing.assert_allclose(bounds[i], [x0 + 2 * c, y0 - 2 * (r + 16), x0 + 2 * (c + 16), y0 - 2 * r])
    assert ds.meta["crs_id"] == "EPSG:32650"


def test_patch_selection_matches_reference(scene: FakeScene, tmp_path: Path) -> None:
    cfg = TileConfig(patch_size=16, stride=8, min_purity=0.75, test_fraction=0.25, split_seed=1)
    ds = _tiled(scene, tmp_path / "d.zarr", cfg)
    got = {(int(r), int(c), int(ds.classes[k])) for (r, c), k in zip(ds.array("pan_origin"), ds.labels, strict=True)}
    expected = _reference(scene, 16, 8, 0.75)
    assert got == expected
    assert len(expected) > 20
    # Straddling patches were dropped, nodata patches too.
    assert any(c == 40 for _, c, _ in expected) is False  # split at x col 48.3: patch 40..56 is ~50 % pure
    assert not any(r <= 43 < r + 16 and c <= 11 < c + 16 for r, c, _ in got)
    assert ds.meta["class_values"] == [1, 2, 3, 4] and ds.classes == ["1", "2", "3", "4"]
    assert ds.meta["splits"]["rule"] == "per-class"
    counts = np.bincount(ds.labels)
    test = DualSourceDataset(ds.path, "test")
    np.testing.assert_array_equal(np.bincount(test.labels, minlength=4), np.round(0.25 * counts).clip(1))


def test_majority_and_purity_match_reference(scene: FakeScene) -> None:
    batches = list(iter_scene_tiles(Scene(scene.pan, scene.ms, scene.labels), TileConfig(patch_size=16, stride=4,
                                                                                           min_purity=0.0)))
    got = {
        (int(r), int(c)): (int(v), float(p))
        for b in batches for (r, c), v, p in zip(b.pan_origin, b.raw_label, b.purity, strict=True)
    }
    ref = _reference_majority(scene, 16, 4)
    assert got.keys() == ref.keys()
    for key, (value, purity) in ref.items():
        assert got[key][0] == value and got[key][1] == pytest.approx(purity), key
    assert len({round(p, 6) for _, p in got.values()}) > 10  # the purities really vary


def test_band_per_file_equals_multiband(tmp_path: Path) -> None:
    kw = {"pan_shape": (32, 48), "ratio": 2, "seed": 9, "label_offset": (-12.5 / 28.5 * 4, 14.25 / 28.5 * 4)}
    one = write_fake_scene(tmp_path / "a", **kw)
    per = write_fake_scene(tmp_path / "b", band_per_file=True, **kw)
    assert isinstance(per.ms, list) and len(per.ms) == 4
    cfg = TileConfig(patch_size=8, min_purity=0.5)
    a, b = _tiled(one, tmp_path / "a.zarr", cfg), _tiled(per, tmp_path / "b.zarr", cfg)
    assert len(a) == len(b) > 0
    pa, pb = a.read(np.arange(len(a))), b.read(np.arange(len(b)))
    for key in ("pan", "ms", "label"):
        np.testing.assert_array_equal(pa[key], pb[key])
    assert b.meta["ms"]["bands"] == ["scene_ms_b1", "scene_ms_b2", "scene_ms_b3", "scene_ms_b4"]


def test_ms_band_selection_and_names(scene: FakeScene, tmp_path: Path) -> None:
    cfg = TileConfig(patch_size=16, min_purity=0.0, ms_bands=[3, 1], ms_band_names=["red", "blue"])
    ds = _tiled(scene, tmp_path / "d.zarr", cfg)
    s = ds[0]
    mean = _round_mean(s["pan"][0], 4)
    np.testing.assert_array_equal(s["ms"][0], mean + 20)
    np.testing.assert_array_equal(s["ms"][1], mean)
    assert ds.meta["ms"]["bands"] == ["red", "blue"]


def test_target_ratio_block_averages_ms(tmp_path: Path) -> None:
    sc = write_fake_scene(tmp_path / "in", pan_shape=(32, 48), ratio=2, ms_origin_shift=(1, 1), seed=2)
    ds = _tiled(sc, tmp_path / "d.zarr", TileConfig(patch_size=16, target_ratio=4, min_purity=0.0))
    assert ds.ms_shape == (4, 4, 4) and ds.meta["ratio"] == 4
    assert ds.meta["ms"]["pixel_size"] == [8.0, 8.0]
    with rasterio.open(sc.ms) as ms_ds:
        native = ms_ds.read()
    for i, (r, c) in enumerate(ds.array("pan_origin")):
        # native MS pixel of PAN (r, c): the MS raster starts one MS pixel north-west of PAN.
        mr, mc = r // 2 + 1, c // 2 + 1
        np.testing.assert_array_equal(ds[i]["ms"], _round_mean(native[:, mr : mr + 8, mc : mc + 8], 2))
    with pytest.raises(AlignmentError, match="not a multiple"):
        tile_scene(sc.pan, sc.ms, tmp_path / "x.zarr", config=TileConfig(patch_size=12, target_ratio=3))


def test_nodata_tolerance(scene: FakeScene, tmp_path: Path) -> None:
    strict = list(iter_scene_tiles(Scene(scene.pan, scene.ms), TileConfig(patch_size=16)))
    loose = list(iter_scene_tiles(Scene(scene.pan, scene.ms), TileConfig(patch_size=16, max_nodata_fraction=1.0)))
    n_strict, n_loose = sum(len(b.pan) for b in strict), sum(len(b.pan) for b in loose)
    assert n_loose == 4 * 6 and n_strict == n_loose - 1  # exactly the patch holding the nodata box


def test_without_labels_the_dataset_is_instance_level(scene: FakeScene, tmp_path: Path) -> None:
    ds = _tiled(scene, tmp_path / "d.zarr", TileConfig(patch_size=32, test_fraction=0.5), labels=False)
    assert ds.meta["task"] == "instance" and ds.classes is None
    np.testing.assert_array_equal(ds.labels, np.arange(len(ds)))
    assert len(DualSourceDataset(ds.path, "test")) == round(len(ds) / 2)


def test_class_list_fixes_order_and_ignores_other_values(scene: FakeScene, tmp_path: Path) -> None:
    cfg = TileConfig(patch_size=16, stride=8, min_purity=0.75, classes={4: "four", 1: "one"})
    ds = _tiled(scene, tmp_path / "d.zarr", cfg)
    assert ds.classes == ["one", "four"] and ds.meta["class_values"] == [1, 4]
    expected = {(r, c, v) for r, c, v in _reference(scene, 16, 8, 0.75) if v in (1, 4)}
    got = {(int(r), int(c), [1, 4][k]) for (r, c), k in zip(ds.array("pan_origin"), ds.labels, strict=True)}
    assert got == expected


def test_several_scenes(tmp_path: Path) -> None:
    a = write_fake_scene(tmp_path / "a", pan_shape=(32, 32), seed=1, name="a")
    b = write_fake_scene(tmp_path / "b", pan_shape=(32, 64), seed=2, name="b")
    cfg = TileConfig(patch_size=16, min_purity=0.0)
    ds = DualSourceDataset(tile_scenes([Scene(a.pan, a.ms, a.labels), Scene(b.pan, b.ms, b.labels, name="bee")],
                                       tmp_path / "d.zarr", cfg, progress=False))
    np.testing.assert_array_equal(np.bincount(ds.array("scene")), [4, 8])
    assert [s["name"] for s in ds.meta["scenes"]] == ["a_pan", "bee"]
    assert [s["pairs"] for s in ds.meta["scenes"]] == [4, 8]
    with pytest.raises(ValueError, match="every scene"):
        tile_scenes([Scene(a.pan, a.ms, a.labels), Scene(b.pan, b.ms)], tmp_path / "e.zarr", cfg)


# --------------------------------------------------------------------------- errors
def test_crs_mismatch(scene: FakeScene, tmp_path: Path) -> None:
    ms = _rewrite(scene.ms, tmp_path / "ms_other.tif", crs="EPSG:32651")
    with pytest.raises(AlignmentError, match=r"CRS mismatch.*EPSG:32651.*EPSG:32650"):
        tile_scene(scene.pan, ms, tmp_path / "d.zarr")
    lab = _rewrite(scene.labels, tmp_path / "lab_other.tif", crs="EPSG:4326")
    with pytest.raises(AlignmentError, match="label raster"):
        tile_scene(scene.pan, scene.ms, tmp_path / "d.zarr", labels=lab)
    assert not (tmp_path / "d.zarr").exists()


def test_rasters_that_do_not_overlap(scene: FakeScene, tmp_path: Path) -> None:
    t = _ms_transform(scene)
    ms = _rewrite(scene.ms, tmp_path / "far.tif", transform=Affine(t.a, 0, t.c + 10_000, 0, t.e, t.f))
    with pytest.raises(AlignmentError, match="do not overlap"):
        tile_scene(scene.pan, ms, tmp_path / "d.zarr")


def test_non_integer_ratio(scene: FakeScene, tmp_path: Path) -> None:
    t = _ms_transform(scene)
    ms = _rewrite(scene.ms, tmp_path / "odd.tif", transform=Affine(5.0, 0, t.c, 0, -5.0, t.f))
    with pytest.raises(AlignmentError, match=r"whole number.*ratio 2\.5 x 2\.5"):
        tile_scene(scene.pan, ms, tmp_path / "d.zarr")
    ms = _rewrite(scene.ms, tmp_path / "aniso.tif", transform=Affine(8.0, 0, t.c, 0, -4.0, t.f))
    with pytest.raises(AlignmentError, match="same whole number"):
        tile_scene(scene.pan, ms, tmp_path / "d.zarr")


def test_grids_that_do_not_nest(scene: FakeScene, tmp_path: Path) -> None:
    t = _ms_transform(scene)
    ms = _rewrite(scene.ms, tmp_path / "half.tif", transform=Affine(t.a, 0, t.c + 1.0, 0, t.e, t.f))
    with pytest.raises(AlignmentError, match="does not nest"):
        tile_scene(scene.pan, ms, tmp_path / "d.zarr")


def test_rotated_transform(scene: FakeScene, tmp_path: Path) -> None:
    t = _ms_transform(scene)
    ms = _rewrite(scene.ms, tmp_path / "rot.tif", transform=Affine(t.a, 0.5, t.c, 0.5, t.e, t.f))
    with pytest.raises(AlignmentError, match="rotated"):
        tile_scene(scene.pan, ms, tmp_path / "d.zarr")


def test_missing_bands_and_files(scene: FakeScene, tmp_path: Path) -> None:
    with pytest.raises(MalformedDataError, match=r"4 band\(s\); requested band\(s\) \[5\] are missing"):
        tile_scene(scene.pan, scene.ms, tmp_path / "d.zarr", config=TileConfig(ms_bands=[1, 5]))
    with pytest.raises(MalformedDataError, match="pan_band"):
        tile_scene(scene.pan, scene.ms, tmp_path / "d.zarr", config=TileConfig(pan_band=2))
    with pytest.raises(DataNotFoundError, match="MS raster not found"):
        tile_scene(scene.pan, [scene.ms, tmp_path / "b2.tif"], tmp_path / "d.zarr")
    other = write_fake_scene(tmp_path / "other", pan_shape=(32, 32), band_per_file=True, ms_origin_shift=(1, 0))
    with pytest.raises(MalformedDataError, match="share one grid"):
        tile_scene(scene.pan, [scene.ms, other.ms[0]], tmp_path / "d.zarr")


def test_patch_must_be_a_multiple_of_the_ratio(scene: FakeScene, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiples of the effective PAN:MS ratio 4"):
        tile_scene(scene.pan, scene.ms, tmp_path / "d.zarr", config=TileConfig(patch_size=18))
    with pytest.raises(ValueError, match="multiples"):
        tile_scene(scene.pan, scene.ms, tmp_path / "d.zarr", config=TileConfig(patch_size=16, stride=6))
    with pytest.raises(ValueError, match="no pairs survived"):
        tile_scene(scene.pan, scene.ms, tmp_path / "d.zarr", scene.labels, TileConfig(patch_size=64, min_purity=1.0),
                   progress=False)
    assert not (tmp_path / "d.zarr").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in"]  # no partial folder left


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="min_purity"):
        TileConfig(min_purity=1.5)
    with pytest.raises(ValueError, match="patch_size"):
        TileConfig(patch_size=0)


def test_unreadable_raster(scene: FakeScene, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00 definitely not a tiff")
    with pytest.raises(MalformedDataError, match="could not be read"):
        tile_scene(bad, scene.ms, tmp_path / "d.zarr")
