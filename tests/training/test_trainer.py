"""Algorithm 1: determinism, checkpoints (atomic, complete), resume equivalence, Ctrl-C, learning."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from hashsearch.packing import sign_codes
from hashsearch.training import Encoder, TrainConfig, Trainer, fake_dual_source, load_checkpoint
from hashsearch.training import checkpoint as checkpoint_mod


def _weights(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _assert_same_state(a: Trainer, b: Trainer) -> None:
    for net_a, net_b in ((a.pan_net, b.pan_net), (a.ms_net, b.ms_net)):
        wa, wb = _weights(net_a), _weights(net_b)
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), k
    for s in ("pan", "ms"):
        assert torch.equal(a.features[s], b.features[s])


class _InterruptAfter(torch.utils.data.Dataset):
    """Wraps a dataset and raises KeyboardInterrupt at the n-th item read (a simulated Ctrl-C)."""

    def __init__(self, dataset, n):
        self.dataset, self.n, self.reads = dataset, n, 0
        self.labels = dataset.labels

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads == self.n:
            raise KeyboardInterrupt
        return self.dataset[i]


def test_training_is_deterministic_on_cpu(small_data, small_config):
    a = Trainer(small_config, small_data, progress=False)
    a.fit()
    b = Trainer(small_config, small_data, progress=False)
    b.fit()
    _assert_same_state(a, b)
    assert [h.epoch for h in a.history] == [1, 2]
    assert all(np.isfinite(h.pan["loss"]) and np.isfinite(h.ms["loss"]) for h in a.history)


def test_seed_changes_the_run(small_data, small_config):
    a = Trainer(small_config, small_data, progress=False)
    b = Trainer(small_config.replace(seed=1), small_data, progress=False)
    assert not torch.equal(a.pan_net.head[-1].weight, b.pan_net.head[-1].weight)


def test_checkpoint_holds_everything(tmp_path, small_data, small_config):
    result = Trainer(small_config, small_data, checkpoint_dir=tmp_path, progress=False).fit()
    assert result.checkpoint == tmp_path / "last.pt"
    state = load_checkpoint(tmp_path)
    assert state["epoch"] == 2 and state["method"] == "sidhcnn"
    # The config as run: "auto" pair weighting resolved for this class-labelled set ("none").
    assert state["config"] == small_config.replace(pair_weighting="none").to_dict()
    assert set(state["networks"]) == {"pan", "ms"}
    assert state["features"]["pan"].shape == (48, 16)
    assert set(state["input_stats"]) == {"pan", "ms"} and len(state["input_stats"]["ms"]["mean"]) == 4
    assert state["library_version"] and state["torch_version"] == str(torch.__version__)
    assert {"torch", "numpy", "python"} <= set(state["rng"])
    assert len(state["history"]) == 2 and len(state["sha256"]) == 64
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left
    # The encoder built from the file reproduces the in-memory networks.
    enc = Encoder.load(tmp_path / "last.pt")
    with torch.no_grad():
        expected = result.pan_net(small_data.pan[:5].contiguous(memory_format=torch.channels_last))
    np.testing.assert_allclose(enc.features(small_data.pan[:5], "pan"), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_keep_checkpoints_writes_one_per_epoch(tmp_path, small_data, small_config):
    Trainer(small_config, small_data, checkpoint_dir=tmp_path, keep_checkpoints=True, progress=False).fit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-000.pt", "epoch-001.pt", "epoch-002.pt", "last.pt"]


def test_resume_after_ctrl_c_equals_uninterrupted_run(tmp_path, small_data, small_config):
    cfg = small_config.replace(epochs=3)
    full = Trainer(cfg, small_data, progress=False)
    full.fit()

    # Reads per epoch: 48 PAN + 48 MS items; setup reads stats (2 × 48) and calibration (2 × 32)
    # samples and one forward pass (2 × 48). Interrupt inside epoch 3.
    setup_reads = 1 + 2 * 48 + 2 * 32 + 2 * 48
    flaky = _InterruptAfter(small_data, setup_reads + 2 * 96 + 50)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, flaky, checkpoint_dir=tmp_path, progress=False).fit()
    state = load_checkpoint(tmp_path / "last.pt")  # still valid after Ctrl-C
    assert state["epoch"] == 2

    resumed = Trainer(cfg, small_data, checkpoint_dir=tmp_path, progress=False)
    result = resumed.fit(resume=tmp_path / "last.pt")
    assert [h.epoch for h in result.history] == [1, 2, 3]
    _assert_same_state(full, resumed)


def test_interrupt_while_saving_keeps_previous_checkpoint(tmp_path, small_data, small_config, monkeypatch):
    Trainer(small_config.replace(epochs=1), small_data, checkpoint_dir=tmp_path, progress=False).fit()
    before = (tmp_path / "last.pt").read_bytes()

    def broken_save(obj, fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_mod.torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        Trainer(small_config, small_data, checkpoint_dir=tmp_path, progress=False).fit(resume=tmp_path)
    assert (tmp_path / "last.pt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_resume_refuses_another_config(tmp_path, small_data, small_config):
    Trainer(small_config.replace(epochs=1), small_data, checkpoint_dir=tmp_path, progress=False).fit()
    with pytest.raises(ValueError, match="alpha"):
        Trainer(small_config.replace(alpha=0.5), small_data, progress=False).fit(resume=tmp_path)
    # Runtime-only fields (epochs, threads) may change.
    result = Trainer(small_config.replace(epochs=2, threads=2), small_data, progress=False).fit(resume=tmp_path)
    assert len(result.history) == 2


def test_interrupt_without_raising_returns_a_result(small_data, small_config):
    flaky = _InterruptAfter(small_data, 400)
    result = Trainer(small_config, flaky, progress=False).fit(raise_interrupt=False)
    assert result.interrupted and result.checkpoint is None


def test_stored_features_and_codes(small_data, small_config):
    tr = Trainer(small_config.replace(epochs=1), small_data, progress=False)
    tr.fit()
    # After an epoch every row of F^P / F^M was written by its own batch pass.
    assert all(torch.isfinite(tr.features[s]).all() and tr.features[s].abs().sum() > 0 for s in ("pan", "ms"))
    codes = sign_codes(torch.tensor([[0.0, -0.0, -1e-9, 2.0]]))
    assert codes.tolist() == [[1.0, 1.0, -1.0, 1.0]]


def test_micro_batches_and_channels_last_do_not_change_the_math(small_data, small_config):
    """One batch through the trainer's forward: same features and gradients with or without the CPU tricks."""
    results = []
    for micro, cl in ((None, False), (4, True)):
        tr = Trainer(small_config.replace(micro_batch=micro, channels_last=cl), small_data, progress=False)
        images = tr._to_device(small_data.pan[:16])
        feats = tr._forward(tr.pan_net, images)
        feats.square().sum().backward()
        results.append((feats.detach(), tr.pan_net.features[0].weight.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-3)


def test_learning_rate_schedules(small_data, small_config):
    cosine = Trainer(small_config.replace(epochs=5, schedule="cosine", lr=0.1, lr_min_factor=0.01), small_data,
                     progress=False)
    lrs = [cosine.lr_at(e) for e in range(5)]
    assert lrs[0] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.001)
    assert all(a > b for a, b in itertools.pairwise(lrs))
    step = Trainer(small_config.replace(epochs=6, schedule="step", lr=0.1), small_data, progress=False)
    assert [step.lr_at(e) for e in range(6)] == pytest.approx([0.1] * 4 + [0.01] * 2)


def test_dataset_checks(small_data, small_config):
    with pytest.raises(ValueError, match="'pan' images have shape"):
        Trainer(small_config.replace(pan_size=128), small_data, progress=False)
    with pytest.raises(TypeError, match="TrainConfig"):
        Trainer({"bits": 16}, small_data)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2"):
        Trainer(small_config, fake_dual_source(1, pan_size=64, ms_size=16))


class _Uint16Pairs(torch.utils.data.Dataset):
    """Fake pairs as a file reader gives them: NumPy uint16 images (values above 255), 8 MS bands."""

    def __init__(self, data):
        self.data = data
        self.labels = data.labels

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        item = self.data[i]
        return {"pan": (item["pan"].numpy() * 4000).astype(np.uint16),
                "ms": (item["ms"].numpy() * 4000).astype(np.uint16), "label": item["label"], "index": i}


def test_small_patches_eight_bands_uint16_train_and_encode(tmp_path):
    """GF-2-like pairs tiled finely (PAN 32×32, MS 8×8), 8 MS bands, uint16 pixels: padding 'auto' trains."""
    data = _Uint16Pairs(fake_dual_source(32, num_classes=4, pan_size=32, ms_size=8, ms_bands=8, seed=2))
    assert data[0]["ms"].dtype == np.uint16 and data[0]["ms"].max() > 255
    cfg = TrainConfig(bits=16, epochs=1, batch_size=16, threads=1, stats_samples=32,
                      calibration_samples=16).replace(pan_size=32, ms_size=8, ms_bands=8, padding="auto")
    tr = Trainer(cfg, data, checkpoint_dir=tmp_path, progress=False)
    assert tr.config.model.padding == "same"  # resolved, and recorded in the config
    assert tr.ms_net.dropped_pools == (2,) and tr.pan_net.dropped_pools == ()
    result = tr.fit()
    assert all(np.isfinite(v) for v in result.history[0].ms.values())
    state = load_checkpoint(tmp_path)
    assert state["config"]["model"]["padding"] == "same" and state["networks"]["ms"]["dropped_pools"] == [2]
    assert len(state["input_stats"]["ms"]["mean"]) == 8 and max(state["input_stats"]["ms"]["mean"]) > 255
    enc = Encoder.load(tmp_path)
    codes = enc.encode(np.stack([data[i]["ms"] for i in range(5)]), "ms")
    assert codes.shape == (5, 2) and codes.dtype == np.uint8


def test_pair_weighting_auto_follows_the_task(tmp_path):
    """Instance data (labels are pair ids) trains with balanced pair weights, class data with the paper's sums;
    the choice is recorded in the checkpoint's config, and an explicit setting is kept."""
    base = TrainConfig(bits=16, epochs=1, batch_size=16, threads=1, stats_samples=32,
                       calibration_samples=16).replace(pan_size=32, ms_size=8, padding="same")
    inst = fake_dual_source(32, num_classes=4, pan_size=32, ms_size=8, seed=2, task="instance")
    cls = fake_dual_source(32, num_classes=4, pan_size=32, ms_size=8, seed=2)
    tr = Trainer(base, inst, checkpoint_dir=tmp_path, progress=False)
    assert tr.config.pair_weighting == "balanced" and tr.loss_fn.balanced
    assert all(t.balanced for t in tr.loss_fn.terms.values())
    tr.fit()
    assert load_checkpoint(tmp_path)["config"]["pair_weighting"] == "balanced"
    assert Trainer(base, cls, progress=False).config.pair_weighting == "none"
    assert not Trainer(base, cls, progress=False).loss_fn.balanced
    kept = Trainer(base.replace(pair_weighting="none"), inst, progress=False)
    assert kept.config.pair_weighting == "none" and not kept.loss_fn.balanced
    assert Trainer(base.replace(pair_weighting="balanced"), cls, progress=False).loss_fn.balanced
    with pytest.raises(ValueError, match="pair_weighting"):
        TrainConfig(pair_weighting="equal")  # type: ignore[arg-type]


def test_balanced_pairs_make_instance_training_pull_pairs_together():
    """On pair-id labels the unweighted objective stalls at Ω ≈ 0 (IRSC ≈ ln 2 per pair, a pair's PAN and MS
    codes agree on about half the bits, as measured on fusebox-landsat7); balanced weights pull the pairs
    together: the stored features of a pair agree on more bits and IRSC falls below ln 2."""
    data = fake_dual_source(64, num_classes=4, pan_size=32, ms_size=8, seed=4, task="instance")
    cfg = TrainConfig(bits=16, epochs=12, batch_size=16, threads=1, stats_samples=64, seed=4,
                      calibration_samples=32).replace(pan_size=32, ms_size=8, padding="same")
    plain = Trainer(cfg.replace(pair_weighting="none"), data, progress=False).fit().history[-1]
    bal = Trainer(cfg, data, progress=False).fit().history[-1]
    # Measured (seeds 4 and 5): agreement 0.52 / 0.54 unweighted, 0.62 / 0.61 balanced; IRSC 0.83 vs 0.54 / 0.58.
    assert bal.source_agreement > plain.source_agreement + 0.05
    assert bal.pan["irsc"] < 0.65 < plain.pan["irsc"]


def test_training_reduces_the_loss_and_beats_chance():
    """A short run on separable fake data: the loss falls and cross-source codes retrieve the class."""
    from hashsearch.training.experiments import evaluate_cross_source, split_dataset

    data = fake_dual_source(160, num_classes=4, pan_size=64, ms_size=16, seed=5, difficulty=0.3)
    train_set, test_set = split_dataset(data, 0.25, seed=0)
    cfg = TrainConfig(bits=16, epochs=8, batch_size=16, threads=1, stats_samples=120, calibration_samples=64,
                      alpha=0.0, gamma=0.0, beta=0.0).replace(pan_size=64, ms_size=16, padding="same")
    tr = Trainer(cfg, train_set, progress=False)
    result = tr.fit()
    first, last = result.history[0], result.history[-1]
    assert last.pan["irsc"] < first.pan["irsc"] and last.ms["irsc"] < first.ms["irsc"]
    res = evaluate_cross_source(Encoder.from_networks(result.pan_net, result.ms_net), train_set, test_set,
                                backend="numpy")
    assert res.map_pan2ms > 0.4 and res.map_ms2pan > 0.4  # chance is ~0.25 with 4 balanced classes


def test_default_objective_learns_cross_source_codes():
    """The full objective with the default optimiser settings (α=1, β=0.1, γ=1, plain SGD, clip 1)."""
    from hashsearch.training.experiments import evaluate_cross_source, split_dataset

    data = fake_dual_source(160, num_classes=4, pan_size=64, ms_size=16, seed=5, difficulty=0.3)
    train_set, test_set = split_dataset(data, 0.25, seed=0)
    cfg = TrainConfig(bits=16, epochs=8, batch_size=16, threads=1, stats_samples=120,
                      calibration_samples=64).replace(pan_size=64, ms_size=16, padding="same")
    result = Trainer(cfg, train_set, progress=False).fit()
    res = evaluate_cross_source(Encoder.from_networks(result.pan_net, result.ms_net), train_set, test_set,
                                backend="numpy")
    assert res.map_pan2ms > 0.6 and res.map_ms2pan > 0.6
    assert result.history[-1].bit_balance < 0.5  # FDC keeps every bit in use


@pytest.mark.slow
@pytest.mark.realdata
def test_real_data_smoke_run(tmp_path):
    """Two epochs on EuroSAT (derived PAN 64×64, MS 4×16×16, 10 classes) built from ../shared/data."""
    from hashsearch._paths import data_root
    from hashsearch.data import build_recipe
    from hashsearch.training.datasets import dual_source_splits
    from hashsearch.training.experiments import evaluate_cross_source

    if not (data_root() / "eurosat-ms").is_dir():
        pytest.skip(f"EuroSAT sample not found under {data_root()} (set HASHSEARCH_DATA)")
    path = build_recipe("eurosat-ms", tmp_path / "eurosat.zarr", progress=False)
    train_set, test_set = dual_source_splits(path, preload=True)
    cfg = TrainConfig(bits=16, epochs=2, batch_size=64, threads=2).replace(
        pan_size=64, ms_size=16, padding="same")
    result = Trainer(cfg, train_set, checkpoint_dir=tmp_path / "ckpt", progress=False).fit()
    assert len(result.history) == 2 and all(np.isfinite(h.pan["loss"]) for h in result.history)
    res = evaluate_cross_source(Encoder.load(tmp_path / "ckpt"), train_set, test_set, backend="numpy")
    assert 0.0 < res.map_pan2ms <= 1.0 and 0.0 < res.map_ms2pan <= 1.0
