"""bf16 autocast (training.precision) and the pixel statistics a checkpoint keeps for queries in pixel units."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hashsearch.training import TrainConfig, Trainer
from hashsearch.training import precision as prec
from hashsearch.training.encoder import Encoder
from hashsearch.training.models import build_networks


# ------------------------------------------------------------------ the setting
def test_config_precision_is_typed_and_round_trips():
    assert TrainConfig().precision == "auto"
    for value in ("fp32", "bf16", "auto"):
        cfg = TrainConfig(precision=value)
        assert TrainConfig.from_dict(cfg.to_dict()).precision == value
    for bad in ("fp16", "BF16", None, 16):
        with pytest.raises(ValueError, match="precision must be"):
            TrainConfig(precision=bad)
    old = TrainConfig().to_dict()
    del old["precision"]  # a checkpoint written before the field existed
    assert TrainConfig.from_dict(old).precision == "auto"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert prec.cpu_flags(str(info)) == frozenset({"fpu", "avx2", "avx512f", "avx512_bf16"})
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert "bf16" in prec.cpu_flags(str(arm))
    assert prec.cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_native_bf16_follows_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert not prec.native_bf16("cpu")
    monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert prec.native_bf16("cpu") == torch.backends.mkldnn.is_available()
    monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert prec.native_bf16(torch.device("cpu")) == torch.backends.mkldnn.is_available()


@pytest.mark.parametrize("native", [True, False])
def test_resolve_precision(monkeypatch, caplog, native):
    monkeypatch.setattr(prec, "native_bf16", lambda device: native)
    assert prec.resolve_precision("fp32", "cpu") == "fp32"
    assert prec.resolve_precision("auto", "cpu") == ("bf16" if native and prec.AUTO_BF16 else "fp32")
    caplog.clear()
    assert prec.resolve_precision("bf16", "cpu") == "bf16"
    assert ("emulated" in caplog.text) is (not native)
    with pytest.raises(ValueError, match="precision must be"):
        prec.resolve_precision("half", "cpu")


def test_autocast_runs_convolutions_in_bf16_and_nothing_under_fp32():
    conv = torch.nn.Conv2d(2, 3, 3)
    x = torch.randn(2, 2, 8, 8)
    with prec.autocast("cpu", "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with prec.autocast("cpu", "fp32"):
        assert conv(x).dtype == torch.float32
    with pytest.raises(ValueError, match="resolved precision"), prec.autocast("cpu", "auto"):
        pass


# ------------------------------------------------------------------ training in bf16
def _conv_dtypes(net):
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
             for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    return seen, hooks


def test_bf16_step_keeps_weights_loss_and_stored_features_float32(small_data, small_config):
    tr = Trainer(small_config.replace(precision="bf16", epochs=1), small_data, progress=False)
    assert tr.precision == "bf16"
    tr._setup()
    seen, hooks = _conv_dtypes(tr.pan_net)
    batch = [small_data[i] for i in range(16)]
    images = torch.stack([b["pan"] for b in batch])
    before = [p.detach().clone() for p in tr.pan_net.parameters()]
    codes = torch.where(tr.features["pan"] + tr.features["ms"] >= 0, 1.0, -1.0)
    out = tr.step("pan", torch.arange(16), images, codes)
    for h in hooks:
        h.remove()
    assert seen and set(seen) == {torch.bfloat16}  # every conv / linear ran in bf16
    assert np.isfinite(out["loss"])
    assert all(p.dtype == torch.float32 for p in tr.pan_net.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, tr.pan_net.parameters(), strict=True))  # it stepped
    assert tr.features["pan"].dtype == torch.float32 and tr.features["ms"].dtype == torch.float32
    assert tr._forward(tr.pan_net, images).dtype == torch.float32


def test_bf16_features_match_fp32_except_near_zero(small_data, small_config):
    """bf16 moves features by ~2 % of their mean magnitude (at most ~10 %): signs agree where |F| > 15 % of it."""
    fp32 = Trainer(small_config.replace(precision="fp32"), small_data, progress=False)
    bf16 = Trainer(small_config.replace(precision="bf16"), small_data, progress=False)
    fp32._setup()
    bf16.pan_net.load_state_dict(fp32.pan_net.state_dict())
    bf16.ms_net.load_state_dict(fp32.ms_net.state_dict())
    for key in ("pan", "ms"):
        images = torch.stack([small_data[i][key] for i in range(len(small_data))])
        with torch.no_grad():
            a = fp32._forward(getattr(fp32, f"{key}_net"), fp32._to_device(images))
            b = bf16._forward(getattr(bf16, f"{key}_net"), bf16._to_device(images))
        scale = float(a.abs().mean())
        assert not torch.equal(a, b)  # bf16 really ran
        assert float((a - b).abs().mean()) < 0.05 * scale
        assert float((a - b).abs().max()) < 0.15 * scale
        far = a.abs() > 0.15 * scale
        assert float(far.float().mean()) > 0.8  # most features are far from 0: the check has teeth
        assert torch.equal(torch.sign(a[far]), torch.sign(b[far]))


def test_encoder_bf16_codes_equal_fp32_codes_where_features_are_far_from_zero():
    torch.manual_seed(0)
    pan, ms = build_networks(16, TrainConfig().replace(pan_size=64, ms_size=16, padding="same").model)
    images = torch.rand(40, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    fp32 = Encoder.from_networks(pan, ms)
    bf16 = Encoder.from_networks(pan, ms, precision="bf16")
    assert fp32.precision == "fp32" and bf16.precision == "bf16"
    fa, fb = fp32.features(images, "ms"), bf16.features(images, "ms")
    assert fa.dtype == fb.dtype == np.float32
    scale = float(np.abs(fa).mean())
    far = np.abs(fa) > 0.15 * scale
    assert far.mean() > 0.8 and not np.array_equal(fa, fb)
    assert np.array_equal(fa[far] >= 0, fb[far] >= 0)
    bits_a = np.unpackbits(fp32.encode(images, "ms"), axis=1, bitorder="little")
    bits_b = np.unpackbits(bf16.encode(images, "ms"), axis=1, bitorder="little")
    assert np.array_equal(bits_a[far], bits_b[far])


def test_a_run_resumes_in_another_precision(tmp_path, small_data, small_config):
    cfg = small_config.replace(precision="fp32", epochs=1)
    Trainer(cfg, small_data, checkpoint_dir=tmp_path, progress=False).fit()
    result = Trainer(cfg.replace(precision="bf16", epochs=2), small_data, checkpoint_dir=tmp_path,
                     progress=False).fit(resume=tmp_path)
    assert [h.epoch for h in result.history] == [1, 2]


# ------------------------------------------------------------------ pixel statistics
def _write_dataset(path, n=40, seed=0):
    from hashsearch.data.dual import SPLIT_CODES, DualDatasetWriter

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    pan = (1000 + 300 * labels[:, None, None, None] + rng.integers(0, 400, (n, 1, 32, 32))).astype(np.uint16)
    ms = (np.array([500, 900, 1300, 2500])[None, :, None, None] + 200 * labels[:, None, None, None]
          + rng.integers(0, 300, (n, 4, 8, 8))).astype(np.uint16)
    split = np.where(np.arange(n) % 5 == 0, SPLIT_CODES["test"], SPLIT_CODES["train"])
    with DualDatasetWriter(path, pan_shape=(1, 32, 32), ms_shape=(4, 8, 8), pan_dtype=np.uint16,
                           ms_dtype=np.uint16) as w:
        w.append(pan, ms, labels)
        w.finalize(classes=["a", "b", "c", "d"], split=split)
    return path


def test_train_data_saves_pixel_stats_that_the_encoder_and_retriever_use(tmp_path):
    from hashsearch import CodeStore, Retriever
    from hashsearch.cli import app
    from hashsearch.data import DualSourceDataset
    from hashsearch.training.checkpoint import load_checkpoint
    from hashsearch.training.datasets import DualSourceTorchDataset

    data = _write_dataset(tmp_path / "d.zarr")
    raw = DualSourceDataset(data, "train")
    stats = raw.stats
    assert stats["ms"]["mean"][3] > 2000  # raw pixel units: the network alone never sees these
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--bits", "16", "--epochs", "1", "--batch-size", "8",
                                   "--lr", "0.01", "--threads", "1", "--no-progress", "--out", str(run), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["epochs"] == 1
    state = load_checkpoint(run)
    for key in ("pan", "ms"):
        np.testing.assert_allclose(state["pixel_stats"][key]["mean"], stats[key]["mean"])
        np.testing.assert_allclose(state["pixel_stats"][key]["std"], stats[key]["std"])
    encoder = Encoder.load(run)
    assert encoder.info["pixel_stats"] == state["pixel_stats"]

    # A query in pixel units through the Retriever gets the codes of the normalised training view.
    view = DualSourceTorchDataset(raw, stats=stats)
    with CodeStore.create(tmp_path / "ms.zarr", 16, with_source=True) as store:
        encoder.encode(view, "ms", store=store)
    pixels = raw.read(np.arange(6))["pan"]
    with Retriever(run, tmp_path / "ms.zarr") as retriever:
        assert retriever.pixel_stats == state["pixel_stats"]
        got = retriever.encode(pixels, "pan")
    expected = encoder.encode(torch.stack([view[i]["pan"] for i in range(6)]), "pan")
    np.testing.assert_array_equal(got, expected)
    with CodeStore.open(tmp_path / "ms.zarr") as store:  # the store's provenance carries them too
        assert store.encoder_info["pixel_stats"] == state["pixel_stats"]


def test_raw_pixel_datasets_record_no_pixel_stats(tmp_path, small_data, small_config):
    from hashsearch.data import DualSourceDataset
    from hashsearch.training.datasets import DualSourceTorchDataset
    from hashsearch.training.trainer import dataset_pixel_stats

    assert dataset_pixel_stats(small_data) is None  # fake data: no normalisation from pixel units
    raw = DualSourceDataset(_write_dataset(tmp_path / "d.zarr"), "train")
    assert dataset_pixel_stats(DualSourceTorchDataset(raw, normalize=False)) is None
    assert dataset_pixel_stats(DualSourceTorchDataset(raw))["ms"]["std"] == pytest.approx(raw.stats["ms"]["std"])
    cfg = small_config.replace(epochs=1)
    Trainer(cfg, small_data, checkpoint_dir=tmp_path / "run", progress=False).fit()
    assert "pixel_stats" not in Encoder.load(tmp_path / "run").info


def test_malformed_pixel_stats_are_refused():
    from hashsearch.training.trainer import dataset_pixel_stats

    class Bad:
        def __init__(self) -> None:
            self.pixel_stats = {"pan": {"mean": [0.0]}}

    with pytest.raises(ValueError, match="'mean' and 'std'"):
        dataset_pixel_stats(Bad())
