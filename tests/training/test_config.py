"""TrainConfig: validation, files, presets of Table IV and sweeps of Tables V–VII."""

from __future__ import annotations

import json

import pytest

from hashsearch.training.config import (
    PRESETS,
    TABLE_SWEEPS,
    ModelConfig,
    TrainConfig,
    ablation_configs,
    default_threads,
    sweep_configs,
)


def test_defaults_are_the_papers_where_it_gives_them():
    c = TrainConfig()
    assert (c.alpha, c.beta, c.gamma) == (1.0, 0.1, 1.0)  # Section IV-C
    assert c.batch_size == 128 and c.epochs == 30 and c.bits == 32
    assert c.model == ModelConfig(1, 256, 4, 64, "valid")
    assert default_threads() >= 1


def test_table_iv_presets():
    table = ablation_configs(TrainConfig(bits=8, epochs=3))
    assert list(table) == ["irsc", "iasc", "bqc", "fdc"]
    assert [c.weights for c in table.values()] == [(0, 0, 0), (1, 0, 0), (1, 1, 0), (1, 1, 1)]
    assert all(c.bits == 8 and c.epochs == 3 for c in table.values())
    assert PRESETS["full"].weights == (1.0, 0.1, 1.0)
    assert PRESETS["dcmh"].method == "dcmh" and PRESETS["dcmh"].alpha == 0


@pytest.mark.parametrize(("param", "fixed"), [("alpha", (1.0, 1.0)), ("beta", (1.0, 1.0)), ("gamma", (1.0, 0.1))])
def test_tables_v_to_vii_sweeps(param, fixed):
    configs = sweep_configs(param)
    assert list(configs) == [0.0, 0.1, 1.0, 10.0]
    for value, cfg in configs.items():
        assert getattr(cfg, param) == value
        others = [getattr(cfg, p) for p in ("alpha", "beta", "gamma") if p != param]
        assert tuple(others) == fixed
    assert TABLE_SWEEPS[param]["table"] in ("V", "VI", "VII")
    kept = sweep_configs(param, [2.0], TrainConfig(alpha=0.3, beta=0.3, gamma=0.3), paper_fixed=False)
    assert [getattr(kept[2.0], p) for p in ("alpha", "beta", "gamma")].count(0.3) == 2


def test_replace_routes_model_fields_and_rejects_unknown():
    c = TrainConfig().replace(ms_bands=6, ms_size=128, bits=16)
    assert c.model.ms_bands == 6 and c.model.ms_size == 128 and c.bits == 16
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig().replace(learning_rate=0.1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"bits": 12}, "multiple of 8"), ({"lr": 0}, "lr"), ({"alpha": -1}, "alpha"), ({"batch_size": 0}, "batch_size"),
     ({"normalization": "mean"}, "normalization"), ({"device": "tpu"}, "device"), ({"schedule": "exp"}, "schedule"),
     ({"padding": "full"}, "padding"), ({"threads": 0}, "threads"), ({"grad_clip": 0}, "grad_clip"),
     ({"method": "dpsh"}, "method"), ({"micro_batch": 0}, "micro_batch")],
)
def test_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig().replace(**changes)


def test_round_trip_and_files(tmp_path):
    c = TrainConfig(alpha=0.1, bits=16).replace(pan_size=128, padding="same")
    assert TrainConfig.from_dict(c.to_dict()) == c
    j = tmp_path / "c.json"
    j.write_text(json.dumps(c.to_dict()))
    assert TrainConfig.from_file(j) == c
    t = tmp_path / "c.toml"
    t.write_text('preset = "irsc"\nbits = 24\n[model]\nms_bands = 6\n')
    got = TrainConfig.from_file(t)
    assert got.weights == (0, 0, 0) and got.bits == 24 and got.model.ms_bands == 6
    t2 = tmp_path / "d.toml"
    t2.write_text("[train]\nepochs = 5\n")
    assert TrainConfig.from_file(t2).epochs == 5
    with pytest.raises(FileNotFoundError):
        TrainConfig.from_file(tmp_path / "missing.toml")
    bad = tmp_path / "c.yaml"
    bad.write_text("a: 1")
    with pytest.raises(ValueError, match=r"\.toml or \.json"):
        TrainConfig.from_file(bad)
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig.from_dict({"preset": "nope"})
