"""Baselines of Table VIII: GIST, CCA-ITQ, SCM-Seq, DCMH — codes searched by the same engine beat chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hashsearch.training import Trainer, fake_dual_source, mean_average_precision
from hashsearch.training.baselines import CCAITQ, DCMHLoss, GistConfig, SCMSeq, dcmh_config, gist, gist_dataset, scm
from hashsearch.training.baselines.cca import itq_rotation
from hashsearch.training.experiments import split_dataset
from hashsearch.training.objective import SIDHCNNLoss

PAN_GIST = GistConfig(image_size=64, grid=2)
MS_GIST = GistConfig(image_size=16, scales=3, grid=2)


@pytest.fixture(scope="module")
def descriptors():
    data = fake_dual_source(160, num_classes=4, pan_size=64, ms_size=16, seed=5)
    train, test = split_dataset(data, 0.25, seed=0)
    return {
        "train": (gist_dataset(train, "pan", PAN_GIST), gist_dataset(train, "ms", MS_GIST), train.labels),
        "test": (gist_dataset(test, "pan", PAN_GIST), gist_dataset(test, "ms", MS_GIST), test.labels),
    }


def test_gist_shapes_and_band_handling():
    rng = np.random.default_rng(0)
    x = rng.random((3, 4, 40, 40)).astype(np.float32)
    cfg = GistConfig(image_size=32)
    per_band = gist(x, cfg)
    assert per_band.shape == (3, 4 * 512) and per_band.dtype == np.float32 and np.isfinite(per_band).all()
    # Per-band mode: the descriptor of band b is the descriptor of that band alone.
    np.testing.assert_allclose(per_band[:, 512:1024], gist(x[:, 1:2], cfg), rtol=1e-5, atol=1e-6)
    mean = gist(x, GistConfig(image_size=32, band_mode="mean"))
    np.testing.assert_allclose(mean, gist(x.mean(axis=1, keepdims=True), cfg), rtol=1e-5, atol=1e-6)
    assert gist(x[0], cfg).shape == (1, 2048)
    assert np.array_equal(gist(x, cfg, chunk=1), per_band)
    assert cfg.dim(4) == 2048 and GistConfig(band_mode="mean").dim(4) == 512


def test_gist_sees_orientation():
    """A vertical and a horizontal grating differ; the same grating shifted barely does."""
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    vertical = np.sin(2 * np.pi * 8 * xx)[None, None]
    shifted = np.sin(2 * np.pi * 8 * xx + 1.0)[None, None]
    horizontal = np.sin(2 * np.pi * 8 * yy)[None, None]
    cfg = GistConfig(image_size=64)
    g = [gist(a, cfg)[0] for a in (vertical, shifted, horizontal)]
    assert np.linalg.norm(g[0] - g[1]) < 0.2 * np.linalg.norm(g[0] - g[2])


def test_gist_errors():
    with pytest.raises(ValueError, match="image_size"):
        GistConfig(image_size=4, grid=4)
    with pytest.raises(ValueError, match="band_mode"):
        GistConfig(band_mode="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(n, C, H, W\)"):
        gist(np.zeros((8, 8)))


@pytest.mark.parametrize("model_cls", [CCAITQ, SCMSeq])
def test_linear_baselines_beat_chance(descriptors, model_cls):
    xp, xm, labels = descriptors["train"]
    qp, qm, qlabels = descriptors["test"]
    model = model_cls(16).fit(xp, xm, labels)
    p2m = mean_average_precision(model.encode(qp, "pan"), qlabels, model.encode(xm, "ms"), labels, backend="numpy")
    m2p = mean_average_precision(model.encode(qm, "ms"), qlabels, model.encode(xp, "pan"), labels, backend="numpy")
    chance = 0.25
    assert p2m > chance + 0.15 and m2p > chance + 0.15, (p2m, m2p)
    codes = model.encode(qp, "pan")
    assert codes.dtype == np.uint8 and codes.shape == (qp.shape[0], 2)


def test_scm_beats_cca_and_needs_labels(descriptors):
    xp, xm, labels = descriptors["train"]
    qp, _, qlabels = descriptors["test"]
    maps = {}
    for cls in (CCAITQ, SCMSeq):
        m = cls(16).fit(xp, xm, labels)
        maps[cls] = mean_average_precision(m.encode(qp, "pan"), qlabels, m.encode(xm, "ms"), labels,
                                           backend="numpy")
    assert maps[SCMSeq] > maps[CCAITQ]  # supervised beats unsupervised, as in Table VIII
    with pytest.raises(ValueError, match="labels are required"):
        SCMSeq(8).fit(xp, xm)


def _svd_pair(a):
    u, _, vt = np.linalg.svd(a)
    sign = 1.0 if u[np.argmax(np.abs(u[:, 0])), 0] >= 0 else -1.0
    return sign * u[:, 0], sign * vt[0]


@pytest.mark.parametrize("gram_limit", [1024, 0])  # the Gram path; ARPACK (with its fallback)
def test_scm_leading_singular_pair(monkeypatch, gram_limit):
    monkeypatch.setattr(scm, "GRAM_LIMIT", gram_limit)
    rng = np.random.default_rng(2)
    for shape in ((30, 50), (50, 30)):
        a = rng.standard_normal(shape)
        u, v = scm._top_singular_pair(a)
        eu, ev = _svd_pair(a)
        np.testing.assert_allclose(u, eu, atol=1e-8)
        np.testing.assert_allclose(v, ev, atol=1e-8)
    # A repeated top singular value (3, 3, 1): any unit pair of that subspace, with a v = 3 u.
    q1, _ = np.linalg.qr(rng.standard_normal((40, 3)))
    q2, _ = np.linalg.qr(rng.standard_normal((60, 3)))
    a = q1 @ np.diag([3.0, 3.0, 1.0]) @ q2.T
    u, v = scm._top_singular_pair(a)
    assert np.linalg.norm(u) == pytest.approx(1) and np.linalg.norm(v) == pytest.approx(1)
    np.testing.assert_allclose(a @ v, 3 * u, atol=1e-8)


def test_scm_refuses_one_label_per_pair(descriptors):
    """Instance data (labels = pair ids): SCM's codes collapse (2 distinct codes for 120 pairs), so it says so."""
    xp, xm, labels = descriptors["train"]
    with pytest.raises(ValueError, match=r"one label per pair.*CCA-ITQ"):
        SCMSeq(16).fit(xp, xm, np.arange(labels.size))
    SCMSeq(16).fit(xp, xm, np.r_[0, np.arange(labels.size - 1)])  # one shared label is enough to fit


def test_linear_save_load_and_checks(descriptors, tmp_path):
    xp, xm, _ = descriptors["train"]
    model = CCAITQ(8).fit(xp, xm)
    path = model.save(tmp_path / "cca.npz")
    loaded = CCAITQ.load(path)
    assert np.array_equal(loaded.encode(xp, "pan"), model.encode(xp, "pan"))
    with pytest.raises(RuntimeError, match="not fitted"):
        CCAITQ(8).encode(xp, "pan")
    with pytest.raises(ValueError, match="multiple of 8"):
        CCAITQ(12)
    with pytest.raises(ValueError, match="same n"):
        CCAITQ(8).fit(xp, xm[:-1])
    with pytest.raises(ValueError, match="source"):
        model.encode(xp, "sar")


def test_itq_rotation_is_orthogonal_and_reduces_quantisation():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((500, 8)) @ rng.standard_normal((8, 8))
    z -= z.mean(0)
    r = itq_rotation(z, 30)
    np.testing.assert_allclose(r @ r.T, np.eye(8), atol=1e-10)

    def qerr(m):
        return float(np.square(np.sign(z @ m) - z @ m).sum())

    assert qerr(r) < qerr(np.eye(8))


def test_dcmh_objective_is_sidhcnn_without_iasc():
    g = torch.Generator().manual_seed(0)
    own, other = torch.randn(20, 8, generator=g), torch.randn(20, 8, generator=g)
    labels = torch.randint(0, 3, (20,), generator=g)
    codes = torch.where(own + other >= 0, 1.0, -1.0)
    idx = torch.tensor([1, 4, 9])
    f = own[idx].clone()
    dcmh = DCMHLoss(quantization=0.7, balance=0.3)(f, labels[idx], idx, own, other, labels, codes)
    sid = SIDHCNNLoss(0.0, 0.7, 0.3)(f, labels[idx], idx, own, other, labels, codes)
    torch.testing.assert_close(dcmh.total, sid.total)
    assert dcmh.names == ("irsc", "bqc", "fdc")  # no IASC term at all


def test_dcmh_trains_with_the_shared_trainer(small_data, small_config):
    cfg = dcmh_config(small_config.replace(epochs=1))
    assert cfg.method == "dcmh" and cfg.alpha == 0.0 and (cfg.beta, cfg.gamma) == (1.0, 1.0)
    tr = Trainer(cfg, small_data, progress=False)
    # The trainer builds DCMH's objective itself (it never imports the baseline): the same terms and weights.
    expected = {"irsc": 1.0, "bqc": 1.0, "fdc": 1.0}
    assert tr.loss_fn.weights == DCMHLoss(quantization=1.0, balance=1.0).weights == expected
    result = tr.fit()
    assert "iasc" not in result.history[0].pan
