"""scripts/experiments.py: the plan of each mode, argument handling and the summary tables (no training)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "experiments.py"


@pytest.fixture(scope="module")
def exp():
    spec = importlib.util.spec_from_file_location("experiments_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["experiments_script"] = module
    spec.loader.exec_module(module)
    return module


def test_quick_plan_is_one_seed_32_bits_two_class_sets_and_one_instance_set(exp, tmp_path):
    plan = exp.make_plan("quick", out=str(tmp_path), data_root="/data")
    assert plan.seeds == (0,) and plan.main_bits == 32 and plan.extra_bits == ()
    assert plan.sets == ("eurosat-ms", "nc-landsat7", "fusebox-landsat7")
    runs = exp.plan_runs(plan)
    assert {r.bits for r in runs} == {32} and {r.seed for r in runs} == {0}
    euro = [r.method for r in runs if r.dataset == "eurosat-ms"]
    # Table IV's four rows, then the final SIDHCNN, DCMH and the two GIST baselines
    assert euro == ["irsc", "iasc", "bqc", "fdc", "sidhcnn", "dcmh", "cca", "scm"]
    assert [r.method for r in runs if r.dataset == "nc-landsat7"] == ["sidhcnn", "dcmh", "cca", "scm"]
    # instance matching: no SCM (it refuses pair-id labels), no ablation
    assert [r.method for r in runs if r.dataset == "fusebox-landsat7"] == ["sidhcnn", "dcmh", "cca"]
    assert all((r.epochs is None) == (r.method in ("cca", "scm")) for r in runs)
    assert plan.recipe_options["fusebox-landsat7"]["scenes"]  # a subset of the crops in quick mode


def test_full_plan_has_three_seeds_at_32_bits_and_one_seed_at_the_other_lengths(exp, tmp_path):
    plan = exp.make_plan("full", out=str(tmp_path))
    assert plan.sets == exp.ALL_SETS and plan.seeds == (0, 1, 2) and plan.recipe_options == {}
    runs = exp.plan_runs(plan)
    aid32 = [r for r in runs if r.dataset == "aid-subset" and r.bits == 32]
    trained = [r for r in aid32 if r.epochs is not None]
    assert len(trained) == 3 * 6  # 4 ablation rows + SIDHCNN + DCMH per seed
    assert {r.seed for r in trained} == {0, 1, 2}
    for bits in (8, 16, 24, 64):
        cell = sorted(r.method for r in runs if r.dataset == "aid-subset" and r.bits == bits)
        assert cell == ["cca", "dcmh", "scm", "sidhcnn"]
        assert {r.seed for r in runs if r.bits == bits} == {0}
    assert not any(r.method == "scm" for r in runs if r.dataset in exp.INSTANCE_SETS)
    names = [(r.dataset, r.name) for r in runs]
    assert len(names) == len(set(names))  # every run has its own checkpoint folder


def test_overrides_and_bad_arguments(exp, tmp_path, monkeypatch):
    monkeypatch.setenv("HASHSEARCH_DATA", "/somewhere")
    plan = exp.parse_args(["--mode", "full", "--out", str(tmp_path), "--seeds", "3,4", "--sets",
                           "nc-landsat7", "--epochs", "2"])
    assert plan.data_root == "/somewhere" and plan.seeds == (3, 4) and plan.sets == ("nc-landsat7",)
    assert plan.epochs == {"nc-landsat7": 2}
    assert exp.parse_args(["--data", "/x", "--out", str(tmp_path)]).data_root == "/x"
    for bad in (["--sets", "dsrsid"], ["--seeds", "1,1"], ["--epochs", "0"], ["--mode", "huge"]):
        with pytest.raises(SystemExit) as info:
            exp.parse_args([*bad, "--out", str(tmp_path)])
        assert info.value.code == 2


def test_dry_run_prints_the_plan_and_trains_nothing(exp, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        exp.parse_args(["--mode", "quick", "--out", str(tmp_path / "o"), "--dry-run"])
    assert info.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["runs"]) == 15 and doc["plan"]["mode"] == "quick"
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
