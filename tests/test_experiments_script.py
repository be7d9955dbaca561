"""scripts/experiments.py: the plan of each mode, argument handling and the summary tables (no training)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "experiments.py"


@pytest.fixture(scope="module")
def exp():
    spec = importlib.util.spec_from_file_location("experiments_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["experiments_script"] = module
    spec.loader.exec_module(module)
    return module


def test_quick_plan_is_one_seed_32_bits_every_set(exp, tmp_path):
    plan = exp.make_plan("quick", out=str(tmp_path), data_root="/data")
    assert plan.seeds == (0,) and plan.main_bits == 32 and plan.extra_bits == ()
    assert plan.sets == exp.ALL_SETS
    runs = exp.plan_runs(plan)
    assert {r.bits for r in runs} == {32} and {r.seed for r in runs} == {0}
    euro = [r.method for r in runs if r.dataset == "eurosat-ms"]
    # Table IV's four rows, then the final SIDHCNN, DCMH and the two GIST baselines
    assert euro == ["irsc", "iasc", "bqc", "fdc", "sidhcnn", "sidhcnn_bal", "dcmh", "cca", "scm"]
    for ds in ("nc-landsat7", "aid-subset"):
        assert [r.method for r in runs if r.dataset == ds] == ["sidhcnn", "sidhcnn_bal", "dcmh", "cca", "scm"]
    # instance matching: no SCM (it refuses pair-id labels), no Table IV; the unweighted-pairs row first
    for ds in exp.INSTANCE_SETS:
        assert [r.method for r in runs if r.dataset == ds] == ["sidhcnn_plain", "sidhcnn", "dcmh", "cca"]
    assert all((r.epochs is None) == (r.method in ("cca", "scm")) for r in runs)
    # aid-subset at PAN 64 x 64 in quick mode; fusebox whole unless --fusebox-crops six
    assert plan.recipe_options == {"aid-subset": {"pan_size": 64}}
    six = exp.parse_args(["--fusebox-crops", "six", "--out", str(tmp_path)])
    assert six.recipe_options["fusebox-landsat7"] == {"scenes": exp.FUSEBOX_SIX_CROPS}


def test_full_plan_has_three_seeds_at_32_bits_and_one_seed_at_the_other_lengths(exp, tmp_path):
    plan = exp.make_plan("full", out=str(tmp_path))
    assert plan.sets == exp.ALL_SETS and plan.seeds == (0, 1, 2) and plan.recipe_options == {}
    runs = exp.plan_runs(plan)
    aid32 = [r for r in runs if r.dataset == "aid-subset" and r.bits == 32]
    trained = [r for r in aid32 if r.epochs is not None]
    assert len(trained) == 3 * 7  # 4 ablation rows + SIDHCNN (unweighted and balanced pairs) + DCMH per seed
    assert {r.seed for r in trained} == {0, 1, 2}
    for bits in (8, 16, 24, 64):
        cell = sorted(r.method for r in runs if r.dataset == "aid-subset" and r.bits == bits)
        assert cell == ["cca", "dcmh", "scm", "sidhcnn"]
        assert {r.seed for r in runs if r.bits == bits} == {0}
    assert not any(r.method == "scm" for r in runs if r.dataset in exp.INSTANCE_SETS)
    assert not any(r.method == "sidhcnn_plain" for r in runs if r.dataset in exp.CLASS_SETS)
    assert not any(r.method == "sidhcnn_bal" for r in runs if r.dataset in exp.INSTANCE_SETS)
    names = [(r.dataset, r.name) for r in runs]
    assert len(names) == len(set(names))  # every run has its own checkpoint folder


def test_overrides_and_bad_arguments(exp, tmp_path, monkeypatch):
    monkeypatch.setenv("HASHSEARCH_DATA", "/somewhere")
    plan = exp.parse_args(["--mode", "full", "--out", str(tmp_path), "--seeds", "3,4", "--sets",
                           "nc-landsat7", "--epochs", "2"])
    assert plan.data_root == "/somewhere" and plan.seeds == (3, 4) and plan.sets == ("nc-landsat7",)
    assert plan.epochs == {"nc-landsat7": 2}
    assert exp.parse_args(["--data", "/x", "--out", str(tmp_path)]).data_root == "/x"
    only = exp.parse_args(["--sets", "aid-subset", "--methods", "sidhcnn,sidhcnn_bal", "--out", str(tmp_path)])
    assert [r.method for r in exp.plan_runs(only)] == ["sidhcnn", "sidhcnn_bal"]
    # --bits: Table VIII's lengths alone in full mode (no l = 32 cell); a new length in quick mode (first seed)
    lengths = exp.parse_args(["--mode", "full", "--sets", "eurosat-ms", "--bits", "8,64", "--methods", "sidhcnn,scm",
                              "--out", str(tmp_path)])
    assert [(r.method, r.bits, r.seed) for r in exp.plan_runs(lengths)] == [
        ("sidhcnn", 8, 0), ("scm", 8, 0), ("sidhcnn", 64, 0), ("scm", 64, 0)]
    quick16 = exp.parse_args(["--sets", "nc-landsat7", "--bits", "16,32", "--methods", "dcmh", "--out", str(tmp_path)])
    assert [(r.bits, r.epochs) for r in exp.plan_runs(quick16)] == [(32, 10), (16, 10)]
    assert exp.parse_args(["--out", str(tmp_path)]).train_fraction == 1.0
    assert exp.parse_args(["--train-fraction", "0.25", "--out", str(tmp_path)]).train_fraction == 0.25
    for bad in (["--sets", "dsrsid"], ["--seeds", "1,1"], ["--epochs", "0"], ["--mode", "huge"], ["--methods", "x"],
                ["--bits", "12"], ["--bits", "16,16"], ["--bits", "0"], ["--train-fraction", "0"],
                ["--train-fraction", "1.5"], ["--train-fraction", "0.5", "--validation"]):
        with pytest.raises(SystemExit) as info:
            exp.parse_args([*bad, "--out", str(tmp_path)])
        assert info.value.code == 2


def test_dry_run_prints_the_plan_and_trains_nothing(exp, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        exp.parse_args(["--mode", "quick", "--out", str(tmp_path / "o"), "--dry-run"])
    assert info.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    # eurosat-ms 9, nc-landsat7 5, aid-subset 5, each instance set 4
    assert len(doc["runs"]) == 27 and doc["plan"]["mode"] == "quick"
    assert not (tmp_path / "o").exists()


def test_summary_mean_and_spread_over_seeds_and_markdown(exp):
    rows = [{"dataset": "eurosat-ms", "method": "sidhcnn", "bits": 32, "seed": s, "epochs": 10, "protocol": "class",
             "train_seconds": 10.0 * (s + 1), "database_size": 375, "map_pan2ms": v, "map_ms2pan": v / 2}
            for s, v in ((0, 0.4), (1, 0.6))]
    rows.append({"dataset": "fusebox-landsat7", "method": "cca", "bits": 32, "seed": 0, "epochs": None,
                 "protocol": "instance", "train_seconds": 1.0, "database_size": 144,
                 **dict.fromkeys(exp._metrics_of("instance"), 0.25)})
    cells = exp.summarise(rows)
    sid = next(c for c in cells if c["method"] == "sidhcnn")
    assert sid["map_pan2ms"] == pytest.approx(0.5) and sid["map_pan2ms_std"] == pytest.approx(0.1414, abs=1e-4)
    assert sid["train_seconds_mean"] == pytest.approx(15.0) and sid["seeds"] == [0, 1]
    md = exp.markdown(cells, {"mode": "quick", "finished": "now"})
    assert "| eurosat-ms | 32 | SIDHCNN | 10 | 2 | 0.500 ± 0.141 | 0.250 ± 0.071 | 15 |" in md
    assert "| fusebox-landsat7 | 32 | CCA-ITQ | - | 144 | 0.250 |" in md


def test_validation_plan_trains_networks_only(exp, tmp_path):
    plan = exp.parse_args(["--sets", "fusebox-landsat7,eurosat-ms", "--validation", "--out", str(tmp_path)])
    assert plan.validation and not plan.figures
    runs = exp.plan_runs(plan)
    assert {r.method for r in runs if r.dataset == "fusebox-landsat7"} == {"sidhcnn_plain", "sidhcnn", "dcmh"}
    assert all(r.epochs is not None for r in runs)  # no GIST baseline: they are evaluated on the stored splits


def test_train_config_sets_the_pair_weighting_of_each_row(exp, tmp_path):
    from hashsearch.training import fake_dual_source

    data = fake_dual_source(8, num_classes=2, pan_size=32, ms_size=8, task="instance")
    plan = exp.make_plan("quick", out=str(tmp_path))
    cfg = {m: exp._train_config(exp.RunSpec("fusebox-landsat7", m, 32, 0, 5), plan, data)
           for m in ("sidhcnn_plain", "sidhcnn", "sidhcnn_bal", "dcmh")}
    assert cfg["sidhcnn_plain"].pair_weighting == "none" and cfg["sidhcnn"].pair_weighting == "auto"
    assert cfg["sidhcnn_bal"].pair_weighting == "balanced" and cfg["dcmh"].pair_weighting == "auto"
    assert cfg["sidhcnn"].resolve_pair_weighting("instance") == "balanced"
    assert cfg["sidhcnn_plain"].loss_weights() == cfg["sidhcnn"].loss_weights() == {"alpha": 1.0, "beta": 0.1,
                                                                                   "gamma": 1.0}
    assert cfg["dcmh"].method == "dcmh" and cfg["dcmh"].model.padding == "same"


class _Scenes:
    """A stand-in for a stored view: per-sample scene ids."""

    def __init__(self, scene):
        self.scene = scene

    def array(self, name):
        assert name == "scene"
        return self.scene


class _TrainView:
    def __init__(self, scene):
        self.source = _Scenes(np.asarray(scene))
        self.labels = np.arange(len(scene))
        self.task = "instance"

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"pan": np.zeros((1, 4, 4)), "ms": np.zeros((1, 1, 1)), "label": int(self.labels[i])}


def test_validation_split_holds_out_the_last_training_scene(exp):
    fit, val = exp.validation_split(_TrainView([0, 0, 3, 1, 3, 1]), "instance")
    assert fit.indices.tolist() == [0, 1, 3, 5] and val.indices.tolist() == [2, 4]
    assert fit.task == val.task == "instance" and val.labels.tolist() == [2, 4]
    with pytest.raises(ValueError, match="two scenes"):
        exp.validation_split(_TrainView([2, 2]), "instance")


def _write_set(path, *, task, n=48, seed=0):
    """A real dual-source Zarr set: PAN (1, 32, 32), MS (4, 8, 8) of the same ground, 4 scenes, split 3 : 1."""
    from hashsearch.data.dual import DualDatasetWriter

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3 if task == "class" else np.arange(n)
    ground = rng.integers(0, 4000, (n, 4, 32, 32))
    pan = ground.mean(axis=1, keepdims=True).astype(np.uint16)
    ms = ground.reshape(n, 4, 8, 4, 8, 4).mean(axis=(3, 5)).astype(np.uint16)
    split = (np.arange(n) % 4 == 3).astype(np.int8)  # every fourth pair in test
    scene = (np.arange(n) // (n // 4)).astype(np.int32)
    with DualDatasetWriter(path, pan_shape=(1, 32, 32), ms_shape=(4, 8, 8), pan_dtype=np.uint16,
                           ms_dtype=np.uint16) as w:
        w.append(pan, ms, labels, split=split, scene=scene)
        w.finalize(classes=["a", "b", "c"] if task == "class" else None, task=task,
                   ms_bands=["blue", "green", "red", "nir"], pan_bands=["pan"], ratio=4)


def test_validation_run_trains_on_the_training_split_and_evaluates_on_a_held_out_scene(exp, tmp_path):
    out = tmp_path / "val"
    _write_set(out / "datasets" / "fusebox-landsat7.zarr", task="instance")
    plan = exp.parse_args(["--sets", "fusebox-landsat7", "--validation", "--methods", "sidhcnn_plain,sidhcnn",
                           "--epochs", "1", "--threads", "1", "--out", str(out)])
    doc = exp.run(plan)
    rows = {r["method"]: r for r in doc["runs"]}
    # 36 training pairs in 4 scenes of 9 (every fourth pair of the 48 is test): the last scene's 9 are held out
    for method, weighting in (("sidhcnn_plain", "none"), ("sidhcnn", "balanced")):
        row = rows[method]
        assert row["split"] == "validation" and row["pair_weighting"] == weighting
        assert row["database_size"] == row["num_queries"] == 9 and row["protocol"] == "instance"
        assert 0 <= row["recall@1_pan2ms"] <= 1 and len(row["history"]) == 1
        assert row["codes"]["pan_unique_codes"] <= 9 and 0 <= row["codes"]["pan_bit_entropy_mean"] <= 1
    assert json.loads((out / "results.json").read_text())["meta"]["validation"] is True
    assert "--validation" in (out / "results.md").read_text() and not (out / "reports").exists()


def test_learning_curve_evaluates_every_epoch(exp, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curve"
    _write_set(out / "datasets" / "eurosat-ms.zarr", task="class")
    plan = exp.parse_args(["--sets", "eurosat-ms", "--learning-curve", "--epochs", "2", "--threads", "1",
                           "--out", str(out)])
    (curve,) = exp.run_curves(plan)
    for method in ("sidhcnn", "dcmh"):
        points = curve["curves"][method]["points"]
        assert [p["epoch"] for p in points] == [1, 2]
        assert all(0 < p["map_pan2ms"] <= 1 and "irsc" in p["pan"] for p in points)
    assert set(curve["scm"]) == {"pan2ms", "ms2pan"} and (out / "curves-eurosat-ms.png").stat().st_size > 0
    assert json.loads((out / "curves.json").read_text())[0]["dataset"] == "eurosat-ms"
