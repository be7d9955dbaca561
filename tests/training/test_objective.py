"""The weighted objective: closed-form batch gradients, normalisations, reported values by hand, methods, seams."""

from __future__ import annotations

import math

import pytest
import torch

from hashsearch.packing import sign_codes
from hashsearch.training.config import TrainConfig
from hashsearch.training.losses import TERMS, Batch, LossTerm, closed_form_gradient
from hashsearch.training.objective import (
    METHOD_TERMS,
    LossTerms,
    SIDHCNNLoss,
    WeightedLoss,
    build_loss,
    method_terms,
    method_weights,
)


def _problem(v=23, bits=8, k=3, seed=0, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    pan = torch.randn(v, bits, generator=g, dtype=torch.float64) * scale
    ms = torch.randn(v, bits, generator=g, dtype=torch.float64) * scale
    labels = torch.randint(0, k, (v,), generator=g)
    return pan, ms, labels, sign_codes(pan + ms)


def _nll_by_hand(a, b, la, lb) -> float:
    """Σ_ij softplus(½⟨a_i, b_j⟩) − [la_i == lb_j]·½⟨a_i, b_j⟩, one pair at a time in Python floats."""
    total = 0.0
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            omega = 0.5 * float(a[i] @ b[j])
            total += math.log1p(math.exp(omega)) - (1.0 if int(la[i]) == int(lb[j]) else 0.0) * omega
    return total


def test_batch_loss_gradient_is_the_closed_form_row_gradient():
    """Algorithm 1's batch loss: its gradient w.r.t. the batch rows equals ∂E/∂F_i / (n·V)."""
    pan, ms, labels, codes = _problem(v=29)
    alpha, beta, gamma = 0.8, 0.3, 0.6
    g_pan, g_ms = closed_form_gradient(pan, ms, labels, codes, alpha, beta, gamma)
    idx = torch.tensor([3, 7, 1, 20, 28])
    n, v = idx.numel(), pan.shape[0]
    for norm, scale in (("none", 1.0), ("pairs", 1.0 / (n * v))):
        loss = SIDHCNNLoss(alpha, beta, gamma, normalization=norm, chunk=6)
        f = pan[idx].clone().requires_grad_()
        loss(f, labels[idx], idx, pan, ms, labels, codes).total.backward()
        torch.testing.assert_close(f.grad, g_pan[idx] * scale)
        f = ms[idx].clone().requires_grad_()
        loss(f, labels[idx], idx, ms, pan, labels, codes).total.backward()
        torch.testing.assert_close(f.grad, g_ms[idx] * scale)


def test_per_term_normalisation_rescales_only_bqc():
    pan, ms, labels, codes = _problem(v=16, bits=8)
    idx = torch.arange(4)
    v, bits = 16, 8
    f = pan[idx].clone()
    pairs = SIDHCNNLoss(1.0, 0.5, 1.0, normalization="pairs")(f, labels[idx], idx, pan, ms, labels, codes)
    per_term = SIDHCNNLoss(1.0, 0.5 * v / bits, 1.0, normalization="pairs")(f, labels[idx], idx, pan, ms, labels, codes)
    other = SIDHCNNLoss(1.0, 0.5, 1.0, normalization="per_term")(f, labels[idx], idx, pan, ms, labels, codes)
    torch.testing.assert_close(other.total, per_term.total)
    assert float(pairs.total) != pytest.approx(float(other.total))
    assert set(pairs.as_dict()) == {"loss", "irsc", "iasc", "bqc", "fdc"}


def test_total_and_reported_terms_by_hand():
    """Every value of a step from first principles: per-pair means, and total = (Σ w·term) / (n·V)."""
    pan, ms, labels, codes = _problem(v=6, bits=8, scale=0.7)
    idx = torch.tensor([0, 4])
    n, v, bits = 2, 6, 8
    alpha, beta, gamma = 0.5, 2.0, 0.25
    t = SIDHCNNLoss(alpha, beta, gamma)(pan[idx], labels[idx], idx, pan, ms, labels, codes)
    irsc = _nll_by_hand(pan[idx], ms, labels[idx], labels)  # batch rows against every MS row
    iasc = 2 * _nll_by_hand(pan[idx], pan, labels[idx], labels)  # row and column halves
    bqc = sum(float(pan[i, b] - codes[i, b]) ** 2 for i in (0, 4) for b in range(bits))
    col = [sum(float(pan[i, b]) for i in range(v)) for b in range(bits)]
    fdc = sum(c * c for c in col)
    assert t["irsc"] == pytest.approx(irsc / (n * v))
    assert t["iasc"] == pytest.approx(iasc / (2 * n * v))
    assert t["bqc"] == pytest.approx(bqc / (n * bits))
    assert t["fdc"] == pytest.approx(sum((c / v) ** 2 for c in col) / bits)
    assert float(t.total) == pytest.approx((irsc + alpha * iasc + beta * bqc + gamma * fdc) / (n * v))
    assert t.names == ("irsc", "iasc", "bqc", "fdc")
    assert t.as_dict() == {"loss": float(t.total), **t.values}


def test_zero_alpha_skips_iasc_and_changes_nothing_else():
    pan, ms, labels, codes = _problem(v=12)
    idx = torch.tensor([1, 5, 9])
    args = (pan[idx], labels[idx], idx, pan, ms, labels, codes)
    without = SIDHCNNLoss(0.0, 0.3, 0.2)(*args)
    three = WeightedLoss({"irsc": 1.0, "bqc": 0.3, "fdc": 0.2})(*args)
    assert without["iasc"] == 0.0  # not computed
    torch.testing.assert_close(without.total, three.total, rtol=0, atol=0)
    assert three.names == ("irsc", "bqc", "fdc")


def test_method_terms_and_build_loss():
    assert method_terms("sidhcnn") == ("irsc", "iasc", "bqc", "fdc")
    assert method_terms("dcmh") == ("irsc", "bqc", "fdc")
    assert set(METHOD_TERMS) == {"sidhcnn", "dcmh"}
    loss = build_loss(TrainConfig(alpha=0.5, beta=0.2, gamma=3.0, normalization="per_term"))
    assert loss.weights == {"irsc": 1.0, "iasc": 0.5, "bqc": 0.2, "fdc": 3.0}
    assert loss.normalization == "per_term"
    dcmh = build_loss(TrainConfig(method="dcmh", alpha=0.9, beta=1.0, gamma=0.5))
    assert dcmh.weights == {"irsc": 1.0, "bqc": 1.0, "fdc": 0.5}  # α plays no part in DCMH
    # A weight field not given takes TrainConfig's default (β = 0.1, γ = 1).
    assert method_weights("sidhcnn", {"alpha": 0.0}) == {"irsc": 1.0, "iasc": 0.0, "bqc": 0.1, "fdc": 1.0}
    with pytest.raises(ValueError, match="method must be one of"):
        method_terms("dpsh")
    with pytest.raises(ValueError, match="unknown loss weight"):
        method_weights("sidhcnn", {"delta": 1.0})


def test_config_weight_fields_are_the_terms_weights():
    """Every weight field of TrainConfig scales one registered term, and every weighted term has its field."""
    weighted = [t.weight for t in TERMS.values() if t.weight is not None]
    assert sorted(weighted) == sorted(TrainConfig.weight_fields()) == ["alpha", "beta", "gamma"]
    assert TrainConfig(alpha=0.2).loss_weights() == {"alpha": 0.2, "beta": 0.1, "gamma": 1.0}


class _MeanFeature(LossTerm):
    """A toy extra term: the squared mean of the batch features (weight 1)."""

    name = "toy"
    weight = None
    fmt = ".3e"

    def batch_loss(self, batch: Batch) -> torch.Tensor:
        return batch.features.mean().pow(2) * batch.pairs

    def report(self, value: float, batch: Batch) -> float:
        return value / batch.pairs


def test_a_registered_term_reaches_the_loss_and_the_trainer(monkeypatch, small_data, small_config):
    """Adding a term = one class in TERMS: the loss, the step values and EpochStats carry it, no other edit."""
    from hashsearch.training import Trainer

    monkeypatch.setitem(TERMS, "toy", _MeanFeature)
    pan, ms, labels, codes = _problem(v=10)
    idx = torch.tensor([0, 3])
    t = build_loss(TrainConfig())(pan[idx], labels[idx], idx, pan, ms, labels, codes)
    assert t.names == ("irsc", "iasc", "bqc", "fdc", "toy")
    assert t["toy"] == pytest.approx(float(pan[idx].mean()) ** 2)
    tr = Trainer(small_config.replace(epochs=1), small_data, progress=False)
    assert tr.loss_fn.names[-1] == "toy" and "toy" not in build_loss(TrainConfig(method="dcmh")).names
    result = tr.fit()
    assert set(result.history[0].pan) == {"loss", "irsc", "iasc", "bqc", "fdc", "toy"}
    assert "toy " in tr.loss_fn.describe(result.history[0].ms)


def test_errors():
    pan, ms, labels, codes = _problem(v=8)
    with pytest.raises(ValueError, match="normalization"):
        SIDHCNNLoss(normalization="mean")
    with pytest.raises(ValueError, match="alpha"):
        SIDHCNNLoss(alpha=-1)
    with pytest.raises(ValueError, match="unknown loss term"):
        WeightedLoss({"irsc": 1.0, "nope": 1.0})
    with pytest.raises(ValueError, match="weight of 'bqc'"):
        WeightedLoss({"irsc": 1.0, "bqc": -0.1})
    with pytest.raises(ValueError, match="at least one term"):
        WeightedLoss({})
    idx = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"shape \(V, 8\)"):
        SIDHCNNLoss()(pan[idx], labels[idx], idx, pan, ms[:5], labels, codes)
    with pytest.raises(KeyError):
        LossTerms(torch.zeros(()), {"irsc": 0.5})["iasc"]
