"""Fake dual-source data: the training contract, determinism, paired ground, learnable classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hashsearch.training.fake import FakeDualSource, InMemoryDualSource, fake_dual_source


def test_items_follow_the_contract():
    ds = FakeDualSource(10, pan_size=64, ms_size=16, ms_bands=6, pan_bands=1, seed=1)
    item = ds[3]
    assert set(item) == {"pan", "ms", "label", "index"}
    assert item["pan"].dtype == torch.float32 and item["pan"].shape == (1, 64, 64)
    assert item["ms"].shape == (6, 16, 16) and item["index"] == 3 and isinstance(item["label"], int)
    assert len(ds) == 10 and ds[-1]["index"] == 9
    with pytest.raises(IndexError):
        ds[10]


def test_seeded_and_balanced():
    a, b = FakeDualSource(16, seed=2, pan_size=32, ms_size=8), FakeDualSource(16, seed=2, pan_size=32, ms_size=8)
    assert torch.equal(a[5]["pan"], b[5]["pan"]) and np.array_equal(a.labels, b.labels)
    c = FakeDualSource(16, seed=3, pan_size=32, ms_size=8)
    assert not torch.equal(a[5]["pan"], c[5]["pan"])
    assert np.bincount(a.labels, minlength=8).tolist() == [2] * 8


def test_pan_and_ms_see_the_same_ground():
    """Without noise, the MS band mean, block-averaged, equals the PAN image block-averaged (gain aside)."""
    ds = FakeDualSource(4, pan_size=64, ms_size=16, noise=0.0, seed=0)
    pan, ms, _ = ds.sample(1)
    pan_blocks = pan[0].reshape(16, 4, 16, 4).mean(axis=(1, 3))
    corr = np.corrcoef(pan_blocks.ravel(), ms.mean(axis=0).ravel())[0, 1]
    assert corr > 0.99


def test_materialize_and_in_memory():
    ds = FakeDualSource(6, pan_size=32, ms_size=8, seed=0)
    mem = ds.materialize()
    assert isinstance(mem, InMemoryDualSource) and mem.pan.shape == (6, 1, 32, 32)
    assert torch.equal(mem[2]["ms"], ds[2]["ms"]) and mem[2]["label"] == ds[2]["label"]
    assert isinstance(fake_dual_source(4, pan_size=32, ms_size=8, materialize=False), FakeDualSource)
    with pytest.raises(ValueError, match="V = len"):
        InMemoryDualSource(mem.pan, mem.ms[:3], mem.labels)


def test_errors():
    with pytest.raises(ValueError, match="multiple"):
        FakeDualSource(4, pan_size=60, ms_size=16)
    with pytest.raises(ValueError, match="n must be >= 1"):
        FakeDualSource(0)
