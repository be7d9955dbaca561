"""Recipe pansharpening-pairs on the real data: bands, dtypes, registration, split (small subsets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hashsearch.data.dual import DualSourceDataset
from hashsearch.data.recipes import build_recipe
from hashsearch.data.recipes._base import registration_scores
from hashsearch.data.recipes.pansharpening_pairs import PAN_SHIFTS, SCENES, load_scene

pytestmark = pytest.mark.realdata


def _origin_of(ds: DualSourceDataset, scene: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.flatnonzero(ds.array("scene") == scene)
    return idx, ds.array("pan_origin")[idx]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_common_bands_from_two_sensors(need_real, tmp_path: Path) -> None:
    import rasterio
    import scipy.io

    folder = need_real("pansharpening-pairs")
    ds = DualSourceDataset(build_recipe("pansharpening-pairs", tmp_path / "p.zarr", scenes=["wv2", "dgif1"],
                                        progress=False))
    assert ds.meta["task"] == "instance" and ds.meta["ratio"] == 4
    np.testing.assert_array_equal(ds.labels, np.arange(len(ds)))
    assert ds.pan_shape == (1, 64, 64) and ds.ms_shape == (4, 16, 16)
    assert ds.meta["pan"]["dtype"] == "uint16"  # WorldView-2 is uint16, dgif1 uint8: the wider one
    assert ds.meta["ms"]["bands"] == ["blue", "green", "red", "nir"] and ds.meta["ms"]["rgb"] == [2, 1, 0]
    names = [s["name"] for s in ds.meta["scenes"]]
    assert names == ["wv2", "dgif1"]
    # WorldView-2: registered as it is; MS = bands 2, 3, 5, 7 (blue, green, red, NIR1) of I_MS.
    raw = scipy.io.loadmat(folder / "pnn" / "imgWV2.mat")
    idx, org = _origin_of(ds, 0)
    assert len(idx) == 400 and ds.meta["scenes"][0]["pan_shift"] == [0, 0]
    i = idx[123]
    r, c = org[123]
    np.testing.assert_array_equal(ds[i]["pan"][0], raw["I_PAN"][r : r + 64, c : c + 64])
    np.testing.assert_array_equal(ds[i]["ms"], raw["I_MS"][r // 4 : r // 4 + 16, c // 4 : c // 4 + 16, [1, 2, 4, 6]]
                                  .transpose(2, 0, 1))
    # dgif1: PAN shifted 2 rows down; MS bands stored red, green, blue, NIR (raw, not GDAL's RGBA).
    with rasterio.open(f"GTIFF_RAW:{folder / 'dgif' / 'MS1.tif'}") as m:
        ms1 = m.read()
    with rasterio.open(folder / "dgif" / "Pan1.tif") as p:
        pan1 = p.read(1)
    idx, org = _origin_of(ds, 1)
    assert ds.meta["scenes"][1]["pan_shift"] == [2, 0]
    i, (r, c) = idx[17], org[17]
    mi, mj = (r - 2) // 4, c // 4
    np.testing.assert_array_equal(ds[i]["pan"][0], pan1[r : r + 64, c : c + 64])
    np.testing.assert_array_equal(ds[i]["ms"], ms1[[2, 1, 0, 3], mi : mi + 16, mj : mj + 16])
    reg = ds.meta["scenes"][1]["registration"]
    assert reg["correlation"] > reg["correlation_unshifted"]


def test_eight_worldview2_bands_small_patches(need_real, tmp_path: Path) -> None:
    need_real("pansharpening-pairs")
    ds = DualSourceDataset(build_recipe("pansharpening-pairs", tmp_path / "w.zarr", scenes=["wv2"], bands="all",
                                        patch_size=32, progress=False))
    assert ds.pan_shape == (1, 32, 32) and ds.ms_shape == (8, 8, 8) and len(ds) == 1600
    assert ds.meta["ms"]["bands"][4] == "red" and ds.meta["ms"]["rgb"] == [4, 2, 1]
    assert len(ds.meta["stats"]["ms"]["mean"]) == 8
    with pytest.raises(ValueError, match="one band list"):
        build_recipe("pansharpening-pairs", tmp_path / "x.zarr", scenes=["wv2", "ge1"], bands="all")
    ge1 = DualSourceDataset(build_recipe("pansharpening-pairs", tmp_path / "g.zarr", scenes=["ge1"], progress=False))
    assert ge1.meta["pan"]["dtype"] == ge1.meta["ms"]["dtype"] == "uint8"
    assert not (tmp_path / "x.zarr").exists()


def test_region_split_keeps_test_ground_out_of_training(need_real, tmp_path: Path) -> None:
    need_real("pansharpening-pairs")
    ds = DualSourceDataset(build_recipe("pansharpening-pairs", tmp_path / "r.zarr", scenes=["ik", "dgif3"],
                                        progress=False))
    scene, split = ds.array("scene"), ds.split_codes
    for k in (0, 1):
        assert {0, 1} <= set(split[scene == k].tolist())  # every sensor on both sides
    assert 0.1 < (split == 1).mean() < 0.35
    # Overlapping patches (stride 32 < 64): training patches touching a test patch are dropped.
    ov = DualSourceDataset(build_recipe("pansharpening-pairs", tmp_path / "o.zarr", scenes=["dgif3"], stride=32,
                                        progress=False))
    split, org = ov.split_codes, ov.array("pan_origin")
    gap = np.abs(org[split == 0][:, None, :] - org[split == 1][None, :, :]).max(axis=2)
    assert gap.min() >= 64 and ov.meta["scenes"][0]["dropped_overlapping"] > 0  # no shared pixel
    by_scene = DualSourceDataset(build_recipe("pansharpening-pairs", tmp_path / "s.zarr", scenes=["ik", "dgif3"],
                                              split="scene", progress=False))
    s2, sp2 = by_scene.array("scene"), by_scene.split_codes
    assert all(len(set(sp2[s2 == k].tolist())) == 1 for k in (0, 1)) and len(set(sp2.tolist())) == 2


def test_the_shift_table_is_the_best_registration(need_real) -> None:
    folder = need_real("pansharpening-pairs")
    for name in SCENES:
        pan, ms, _ = load_scene(folder, name)
        dr, dc = PAN_SHIFTS[name]
        near = [(dr + a, dc + b) for a in (-1, 0, 1) for b in (-1, 0, 1)]
        scores = registration_scores(pan, ms, 4, near, margin=3)
        assert max(scores, key=lambda s: scores[s]) == (dr, dc), (name, scores)


@pytest.mark.slow
def test_measured_registration_equals_the_table(need_real, tmp_path: Path) -> None:
    need_real("pansharpening-pairs")
    ds = DualSourceDataset(build_recipe("pansharpening-pairs", tmp_path / "m.zarr", register="measure",
                                        progress=False))
    assert {s["name"]: tuple(s["pan_shift"]) for s in ds.meta["scenes"]} == PAN_SHIFTS
    assert len(ds) == 3 * 400 + 240 + 4 * 225
