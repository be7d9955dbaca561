"""Encoder: packed codes are the sign of the features (bit k -> bit k % 8 of byte k // 8), CodeStore output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hashsearch.training import Encoder, Trainer, build_networks
from hashsearch.training.config import ModelConfig


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, small_data):
    from hashsearch.training import TrainConfig

    cfg = TrainConfig(bits=24, epochs=1, batch_size=16, threads=1, stats_samples=48,
                      calibration_samples=32).replace(pan_size=64, ms_size=16, padding="same")
    path = tmp_path_factory.mktemp("ckpt")
    torch.set_num_threads(1)
    Trainer(cfg, small_data, checkpoint_dir=path, progress=False).fit()
    return path / "last.pt"


def _expected_codes(net, images):
    with torch.no_grad():
        f = net.eval()(torch.as_tensor(images, dtype=torch.float32)).numpy()
    bits = f >= 0
    out = np.zeros((f.shape[0], f.shape[1] // 8), np.uint8)
    for k in range(f.shape[1]):
        out[:, k // 8] |= bits[:, k].astype(np.uint8) << (k % 8)
    return f, out


@pytest.mark.parametrize("source", ["pan", "ms"])
def test_codes_are_packed_signs(checkpoint, small_data, source):
    enc = Encoder.load(checkpoint)
    images = getattr(small_data, source)[:20]
    codes = enc.encode(images, source, batch_size=7)
    feats, expected = _expected_codes(enc.network(source), images)
    assert codes.dtype == np.uint8 and codes.shape == (20, 3)
    # Ignore features within float noise of 0 (the batch split may flip their sign).
    unsure = np.abs(feats) < 1e-5
    unpacked = np.unpackbits(codes, axis=1, bitorder="little").astype(bool)
    assert np.array_equal(unpacked[~unsure], (feats >= 0)[~unsure])
    if not unsure.any():
        assert np.array_equal(codes, expected)
    np.testing.assert_array_equal(np.packbits(feats >= 0, axis=1, bitorder="little")[~unsure.any(1)],
                                  codes[~unsure.any(1)])


def test_zero_feature_is_bit_one():
    pan, ms = build_networks(8, ModelConfig(pan_size=64, ms_size=16, padding="same"))
    with torch.no_grad():  # make the code layer output exactly 0 for every input
        pan.head[-1].weight.zero_()
        pan.head[-1].bias.zero_()
    enc = Encoder.from_networks(pan, ms)
    assert enc.encode(np.zeros((2, 1, 64, 64), np.float32), "pan").tolist() == [[255], [255]]


def test_inputs_as_arrays_tensors_and_datasets_agree(checkpoint, small_data):
    enc = Encoder.load(checkpoint)
    a = enc.encode(small_data.ms[:10].numpy(), "ms")
    b = enc.encode(small_data.ms[:10], "mul")
    ds = torch.utils.data.Subset(small_data, range(10))
    c = enc.encode(ds, "ms", batch_size=4, progress=True)
    one = enc.encode(small_data.ms[0].numpy(), "ms")
    assert np.array_equal(a, b) and np.array_equal(a, c) and np.array_equal(one, a[:1])


def test_provenance(checkpoint):
    enc = Encoder.load(checkpoint)
    info = enc.provenance("ms")
    assert info["model"] == "SIDHCNN" and info["source"] == "ms" and info["bits"] == 24
    assert len(info["checkpoint_sha256"]) == 64 and info["network"] == "MUL-DHCNN"
    assert info["bit_order"] == "little" and info["epoch"] == 1


def test_bad_inputs(checkpoint):
    enc = Encoder.load(checkpoint)
    with pytest.raises(ValueError, match="source must be 'pan' or 'ms'"):
        enc.encode(np.zeros((1, 1, 64, 64)), "sar")
    with pytest.raises(ValueError, match=r"\(n, 4, 16, 16\)"):
        enc.encode(np.zeros((1, 1, 64, 64)), "ms")
    with pytest.raises(ValueError, match="batch_size"):
        enc.encode(np.zeros((1, 1, 64, 64)), "pan", batch_size=0)
    with pytest.raises(FileNotFoundError):
        Encoder.load(checkpoint.parent / "nothing.pt")


def test_encode_into_code_store(checkpoint, small_data, tmp_path):
    pytest.importorskip("zarr")
    from hashsearch import CodeStore

    enc = Encoder.load(checkpoint)
    path = tmp_path / "codes.zarr"
    with CodeStore.create(path, 24, with_labels=True, with_source=True) as store:
        pan_codes = enc.encode(small_data.pan[:12], "pan", store=store, labels=small_data.labels[:12])
        ms_codes = enc.encode(small_data.ms[:12], "ms", store=store, labels=small_data.labels[:12])
    with CodeStore.open(path, mode="r") as store:
        assert store.ntotal == 24 and store.nbits == 24
        info = store.encoder_info
        assert info["checkpoint_sha256"] == enc.info["checkpoint_sha256"] and info["source"] == "ms"
        np.testing.assert_array_equal(store.read_codes(), np.concatenate([pan_codes, ms_codes]))
        np.testing.assert_array_equal(store.read_labels(), np.concatenate([small_data.labels[:12]] * 2))
        assert store.read_source(names=True).tolist() == ["pan"] * 12 + ["ms"] * 12
    with CodeStore.create(tmp_path / "wrong.zarr", 16) as store, pytest.raises(ValueError, match="16-bit"):
        enc.encode(small_data.pan[:2], "pan", store=store)


def test_checkpoint_whose_layers_this_build_would_not_rebuild_is_refused(checkpoint, tmp_path):
    state = torch.load(checkpoint, weights_only=True)
    assert state["networks"]["ms"]["dropped_pools"] == []  # 16×16 MS keeps every pooling
    state["networks"]["ms"]["dropped_pools"] = [2]
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"leaves out the pooling of stages \[2\]"):
        Encoder.load(tmp_path / "other.pt")
    del state["networks"]["ms"]["dropped_pools"]  # written before it was recorded: rebuilt from the geometry
    torch.save(state, tmp_path / "older.pt")
    assert Encoder.load(tmp_path / "older.pt").network("ms").dropped_pools == ()
