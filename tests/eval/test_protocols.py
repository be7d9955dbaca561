"""hashsearch.eval.protocols and results: who queries whom, what is relevant, the JSON form."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hashsearch.eval.protocols import EncodedSplits, direction_setup, evaluate_encoded, resolve_protocol
from hashsearch.eval.results import EvalConfig, EvalRun, load_results, save_results


def _splits(n_train: int = 40, n_test: int = 12, nbits: int = 16, seed: int = 0, perfect: bool = False,
            features: bool = True) -> EncodedSplits:
    rng = np.random.default_rng(seed)
    nb = nbits // 8
    labels = {"train": rng.integers(0, 4, n_train), "test": rng.integers(0, 4, n_test)}
    if perfect:  # one code per class, the same for both sources
        centres = rng.integers(0, 256, (4, nb), dtype=np.uint8)
        codes = {s: {"pan": centres[labels[s]], "ms": centres[labels[s]].copy()} for s in labels}
    else:
        codes = {s: {src: rng.integers(0, 256, (labels[s].size, nb), dtype=np.uint8) for src in ("pan", "ms")}
                 for s in labels}
    feats = None
    if features:
        feats = {s: {src: rng.standard_normal((labels[s].size, nbits)).astype(np.float32) for src in ("pan", "ms")}
                 for s in labels}
    return EncodedSplits(nbits=nbits, codes=codes, labels=labels, features=feats)


def test_resolve_protocol():
    assert resolve_protocol("auto", None) == "class"
    assert resolve_protocol("auto", "instance") == "instance"
    assert resolve_protocol("auto", "class") == "class"
    assert resolve_protocol("instance", "class") == "instance"
    with pytest.raises(ValueError, match="protocol must be one of"):
        resolve_protocol("pairs", None)
    with pytest.raises(ValueError, match="names no protocol"):
        resolve_protocol("auto", "segmentation")


def test_class_protocol_queries_test_against_the_other_sources_training_set():
    enc = _splits()
    setup = direction_setup(enc, "pan", "ms", "class")
    assert setup.name == "PAN->MS"
    np.testing.assert_array_equal(setup.query_codes, enc.codes["test"]["pan"])
    np.testing.assert_array_equal(setup.db_codes, enc.codes["train"]["ms"])
    np.testing.assert_array_equal(setup.db_keys, enc.labels["train"])
    assert (setup.db_split == 0).all()


def test_instance_protocol_gallery_and_distractors():
    enc = _splits(n_train=30, n_test=10)
    setup = direction_setup(enc, "ms", "pan", "instance", seed=3)
    assert setup.db_codes.shape[0] == 10
    # the gallery is shuffled, but item j's key is its position in the test split: its own codes
    for key, idx, code in zip(setup.db_keys, setup.db_index, setup.db_codes, strict=True):
        assert key == idx
        np.testing.assert_array_equal(code, enc.codes["test"]["pan"][idx])
    assert sorted(setup.db_keys.tolist()) == list(range(10))
    with_d = direction_setup(enc, "ms", "pan", "instance", distractors=True, seed=3)
    assert with_d.db_codes.shape[0] == 40
    assert (with_d.db_keys == -1).sum() == 30 and (with_d.db_split == 0).sum() == 30
    assert set(with_d.db_keys[with_d.db_keys >= 0].tolist()) == set(range(10))


def test_instance_matching_with_identical_codes_finds_every_pair():
    rng = np.random.default_rng(1)
    n = 20
    codes_test = rng.integers(0, 256, (n, 4), dtype=np.uint8)  # 32 bits, all distinct w.h.p.
    codes_train = rng.integers(0, 256, (50, 4), dtype=np.uint8)
    enc = EncodedSplits(nbits=32, codes={"train": {"pan": codes_train, "ms": codes_train},
                                         "test": {"pan": codes_test, "ms": codes_test.copy()}},
                        labels={"train": np.arange(50), "test": np.arange(n)})
    results, _ = evaluate_encoded(enc, "instance", EvalConfig(ks=(1, 10), distractors=True, progress=False))
    for res in results.values():
        assert res.recall_at[1] == 1.0 and res.mrr == 1.0 and res.database_size == 70
        assert res.mean_relevant == 1.0
    run = EvalRun(name="x", method="x", bits=32, protocol="instance", dataset={}, model={}, config={},
                  directions=results)
    head = run.headline()
    assert head == {"recall@1_pan2ms": 1.0, "recall@10_pan2ms": 1.0, "mrr_pan2ms": 1.0,
                    "recall@1_ms2pan": 1.0, "recall@10_ms2pan": 1.0, "mrr_ms2pan": 1.0}


def test_evaluate_encoded_class_perfect_and_random():
    results, setups = evaluate_encoded(_splits(perfect=True, features=False), "class",
                                       EvalConfig(ks=(1, 10), progress=False))
    assert set(results) == {"PAN->MS", "MS->PAN"} and set(setups) == set(results)
    for res in results.values():
        assert res.map == 1.0 and res.precision_radius == 1.0 and res.feature_map is None
        assert res.pr_radius.x == list(range(17))
    results, _ = evaluate_encoded(_splits(seed=4), "class", EvalConfig(ks=(1, 10), progress=False))
    for res in results.values():
        assert 0.1 < res.map < 0.5
        assert res.feature_map is not None
        assert res.quantization_gap == pytest.approx(res.feature_map - res.map)


def test_eval_config_rejects_bad_values():
    with pytest.raises(ValueError, match="protocol"):
        EvalConfig(protocol="pairs")
    with pytest.raises(ValueError, match="embedding"):
        EvalConfig(embedding="umap")
    with pytest.raises(ValueError):
        EvalConfig(ks=())
    with pytest.raises((TypeError, ValueError)):
        EvalConfig(radius=-1)


def test_results_round_trip_and_bad_files(tmp_path):
    results, _ = evaluate_encoded(_splits(), "class", EvalConfig(ks=(1, 10), progress=False))
    run = EvalRun(name="SIDHCNN", method="sidhcnn", bits=16, protocol="class", dataset={"path": "x"},
                  model={"epoch": 3}, config=EvalConfig().to_dict(), directions=results)
    path = save_results([run], tmp_path / "r" / "results.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "hashsearch-eval" and doc["runs"][0]["directions"]["PAN->MS"]["map_at"]["10"]
    (back,) = load_results(tmp_path / "r")
    assert back.directions["PAN->MS"].map == results["PAN->MS"].map
    assert back.directions["MS->PAN"].map_at == results["MS->PAN"].map_at
    assert back.directions["PAN->MS"].pr_radius.precision == results["PAN->MS"].pr_radius.precision
    assert back.headline() == run.headline()
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "none")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_results(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(ValueError, match="not a hashsearch evaluation"):
        load_results(tmp_path / "other.json")


def test_encoded_splits_checks_shapes():
    enc = _splits()
    with pytest.raises(ValueError, match="codes must be uint8"):
        EncodedSplits(nbits=32, codes=enc.codes, labels=enc.labels)


def test_headline_cut_offs_are_always_measured():
    results, _ = evaluate_encoded(_splits(), "instance", EvalConfig(ks=(5,), progress=False))
    assert set(results["PAN->MS"].recall_at) == {1, 5, 10}
