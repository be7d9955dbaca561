"""Recipe fusebox-landsat7: pair cutting, scene groups, registration, the build on the real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hashsearch.data.dual import DualSourceDataset
from hashsearch.data.recipes import build_recipe
from hashsearch.data.recipes.fusebox_landsat7 import FUSEBOX_PAN_SHIFT, _overlap_groups, fusebox_pairs


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
