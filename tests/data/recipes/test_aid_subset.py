"""Recipe aid-subset: the documented derivation, and builds on the real data (small subsets)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hashsearch.data.dual import DualSourceDataset
from hashsearch.data.errors import MalformedDataError
from hashsearch.data.recipes import build_recipe
from hashsearch.data.recipes.aid_subset import aid_pair

AID_CLASSES = [
    "Airport", "BareLand", "BaseballField", "Beach", "Bridge", "Center", "Church", "Commercial",
    "DenseResidential", "Desert", "Farmland", "Forest", "Industrial", "Meadow", "MediumResidential", "Mountain",
    "Park", "Parking", "Playground", "Pond", "Port", "RailwayStation", "Resort", "River", "School",
    "SparseResidential", "Square", "Stadium", "StorageTanks", "Viaduct",
]


def test_aid_pair_worked_example() -> None:
    # A 150 x 150 image whose centre 128 x 128 crop starts at pixel 11: outside it 255,
    # inside it 4 x 4 blocks of one colour each (R, G, B) = (40, 80, 120) except the
    # top-left block, (200, 100, 0), and the block right of it, which alternates
    # (10, 10, 10) / (11, 11, 11) pixel by pixel (mean 10.5 -> rounds half up to 11).
    img = np.full((150, 150, 3), 255, np.uint8)
    img[11:139, 11:139] = (40, 80, 120)
    img[11:15, 11:15] = (200, 100, 0)
    checker = (np.indices((4, 4)).sum(axis=0) % 2).astype(np.uint8)
    img[11:15, 15:19] = (10 + checker)[..., None]
    pan, ms = aid_pair(img)
    assert pan.shape == (1, 128, 128) and ms.shape == (3, 32, 32) and pan.dtype == ms.dtype == np.uint8
    # MS bands are blue, green, red.
    assert ms[:, 0, 0].tolist() == [0, 100, 200] and ms[:, 0, 1].tolist() == [11, 11, 11]
    assert ms[:, 5, 7].tolist() == [120, 80, 40]
    # PAN: 0.299 * 40 + 0.587 * 80 + 0.114 * 120 = 11.96 + 46.96 + 13.68 = 72.6 -> 73;
    # 0.299 * 200 + 0.587 * 100 = 59.8 + 58.7 = 118.5 -> 119 (half up).
    assert pan[0, 50, 50] == 73 and pan[0, 0, 0] == 119 and pan[0, 0, 4] == 10 and pan[0, 0, 5] == 11
    # pan_size 32 averages the crop 4 x 4 first: the top-left PAN pixel is the block mean
    # (118.5 -> 119); the MS pixel averages 4 x 4 of those: one block of red 200,
    # the checker block (10.5) and 14 of 40 -> (200 + 10.5 + 14 * 40) / 16 = 48.2 -> 48 red.
    pan32, ms32 = aid_pair(img, pan_size=32)
    assert pan32.shape == (1, 32, 32) and ms32.shape == (3, 8, 8)
    assert pan32[0, 0, 0] == 119 and ms32[2, 0, 0] == 48 and ms32[2, 3, 3] == 40


@pytest.mark.realdata
def test_aid_subset_small(need_real, tmp_path: Path) -> None:
    from PIL import Image

    folder = need_real("aid-subset")
    ds = DualSourceDataset(build_recipe("aid-subset", tmp_path / "aid.zarr", per_class=4, progress=False))
    assert ds.classes == AID_CLASSES and ds.meta["task"] == "class"
    np.testing.assert_array_equal(np.bincount(ds.labels), [4] * 30)
    assert len(DualSourceDataset(ds.path, "test")) == 30  # round(0.2 * 4) = 1 per class
    assert ds.pan_shape == (1, 128, 128) and ds.ms_shape == (3, 32, 32) and ds.meta["pan"]["dtype"] == "uint8"
    assert ds.meta["ms"]["bands"] == ["blue", "green", "red"] and ds.meta["ms"]["rgb"] == [2, 1, 0]
    assert ds.meta["provenance"]["recipe_options"]["verified_md5"] is True
    # The lowest-numbered images, in number order (airport_1, _2, _3, _4; not _1, _10, _100).
    assert [s["file"] for s in ds.meta["scenes"][:4]] == [f"Airport/airport_{k}.jpg" for k in (1, 2, 3, 4)]
    k = 37
    raw = np.asarray(Image.open(folder / ds.meta["scenes"][k]["file"]))
    np.testing.assert_array_equal(ds[k]["ms"][2, 0, 0], np.floor(raw[11:15, 11:15, 0].mean() + 0.5))
    luma = raw[11:139, 11:139].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_array_equal(ds[k]["pan"][0], np.floor(luma + 0.5))
    assert ds[k]["label"] == AID_CLASSES.index(ds.meta["scenes"][k]["file"].split("/")[0])


@pytest.mark.realdata
def test_aid_subset_small_patches_and_class_subset(need_real, tmp_path: Path) -> None:
    need_real("aid-subset")
    ds = DualSourceDataset(build_recipe("aid-subset", tmp_path / "a.zarr", per_class=3, pan_size=32,
                                        classes=["Forest", "Beach"], progress=False))
    assert ds.pan_shape == (1, 32, 32) and ds.ms_shape == (3, 8, 8)
    assert ds.classes == ["Beach", "Forest"] and len(ds) == 6


@pytest.mark.realdata
def test_aid_subset_damaged_copy_is_refused(need_real, tmp_path: Path) -> None:
    folder = need_real("aid-subset")
    root = tmp_path / "data"
    manifest = json.loads((folder / "manifest.json").read_text())
    files = {}
    for c in ("Beach", "Pond"):
        (root / "aid-subset" / c).mkdir(parents=True)
        for k in (1, 2):
            rel = f"{c}/{c.lower()}_{k}.jpg"
            shutil.copy(folder / rel, root / "aid-subset" / rel)
            files[rel] = manifest["files"][rel]
    (root / "aid-subset" / "manifest.json").write_text(json.dumps({"files": files}))
    assert len(DualSourceDataset(build_recipe("aid-subset", tmp_path / "ok.zarr", root=root, progress=False))) == 4
    bad = root / "aid-subset" / "Pond" / "pond_2.jpg"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(MalformedDataError, match="does not match its md5") as info:
        build_recipe("aid-subset", tmp_path / "bad.zarr", root=root, progress=False)
    assert str(bad) in str(info.value)
    # Without the md5 check, decoding still finds the damage and names the file.
    with pytest.raises(MalformedDataError, match="truncated or damaged") as info:
        build_recipe("aid-subset", tmp_path / "bad.zarr", root=root, verify=False, progress=False)
    assert str(bad) in str(info.value) and not (tmp_path / "bad.zarr").exists()


@pytest.mark.realdata
@pytest.mark.slow
def test_aid_subset_full(need_real, tmp_path: Path) -> None:
    need_real("aid-subset")
    ds = DualSourceDataset(build_recipe("aid-subset", tmp_path / "aid.zarr", progress=False))
    assert len(ds) == 6000 and np.bincount(ds.labels).tolist() == [200] * 30
    assert np.bincount(ds.split_codes).tolist() == [4800, 1200]
