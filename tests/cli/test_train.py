"""``hashsearch train`` / ``hashsearch encode``: tiny fake runs, small patches, metrics per task, sweeps, baselines,
errors, torch stays lazy."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from hashsearch.cli import app
from hashsearch.cli import train as cli_train

FAKE = ["--fake", "--fake-samples", "48", "--fake-pan-size", "64", "--fake-ms-size", "16", "--fake-classes", "4",
        "--bits", "16", "--epochs", "1", "--batch-size", "16", "--threads", "1", "--no-progress"]


@pytest.fixture
def runner():
    return CliRunner()


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_help_does_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from hashsearch.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "r = CliRunner().invoke(app, ['train', '--help']); assert r.exit_code == 0, r.output; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'hashsearch.training' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_searching_never_imports_torch():
    code = ("import sys, numpy as np, hashsearch; "
            "idx = hashsearch.BinaryIndex(16); idx.add(np.zeros((3, 2), np.uint8)); "
            "idx.search(np.zeros((1, 2), np.uint8), 2); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_then_encode(runner, tmp_path):
    out = tmp_path / "run"
    res = _json(runner.invoke(app, ["train", *FAKE, "--out", str(out), "--json"]))
    assert res["epochs"] == 1 and 0 <= res["map_pan2ms"] <= 1 and (out / "last.pt").is_file()
    assert json.loads((out / "result.json").read_text())["config"]["model"]["padding"] == "same"

    codes_path = tmp_path / "codes.npy"
    enc = _json(runner.invoke(app, ["encode", str(out), "--source", "ms", "--fake", "10", "--out", str(codes_path),
                                    "--no-progress", "--json"]))
    assert enc["codes"] == 10 and enc["bits"] == 16
    codes = np.load(codes_path)
    assert codes.dtype == np.uint8 and codes.shape == (10, 2)

    # From an .npy of images, into a CodeStore.
    imgs = tmp_path / "imgs.npy"
    np.save(imgs, np.random.default_rng(0).random((5, 1, 64, 64)).astype(np.float32))
    store = tmp_path / "codes.zarr"
    _json(runner.invoke(app, ["encode", str(out / "last.pt"), "-s", "pan", "--images", str(imgs), "--store",
                              str(store), "--no-progress", "--json"]))
    from hashsearch import CodeStore

    with CodeStore.open(store) as s:
        assert s.ntotal == 5 and s.encoder_info["source"] == "pan"


def test_resume_and_config_file(runner, tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("[train]\nalpha = 0.5\nbeta = 1.0\nseed = 4\n")
    out = tmp_path / "run"
    _json(runner.invoke(app, ["train", *FAKE, "--config", str(cfg), "--out", str(out), "--json"]))
    saved = json.loads((out / "result.json").read_text())["config"]
    assert saved["alpha"] == 0.5 and saved["beta"] == 1.0 and saved["seed"] == 4
    # Any loss-weight field by name (a term added to the registry needs no new flag).
    _json(runner.invoke(app, ["train", *FAKE, "--weight", "gamma=0.25", "--weight", "beta=2", "--out",
                              str(tmp_path / "w"), "--json"]))
    saved = json.loads((tmp_path / "w" / "result.json").read_text())["config"]
    assert saved["gamma"] == 0.25 and saved["beta"] == 2.0
    args = list(FAKE)
    args[args.index("--epochs") + 1] = "2"
    res = _json(runner.invoke(app, ["train", *args, "--config", str(cfg), "--out", str(out), "--resume", str(out),
                                    "--json"]))
    assert res["epochs"] == 2


def test_sweep_ablation_and_baselines(runner, tmp_path):
    res = _json(runner.invoke(app, ["train", *FAKE, "--out", str(tmp_path / "s"), "--json", "sweep", "--param",
                                    "alpha", "--values", "0,1"]))
    assert [r["name"] for r in res["results"]] == ["alpha=0", "alpha=1"]
    assert json.loads((tmp_path / "s" / "results.json").read_text())[1]["config"]["beta"] == 1.0  # Table V fixes β=1
    res = _json(runner.invoke(app, ["train", *FAKE, "--out", str(tmp_path / "lr"), "--json", "sweep", "--param",
                                    "lr", "--values", "0.01"]))
    assert res["results"][0]["name"] == "lr=0.01"
    res = _json(runner.invoke(app, ["train", *FAKE, "--out", str(tmp_path / "a"), "--json", "ablation"]))
    assert [r["name"] for r in res["results"]] == ["irsc", "iasc", "bqc", "fdc"]
    for method in ("cca", "scm", "dcmh"):
        res = _json(runner.invoke(app, ["train", *FAKE, "--out", str(tmp_path / method), "--json", "baseline", method]))
        assert res["baseline"] == method and 0 <= res["results"][0]["map_pan2ms"] <= 1
    table = runner.invoke(app, ["train", *FAKE, "--out", str(tmp_path / "t"), "sweep", "--param", "gamma",
                                "--values", "1"])
    assert table.exit_code == 0 and "PAN->MS" in table.output


SMALL = ["--fake", "--fake-samples", "48", "--fake-pan-size", "32", "--fake-ms-size", "8", "--fake-ms-bands", "8",
         "--fake-classes", "4", "--bits", "16", "--epochs", "1", "--batch-size", "16", "--threads", "1",
         "--no-progress"]


def test_small_ms_patches_with_eight_bands_train(runner, tmp_path):
    """GF-2-like pairs tiled finely: PAN 32×32, MS 8×8 (here 8 bands) train with padding 'auto'."""
    out = tmp_path / "small"
    res = _json(runner.invoke(app, ["train", *SMALL, "--out", str(out), "--json"]))
    assert res["protocol"] == "class" and 0 <= res["map_pan2ms"] <= 1 and 0 <= res["map_ms2pan"] <= 1
    cfg = json.loads((out / "result.json").read_text())["config"]["model"]
    assert cfg == {"pan_bands": 1, "pan_size": 32, "ms_bands": 8, "ms_size": 8, "padding": "same"}
    # The paper's unpadded layers cannot take 8×8 MS patches: the refusal says what to change.
    r = runner.invoke(app, ["train", *SMALL, "--padding", "valid", "--out", str(tmp_path / "v")])
    assert r.exit_code == 1
    text = " ".join(r.output.split())
    assert "padding='valid'" in text and "PAN patches of at least 241×241" in text
    assert "MS patches of at least 57×57" in text
    assert "got PAN 32×32 and MS 8×8; use padding='same'" in text and "padding='auto'" in text


def test_instance_data_reports_recall_and_mrr_never_map(runner, tmp_path):
    out = tmp_path / "pairs"
    res = _json(runner.invoke(app, ["train", *SMALL, "--fake-task", "instance", "--out", str(out), "--json"]))
    assert res["protocol"] == "instance" and res["database_size"] == 12  # the 12 test pairs of the other source
    for direction in ("pan2ms", "ms2pan"):
        assert 0 <= res[f"recall@1_{direction}"] <= res[f"recall@10_{direction}"] <= 1
        assert res[f"mrr_{direction}"] >= 1 / 12  # the pair is somewhere in a gallery of 12
    assert not [k for k in res if k.startswith("map")]
    saved = json.loads((out / "result.json").read_text())
    assert saved["protocol"] == "instance" and "map_pan2ms" not in saved
    table = runner.invoke(app, ["train", *SMALL, "--fake-task", "instance", "--out", str(tmp_path / "t"), "sweep",
                                "--param", "gamma", "--values", "1"])
    assert table.exit_code == 0, table.output
    assert "protocol: instance" in table.output and "R@1 PAN->MS" in table.output and "MRR MS->PAN" in table.output
    assert "MAP" not in table.output
    res = _json(runner.invoke(app, ["train", *SMALL, "--fake-task", "instance", "--out", str(tmp_path / "c"),
                                    "--json", "baseline", "cca"]))
    assert res["results"][0]["protocol"] == "instance" and "recall@1_pan2ms" in res["results"][0]
    r = runner.invoke(app, ["train", *SMALL, "--fake-task", "instance", "--out", str(tmp_path / "s"), "baseline",
                            "scm"])
    assert r.exit_code == 1 and "one label per pair" in " ".join(r.output.split())


def test_unlabelled_tiled_scene_reports_recall(runner, tmp_path):
    """A tiled scene without labels (task "instance") through --data: recall@1/@10 and MRR, not MAP 0.0."""
    pytest.importorskip("rasterio", reason="the data extra is not installed")
    from hashsearch.data.fake import write_fake_scene
    from hashsearch.data.tiler import TileConfig, tile_scene

    scene = write_fake_scene(tmp_path / "scene", pan_shape=(128, 160), ratio=4, seed=4)
    data = tile_scene(scene.pan, scene.ms, tmp_path / "d.zarr", config=TileConfig(patch_size=32, test_fraction=0.25),
                      progress=False)
    res = _json(runner.invoke(app, ["train", "--data", str(data), "--bits", "16", "--epochs", "1", "--batch-size",
                                    "8", "--threads", "1", "--no-progress", "--out", str(tmp_path / "run"), "--json"]))
    assert res["protocol"] == "instance" and res["database_size"] == 5  # 20 tiles, 5 in the test split
    assert "map_pan2ms" not in res and 0 <= res["recall@1_pan2ms"] <= 1 and res["mrr_ms2pan"] >= 1 / 5


def test_user_errors_are_one_line(runner, tmp_path):
    r = runner.invoke(app, ["train", "--out", str(tmp_path), "--no-progress"])
    assert r.exit_code == 1 and "no training data" in r.output
    r = runner.invoke(app, ["train", *FAKE, "--preset", "nope"])
    assert r.exit_code == 1 and "unknown preset" in r.output
    r = runner.invoke(app, ["train", *FAKE, "--weight", "lr=1"])
    assert r.exit_code == 1 and "FIELD one of alpha, beta, gamma" in r.output
    r = runner.invoke(app, ["train", *FAKE, "--weight", "alpha=big"])
    assert r.exit_code == 1 and "needs a number" in r.output
    r = runner.invoke(app, ["train", *FAKE, "--fake-task", "pairs"])
    assert r.exit_code == 1 and "--fake-task must be class or instance" in r.output
    r = runner.invoke(app, ["train", *FAKE, "baseline", "itq"])
    assert r.exit_code == 1 and "dcmh, cca or scm" in r.output
    r = runner.invoke(app, ["train", *FAKE, "sweep", "--param", "nope", "--values", "1"])
    assert r.exit_code == 1 and "unknown TrainConfig field" in r.output
    r = runner.invoke(app, ["encode", str(tmp_path / "none.pt"), "-s", "pan", "--fake", "2", "--out", "x.npy"])
    assert r.exit_code == 1 and "no checkpoint" in r.output
    r = runner.invoke(app, ["encode", str(tmp_path), "-s", "pan", "--fake", "2"])
    assert r.exit_code == 1 and "nowhere to write" in r.output


def test_missing_torch_gives_the_install_hint(runner, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    r = runner.invoke(app, ["train", "--fake"])
    assert r.exit_code == 1
    assert "pip install 'hashsearch[train]'" in r.output and "torch==2.13.0" in r.output
    assert cli_train.TORCH_HINT in r.output.replace("\n", " ") or "hashsearch[train]" in r.output
