"""The recipe registry (hashsearch.data.recipes) and what the recipes share (_base)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hashsearch.data.recipes as recipes_pkg
from hashsearch.data.errors import DataNotFoundError
from hashsearch.data.recipes import RECIPES, build_recipe, get_recipe
from hashsearch.data.recipes._base import RecipeConfig, cut_pairs, read_manifest, registration_scores


def test_missing_data_names_path_and_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHSEARCH_DATA", str(tmp_path))
    for name in RECIPES:
        with pytest.raises(DataNotFoundError, match="HASHSEARCH_DATA") as info:
            build_recipe(name, tmp_path / "out.zarr")
        assert str(tmp_path / name) in str(info.value)
    with pytest.raises(ValueError, match="unknown recipe"):
        build_recipe("dsrsid", tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


def test_every_recipe_module_is_registered_once() -> None:
    folder = Path(recipes_pkg.__file__).parent
    modules = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
    assert [r.build.__module__.rsplit(".", 1)[1] for r in RECIPES.values()] == modules
    assert set(RECIPES) >= {"nc-landsat7", "eurosat-ms", "fusebox-landsat7", "aid-subset", "pansharpening-pairs"}
    for name, recipe in RECIPES.items():
        assert recipe.name == name and issubclass(recipe.config, RecipeConfig)
        assert recipe.task in ("class", "instance")
        config = recipe.config()  # every option has a default
        assert set(config.as_dict()) == {f.name for f in recipe.options()}
        assert all(f.metadata.get("help") for f in recipe.options()), f"{name}: an option without help"


def test_options_are_checked_against_the_recipe(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ratio do not apply to the eurosat-ms recipe; its options are") as info:
        build_recipe("eurosat-ms", tmp_path / "o.zarr", ratio=4)
    assert "pan_weights" in str(info.value)
    with pytest.raises(ValueError, match="test_fraction must be in"):
        get_recipe("nc-landsat7").make_config(test_fraction=1.5)
    with pytest.raises(ValueError, match=r"ratio 2 .* or 4"):
        get_recipe("nc-landsat7").make_config(ratio=3)
    with pytest.raises(TypeError, match="takes a"):
        build_recipe("nc-landsat7", tmp_path / "o.zarr", config=get_recipe("eurosat-ms").config())
    # Lists become tuples (the configs are plain, comparable values).
    assert get_recipe("fusebox-landsat7").make_config(pan_shift=[0, 0]).pan_shift == (0, 0)
    assert not (tmp_path / "o.zarr").exists()


def test_cut_pairs_any_ratio_and_small_patches() -> None:
    ms = np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16)
    pan = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    pans, mss, origins = cut_pairs(pan, ms, ratio=4, patch_size=32, stride=32, pan_shift=(0, 0))
    assert pans.shape == (4, 1, 32, 32) and mss.shape == (4, 3, 8, 8) and pans.dtype == np.uint16
    assert origins.tolist() == [[0, 0], [0, 32], [32, 0], [32, 32]]
    np.testing.assert_array_equal(mss[3], ms[:, 8:16, 8:16])
    # A shift of +3 PAN rows: the first MS row whose PAN patch fits is still 0 (rows 3..34);
    # the last one would end at row 67 > 64 and is dropped.
    _, mss_s, origins_s = cut_pairs(pan, ms, ratio=4, patch_size=32, stride=32, pan_shift=(3, -2))
    assert origins_s.tolist() == [[3, 2]] and np.array_equal(mss_s[0], ms[:, 0:8, 1:9])
    with pytest.raises(ValueError, match="multiples of the PAN:MS ratio 4"):
        cut_pairs(pan, ms, ratio=4, patch_size=30, stride=32, pan_shift=(0, 0))


def test_registration_scores_peak_at_the_true_shift() -> None:
    rng = np.random.default_rng(3)
    ground = rng.normal(size=(40 * 4 + 16, 40 * 4 + 16))
    ground = (ground + np.roll(ground, 1, 0) + np.roll(ground, 1, 1)) / 3  # some spatial correlation
    # MS pixel (i, j) averages ground rows 4i+8.. and columns 4j+8..; PAN is the ground offset by
    # (-2, 3): PAN pixel (r, c) = ground (r + 10, c + 5). MS pixel (i, j) then covers PAN rows
    # 4i - 2 .. 4i + 1 and columns 4j + 3 .. 4j + 6, i.e. shift (-2, 3).
    ms = ground[8 : 8 + 160, 8 : 8 + 160].reshape(40, 4, 40, 4).mean(axis=(1, 3))[None]
    pan = ground[10 : 10 + 160, 5 : 5 + 160]
    shifts = [(dr, dc) for dr in range(-4, 5) for dc in range(-4, 5)]
    scores = registration_scores(pan, ms, 4, shifts)
    assert max(scores, key=scores.get) == (-2, 3)
    assert scores[(-2, 3)] > 0.99 > scores[(0, 0)]


def test_read_manifest_layouts(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('[{"file": "x/y.tif", "md5": "abc"}]')
    (tmp_path / "b.json").write_text('{"dataset": "d", "files": {"x/y.jpg": "def"}}')
    (tmp_path / "c.json").write_text('{"files": 3}')
    assert read_manifest(tmp_path / "a.json") == {"x/y.tif": "abc"}
    assert read_manifest(tmp_path / "b.json") == {"x/y.jpg": "def"}
    assert read_manifest(tmp_path / "none.json") == {}
    with pytest.raises(ValueError, match="expected a list"):
        read_manifest(tmp_path / "c.json")
