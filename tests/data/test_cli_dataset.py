"""``hashsearch dataset tile | build | info``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hashsearch.cli import app
from hashsearch.data.dual import DualSourceDataset
from hashsearch.data.fake import write_fake_dsrsid, write_fake_scene

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_tile_then_info(tmp_path: Path) -> None:
    sc = write_fake_scene(tmp_path / "in", pan_shape=(64, 64), ratio=4, band_per_file=True, seed=4)
    out = tmp_path / "d.zarr"
    ms_args = [a for p in sc.ms for a in ("--ms", str(p))]
    code, stdout, stderr = _run(
        "dataset", "tile", "--pan", str(sc.pan), *ms_args, "--labels", str(sc.labels), "--out", str(out),
        "--patch-size", "16", "--min-purity", "0.9", "--band-names", "b,g,r,n", "--test-fraction", "0.25",
        "--no-progress", "--json",
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    ds = DualSourceDataset(out)
    assert summary["num_samples"] == len(ds) > 0
    assert summary["ms"] == "uint8 (4, 4, 4) bands=['b', 'g', 'r', 'n']"
    assert sum(summary["classes"].values()) == len(ds)
    code, stdout, _ = _run("dataset", "info", str(out), "--json")
    info = json.loads(stdout)
    assert code == 0 and info["num_samples"] == len(ds) and info["crs"] == "EPSG:32650"
    assert info["splits"]["test"] == int((ds.split_codes == 1).sum()) > 0
    code, stdout, _ = _run("dataset", "info", str(out))
    assert code == 0 and f"num_samples: {len(ds)}" in stdout
    # Refuses to overwrite without --overwrite, with a one-line error.
    code, _, stderr = _run("dataset", "tile", "--pan", str(sc.pan), *ms_args, "--out", str(out))
    assert code == 1 and stderr.startswith("error:") and "--overwrite" in stderr


def test_tile_reports_alignment_errors(tmp_path: Path) -> None:
    a = write_fake_scene(tmp_path / "a", pan_shape=(32, 32), crs="EPSG:32650")
    b = write_fake_scene(tmp_path / "b", pan_shape=(32, 32), crs="EPSG:32651")
    code, _, stderr = _run("dataset", "tile", "--pan", str(a.pan), "--ms", str(b.ms), "--out", str(tmp_path / "d"))
    assert code == 1 and "CRS mismatch" in stderr
    code, _, stderr = _run("dataset", "tile", "--pan", str(a.pan), "--ms", str(a.ms), "--ms-bands", "1,9",
                           "--out", str(tmp_path / "d"))
    assert code == 1 and "missing" in stderr
    assert not (tmp_path / "d").exists()


def test_info_on_a_dsrsid_file(tmp_path: Path) -> None:
    path = write_fake_dsrsid(tmp_path / "DSRSID.mat", per_class=2, pan_size=16, ms_size=8)
    code, stdout, _ = _run("dataset", "info", str(path), "--json")
    info = json.loads(stdout)
    assert code == 0 and info["num_samples"] == 16
    assert info["classes"]["aquafarm"] == 2 and info["pan"] == "uint8 (1, 16, 16)"


def test_build_errors(tmp_path: Path) -> None:
    code, _, stderr = _run("dataset", "build", "nc-landsat7", "--out", str(tmp_path / "o"),
                           "--data-root", str(tmp_path))
    assert code == 1 and "HASHSEARCH_DATA" in stderr and str(tmp_path / "nc-landsat7") in stderr
    code, _, stderr = _run("dataset", "build", "eurosat-ms", "--out", str(tmp_path / "o"), "--ratio", "4")
    assert code == 1 and "--ratio does not apply to the eurosat-ms recipe" in stderr
    code, _, stderr = _run("dataset", "build", "landsat9", "--out", str(tmp_path / "o"))
    assert code == 1 and "unknown recipe" in stderr


@pytest.mark.realdata
def test_build_nc_landsat7(need_real, tmp_path: Path) -> None:
    need_real("nc-landsat7")
    out = tmp_path / "nc.zarr"
    code, stdout, stderr = _run("dataset", "build", "nc-landsat7", "--out", str(out), "--ratio", "4",
                                "--patch-size", "32", "--no-progress", "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    ds = DualSourceDataset(out)
    assert summary["num_samples"] == len(ds) and ds.ms_shape == (4, 8, 8) and ds.meta["ratio"] == 4
    assert summary["classes"]["forest"] == int(np.sum(ds.labels == 4))


def test_build_has_one_subcommand_per_recipe_with_its_own_options() -> None:
    from hashsearch.data.recipes import RECIPES

    code, stdout, _ = _run("dataset", "build", "--help")
    assert code == 0 and all(name in stdout for name in RECIPES)
    code, stdout, _ = _run("dataset", "build", "pansharpening-pairs", "--help")
    assert code == 0 and "--bands" in stdout and "--register" in stdout and "--ratio" not in stdout
    code, stdout, _ = _run("dataset", "build", "nc-landsat7", "--help")
    assert code == 0 and "--ratio" in stdout and "--min-purity" in stdout and "--bands" not in stdout


def test_build_option_errors(tmp_path: Path) -> None:
    code, _, stderr = _run("dataset", "build", "eurosat-ms", "--out", str(tmp_path / "o"), "--ratio", "4")
    assert code == 1 and "--ratio is an option of aid-subset, nc-landsat7" in stderr
    code, _, stderr = _run("dataset", "build", "pansharpening-pairs", "--out", str(tmp_path / "o"),
                           "--bands", "some")
    assert code == 2 and "some" in stderr  # not a choice: click's usage error
    code, _, stderr = _run("dataset", "build", "fusebox-landsat7", "--out", str(tmp_path / "o"),
                           "--pan-shift", "a,b")
    assert code == 1 and "comma-separated int" in stderr
    code, _, stderr = _run("dataset", "build", "aid-subset", "--out", str(tmp_path / "o"), "--crop", "100",
                           "--pan-size", "30")
    assert code == 1 and "multiple of pan_size" in stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.realdata
def test_build_pansharpening_then_info(need_real, tmp_path: Path) -> None:
    need_real("pansharpening-pairs")
    out = tmp_path / "wv2.zarr"
    code, stdout, stderr = _run("dataset", "build", "pansharpening-pairs", "--out", str(out), "--scenes", "wv2",
                                "--bands", "all", "--patch-size", "32", "--no-progress", "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["num_samples"] == 1600 and summary["task"] == "instance"
    code, stdout, _ = _run("dataset", "info", str(out), "--json")
    info = json.loads(stdout)
    assert code == 0 and info["ms"].startswith("uint16 (8, 8, 8) bands=['coastal', 'blue'")
    assert info["ms_rgb"] == [4, 2, 1] and info["sensors"] == {"WorldView-2": 1}
    assert info["recipe"] == "pansharpening-pairs" and info["recipe_options"]["bands"] == "all"
    assert info["pairs_per_scene"] == {"wv2": 1600} and info["distinct_labels"] == 1600
    assert sum(info["splits"].values()) == 1600 and info["split_rule"]["rule"].startswith("by region")


@pytest.mark.realdata
def test_build_fusebox_tuple_options(need_real, tmp_path: Path) -> None:
    need_real("fusebox-landsat7")
    out = tmp_path / "fb.zarr"
    code, _, stderr = _run("dataset", "build", "fusebox-landsat7", "--out", str(out), "--scenes", "1,2",
                                "--pan-shift", "0,0", "--patch-size", "32", "--ms-bands", "red,nir",
                                "--no-progress", "--json")
    assert code == 0, stderr
    ds = DualSourceDataset(out)
    assert ds.ms_shape == (2, 16, 16) and ds.meta["ms"]["bands"] == ["red", "nir"] and ds.meta["ms"]["rgb"] is None
    assert ds.array("pan_origin")[0].tolist() == [0, 0] and len(ds) == 2 * 25 * 25


def test_recipes_lists_tasks_folders_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "eurosat-ms").mkdir()
    monkeypatch.setenv("HASHSEARCH_DATA", str(tmp_path))
    code, stdout, _ = _run("dataset", "recipes", "--json")
    listing = json.loads(stdout)
    assert code == 0 and listing["eurosat-ms"]["present"] and not listing["aid-subset"]["present"]
    assert listing["pansharpening-pairs"]["task"] == "instance" and listing["aid-subset"]["task"] == "class"
    assert listing["fusebox-landsat7"]["options"]["pan_shift"]["default"] == [-1, -1]
    assert listing["nc-landsat7"]["folder"] == str(tmp_path / "nc-landsat7")
