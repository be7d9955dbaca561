"""Experiments: the split of in-memory data, the protocol a run is evaluated by, its metrics, runs of configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hashsearch.training import InMemoryDualSource, fake_dual_source
from hashsearch.training.experiments import (
    CrossSourceResult,
    dataset_task,
    evaluate_codes,
    evaluate_cross_source,
    run_experiments,
    split_dataset,
)


# ---------------------------------------------------------------- split_dataset
def test_class_split_is_per_class_seeded_and_disjoint(small_data):
    train, test = split_dataset(small_data, 0.25, seed=0)
    # 48 samples, 4 classes of 12: round(0.25 * 12) = 3 test items per class.
    assert np.bincount(test.labels, minlength=4).tolist() == [3, 3, 3, 3]
    assert np.bincount(train.labels, minlength=4).tolist() == [9, 9, 9, 9]
    assert np.intersect1d(train.indices, test.indices).size == 0
    assert np.array_equal(np.union1d(train.indices, test.indices), np.arange(48))
    again, other = split_dataset(small_data, 0.25, seed=0)[1], split_dataset(small_data, 0.25, seed=1)[1]
    assert np.array_equal(again.indices, test.indices) and not np.array_equal(other.indices, test.indices)
    # Subsets re-index their items, keep the labels and slice the in-memory arrays.
    src = int(test.indices[4])
    item = test[4]
    assert item["index"] == 4 and item["label"] == int(small_data.labels[src]) == int(test.labels[4])
    assert torch.equal(item["ms"], small_data.ms[src]) and torch.equal(test.pan[4], small_data.pan[src])
    assert len(train) == 36 and len(test) == 12


def test_small_classes_keep_one_item_on_each_side():
    data = InMemoryDualSource(torch.zeros(5, 1, 4, 4), torch.zeros(5, 1, 1, 1), [0, 0, 1, 1, 2])
    train, test = split_dataset(data, 0.1, seed=0)
    # round(0.1 * 2) = 0, raised to 1 for the classes of two; the class of one stays in training.
    assert sorted(test.labels.tolist()) == [0, 1] and sorted(train.labels.tolist()) == [0, 1, 2]


def test_instance_split_is_random_over_pairs():
    data = fake_dual_source(40, num_classes=4, pan_size=16, ms_size=4, task="instance", seed=1)
    assert data.task == "instance" and np.array_equal(data.labels, np.arange(40))
    train, test = split_dataset(data, 0.25, seed=0)
    # A per-label split would put no pair in the test set (every label is unique): 10 of 40 are drawn.
    assert len(test) == 10 and len(train) == 30
    assert np.array_equal(test.labels, test.indices)  # labels stay the pair ids
    assert dataset_task(test) == dataset_task(train) == "instance"


@pytest.mark.parametrize("fraction", [0, 1, -0.5, 1.5])
def test_split_rejects_bad_fractions(small_data, fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        split_dataset(small_data, fraction)


# ---------------------------------------------------------------- dataset_task
class _Stub:
    def __init__(self, **attrs):
        self.__dict__.update(attrs)


def test_dataset_task_reads_attributes_metadata_and_wrappers(small_data):
    assert dataset_task(small_data) == "class"
    assert dataset_task(_Stub(meta={"task": "instance"})) == "instance"  # a stored dataset's metadata
    assert dataset_task(_Stub(source=_Stub(meta={"task": "instance"}))) == "instance"  # torch adapter
    assert dataset_task(_Stub(dataset=_Stub(task="class"))) == "class"  # a subset
    assert dataset_task(_Stub(meta={"name": "x"})) is None
    assert dataset_task(object()) is None


# ---------------------------------------------------------------- evaluate_codes
def _u8(values):
    return np.array(values, dtype=np.uint8).reshape(-1, 1)


def test_class_retrieval_map_by_hand():
    codes = {
        "train": {"pan": _u8([0x00, 0xFF, 0x00, 0xFF]), "ms": _u8([0x00, 0x00, 0xFF, 0xFF])},
        "test": {"pan": _u8([0x00, 0xFF]), "ms": _u8([0x0F, 0x0F])},
    }
    res = evaluate_codes(codes, [0, 0, 1, 1], [0, 1], 8, protocol="class")
    # PAN->MS: query 0x00 (label 0) has its two label-0 items at distance 0, ranked first: AP 1;
    # query 0xFF (label 1) likewise: MAP 1.
    assert res.map_pan2ms == pytest.approx(1.0)
    # MS->PAN: 0x0F is at distance 4 from 0x00 and from 0xFF: one tie group, ranked by position,
    # labels [0, 0, 1, 1]: label 0 at ranks 1, 2 -> AP 1; label 1 at ranks 3, 4 -> AP (1/3 + 2/4) / 2.
    assert res.map_ms2pan == pytest.approx((1 + (1 / 3 + 2 / 4) / 2) / 2)
    assert res.protocol == "class" and res.database_size == 4
    assert res.summary() == {"map_pan2ms": res.map_pan2ms, "map_ms2pan": res.map_ms2pan}
    assert res.describe().startswith("MAP PAN->MS 1.0000, MS->PAN ")


def test_instance_matching_recall_and_mrr_by_hand():
    codes = {
        "train": {"pan": np.zeros((0, 1), np.uint8), "ms": np.zeros((0, 1), np.uint8)},
        "test": {"pan": _u8([0b00000000, 0b00001111, 0b11110000, 0b11111111]),
                 "ms": _u8([0b00000000, 0b00001111, 0b11110000, 0b00000001])},
    }
    res = evaluate_codes(codes, np.zeros(0, np.int64), np.arange(4), 8, protocol="instance")
    # PAN->MS: pairs 0-2 are at distance 0 (rank 1); PAN 0xFF is 8, 4, 4, 7 from the MS codes:
    # its pair (7) ranks 3rd. recall@1 = 3/4, MRR = (1 + 1 + 1 + 1/3) / 4.
    p2m = res.metrics["PAN->MS"]
    assert p2m["recall@1"] == pytest.approx(0.75) and p2m["mrr"] == pytest.approx((3 + 1 / 3) / 4)
    # MS->PAN: MS 0x01 is 1, 3, 5, 7 from the PAN codes: its pair ranks 4th.
    m2p = res.metrics["MS->PAN"]
    assert m2p["recall@1"] == pytest.approx(0.75) and m2p["mrr"] == pytest.approx((3 + 1 / 4) / 4)
    # A gallery of 4 holds every pair in its "top 10".
    assert p2m["recall@10"] == m2p["recall@10"] == 1.0
    # Never a MAP under instance matching: not measured, not 0.0.
    assert res.map_pan2ms is None and res.map_ms2pan is None and res.database_size == 4
    assert set(res.summary()) == {f"{m}_{d}" for m in ("recall@1", "recall@10", "mrr") for d in ("pan2ms", "ms2pan")}
    assert "MAP" not in res.describe() and "recall@1 PAN->MS 0.7500" in res.describe()


def test_evaluate_codes_rejects_unknown_protocols_and_bad_codes():
    codes = {s: {k: _u8([0, 1]) for k in ("pan", "ms")} for s in ("train", "test")}
    with pytest.raises(ValueError, match="protocol"):
        evaluate_codes(codes, [0, 1], [0, 1], 8, protocol="pairs")
    with pytest.raises(ValueError, match="uint8"):
        evaluate_codes(codes, [0, 1], [0, 1], 16, protocol="class")


# ---------------------------------------------------------------- evaluate_cross_source
class _MarkerEncoder:
    """Codes read from the images: the first pixel of each image, as one byte (8 bits)."""

    bits = 8

    def __init__(self):
        self.calls = []

    def encode(self, images, source, batch_size=256):
        arr = np.asarray(images)
        self.calls.append((source, arr.shape[0]))
        return arr[:, 0, 0, :1].astype(np.uint8)


def _marked(pan_codes, ms_codes, labels, task):
    pan = torch.zeros(len(labels), 1, 2, 2)
    ms = torch.zeros(len(labels), 3, 1, 1)
    pan[:, 0, 0, 0] = torch.tensor(pan_codes, dtype=torch.float32)
    ms[:, 0, 0, 0] = torch.tensor(ms_codes, dtype=torch.float32)
    return InMemoryDualSource(pan, ms, labels, task=task)


def test_evaluate_cross_source_follows_the_dataset_task():
    # Class data: PAN test queries against MS *training* codes (the paper's Algorithm 2).
    train = _marked([0xFF, 0x00], [0x00, 0xFF], [0, 1], "class")
    test = _marked([0x00, 0xFF], [0x00, 0xFF], [0, 1], "class")
    res = evaluate_cross_source(_MarkerEncoder(), train, test)
    assert res.protocol == "class" and res.map_pan2ms == pytest.approx(1.0)
    # MS->PAN: MS 0x00 (label 0) finds PAN train 0x00, which is label 1, first: AP 1/2.
    assert res.map_ms2pan == pytest.approx(0.5)
    # Instance data: each test query against the other source's *test* codes; training codes unused.
    enc = _MarkerEncoder()
    train_i = _marked([1, 2], [1, 2], [0, 1], "instance")
    test_i = _marked([0x00, 0x0F, 0xF0], [0x00, 0x0F, 0xF0], [2, 3, 4], "instance")
    res = evaluate_cross_source(enc, train_i, test_i)
    assert res.protocol == "instance" and res.metrics["PAN->MS"]["recall@1"] == 1.0
    assert res.metrics["MS->PAN"]["mrr"] == 1.0 and res.map_pan2ms is None
    assert enc.calls == [("pan", 3), ("ms", 3)]
    # With distractors the training codes join the gallery: 3 + 2 items, never relevant.
    enc = _MarkerEncoder()
    res = evaluate_cross_source(enc, train_i, test_i, distractors=True)
    assert res.database_size == 5 and enc.calls == [("pan", 2), ("ms", 2), ("pan", 3), ("ms", 3)]
    # MS 0x00 ranks its pair (0x00, distance 0) first, ahead of the distractors 1 and 2 (distance 1).
    assert res.metrics["MS->PAN"]["recall@1"] == 1.0
    # An explicit protocol wins over the task.
    assert evaluate_cross_source(_MarkerEncoder(), train_i, test_i, protocol="class").protocol == "class"


# ---------------------------------------------------------------- run_experiments
def test_run_experiments_trains_evaluates_and_records(tmp_path, small_data, small_config):
    train, test = split_dataset(small_data, 0.25, seed=0)
    configs = {"a": small_config.replace(epochs=1), "b": small_config.replace(epochs=1, alpha=0.0)}
    results = run_experiments(configs, train, test, out_dir=tmp_path, progress=False)
    assert [r.name for r in results] == ["a", "b"]
    for r in results:
        assert isinstance(r, CrossSourceResult) and r.protocol == "class" and r.bits == 16
        assert 0 <= r.map_pan2ms <= 1 and 0 <= r.map_ms2pan <= 1 and r.train_seconds > 0
        assert (tmp_path / r.name / "last.pt").is_file() and r.checkpoint == str(tmp_path / r.name / "last.pt")
        assert len(r.extra["history"]) == 1
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [s["name"] for s in saved] == ["a", "b"] and saved[1]["config"]["alpha"] == 0.0
    assert saved[0]["metrics"]["PAN->MS"]["map"] == pytest.approx(results[0].map_pan2ms)
