"""The corrected objective: values by hand, autograd vs the closed form of SPEC §2, batch form, FDC."""

from __future__ import annotations

import math

import pytest
import torch

from hashsearch.training.losses import (
    BQCLoss,
    FDCLoss,
    IASCLoss,
    IRSCLoss,
    SIDHCNNLoss,
    closed_form_gradient,
    pairwise_nll,
    sidhcnn_objective,
    similarity,
)


def _problem(v=23, l=8, k=3, seed=0, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    pan = torch.randn(v, l, generator=g, dtype=torch.float64) * scale
    ms = torch.randn(v, l, generator=g, dtype=torch.float64) * scale
    labels = torch.randint(0, k, (v,), generator=g)
    codes = torch.where(pan + ms >= 0, 1.0, -1.0).double()
    return pan, ms, labels, codes


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_pairwise_value_by_hand():
    q = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    r = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    # Ω = ½⟨q, r_j⟩ = [0.5, -1.0]; labels: q ~ r_0 (S = 1), q !~ r_1 (S = 0).
    expected = (_softplus(0.5) - 0.5) + _softplus(-1.0)
    for fused in (True, False):
        got = pairwise_nll(q, r, torch.tensor([7]), torch.tensor([7, 9]), fused=fused)
        assert float(got) == pytest.approx(expected, rel=1e-12)


def test_sidhcnn_objective_by_hand():
    # V = 2, l = 2, both samples in one class except where noted; every term by hand.
    pan = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    ms = torch.tensor([[1.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    codes = torch.tensor([[1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    alpha, beta, gamma = 0.5, 0.25, 2.0
    s = [[1, 0], [0, 1]]

    def nll(a, b):
        return sum(_softplus(0.5 * float(a[i] @ b[j])) - s[i][j] * 0.5 * float(a[i] @ b[j])
                   for i in range(2) for j in range(2))

    irsc, iasc = nll(pan, ms), nll(pan, pan) + nll(ms, ms)
    bqc = float(((pan - codes) ** 2).sum() + ((ms - codes) ** 2).sum())
    fdc = float((pan.sum(0) ** 2).sum() + (ms.sum(0) ** 2).sum())
    expected = irsc + alpha * iasc + beta * bqc + gamma * fdc
    for fused in (True, False):
        got = sidhcnn_objective(pan, ms, labels, codes, alpha, beta, gamma, fused=fused)
        assert float(got) == pytest.approx(expected, rel=1e-12)
    assert float(BQCLoss()(pan, codes)) == pytest.approx(float(((pan - codes) ** 2).sum()))
    assert float(FDCLoss()(pan)) == pytest.approx(1.0 + 4.0)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize(("alpha", "beta", "gamma"), [(1.0, 0.1, 1.0), (0.0, 0.0, 0.0), (0.7, 2.0, 0.3)])
def test_autograd_matches_closed_form(fused, alpha, beta, gamma):
    """SPEC §2: ∂E/∂F^P_i = ½Σ(σ(Ω^U)−S)F^M + αΣ(σ(Ω^P)−S)F^P + 2β(F^P−B) + 2γF^P·1 (and for F^M)."""
    pan, ms, labels, codes = _problem()
    p, m = pan.clone().requires_grad_(), ms.clone().requires_grad_()
    sidhcnn_objective(p, m, labels, codes, alpha, beta, gamma, fused=fused).backward()
    g_pan, g_ms = closed_form_gradient(pan, ms, labels, codes, alpha, beta, gamma)
    # The unfused path uses torch's softplus, linear above 20: tolerance covers it.
    torch.testing.assert_close(p.grad, g_pan, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(m.grad, g_ms, rtol=1e-7, atol=1e-7)


def test_fused_matches_plain_autograd_and_gradcheck():
    pan, ms, labels, _ = _problem(v=17, l=5)
    for chunk in (1, 4, 1000):
        a = pan.clone().requires_grad_()
        b = ms.clone().requires_grad_()
        fused = pairwise_nll(a, b, labels, labels, chunk=chunk)
        fused.backward()
        a2, b2 = pan.clone().requires_grad_(), ms.clone().requires_grad_()
        plain = pairwise_nll(a2, b2, labels, labels, fused=False)
        plain.backward()
        torch.testing.assert_close(fused, plain)
        torch.testing.assert_close(a.grad, a2.grad)
        torch.testing.assert_close(b.grad, b2.grad)
    assert torch.autograd.gradcheck(
        lambda q, r: pairwise_nll(q, r, labels[:6], labels, chunk=4),
        (pan[:6].clone().requires_grad_(), ms.clone().requires_grad_()),
    )


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
    pan, ms, labels, codes = _problem(v=16, l=8)
    idx = torch.arange(4)
    n, v, l = 4, 16, 8
    f = pan[idx].clone()
    pairs = SIDHCNNLoss(1.0, 0.5, 1.0, normalization="pairs")(f, labels[idx], idx, pan, ms, labels, codes)
    per_term = SIDHCNNLoss(1.0, 0.5 * v / l, 1.0, normalization="pairs")(f, labels[idx], idx, pan, ms, labels, codes)
    other = SIDHCNNLoss(1.0, 0.5, 1.0, normalization="per_term")(f, labels[idx], idx, pan, ms, labels, codes)
    torch.testing.assert_close(other.total, per_term.total)
    assert float(pairs.total) != pytest.approx(float(other.total))
    assert set(pairs.as_dict()) == {"loss", "irsc", "iasc", "bqc", "fdc"}
    assert n == 4


def test_loss_terms_are_per_pair_means():
    pan, ms, labels, codes = _problem(v=12, l=8)
    idx = torch.tensor([0, 5, 9])
    t = SIDHCNNLoss(1.0, 1.0, 1.0)(pan[idx], labels[idx], idx, pan, ms, labels, codes)
    assert t.irsc == pytest.approx(float(IRSCLoss()(pan[idx], ms, labels[idx], labels)) / (3 * 12))
    assert t.iasc == pytest.approx(float(IASCLoss()(pan[idx], labels[idx], pan, labels)) / (2 * 3 * 12))
    assert t.bqc == pytest.approx(float(((pan[idx] - codes[idx]) ** 2).mean()))
    assert t.fdc == pytest.approx(float((pan.mean(0) ** 2).mean()))


def test_similarity_is_built_per_block():
    s = similarity(torch.tensor([1, 2, 1]), torch.tensor([1, 1, 3, 2]))
    assert s.tolist() == [[1, 1, 0, 0], [0, 0, 0, 1], [1, 1, 0, 0]]


def test_large_reference_never_needs_v_by_v():
    """V = 60,000 references against a batch of 128: the fused path streams chunks (and agrees in value)."""
    g = torch.Generator().manual_seed(1)
    ref = torch.randn(60_000, 8, generator=g)
    q = torch.randn(128, 8, generator=g, requires_grad=True)
    lq, lr = torch.randint(0, 8, (128,), generator=g), torch.randint(0, 8, (60_000,), generator=g)
    value = pairwise_nll(q, ref, lq, lr, chunk=4096)
    value.backward()
    assert q.grad.shape == (128, 8) and torch.isfinite(q.grad).all()
    sub = pairwise_nll(q.detach(), ref[:4096], lq, lr[:4096], fused=False)
    part = pairwise_nll(q.detach(), ref[:4096], lq, lr[:4096], chunk=4096)
    torch.testing.assert_close(sub, part)


def test_loss_decreases_under_gradient_descent():
    """Free features optimised on E: the objective goes down steadily and codes follow the labels."""
    pan, ms, labels, codes = _problem(v=40, l=8, k=4, scale=0.3)
    p, m = pan.clone().requires_grad_(), ms.clone().requires_grad_()
    opt = torch.optim.SGD([p, m], lr=0.01)
    values = []
    for _ in range(60):
        b = torch.where(p.detach() + m.detach() >= 0, 1.0, -1.0).double()
        e = sidhcnn_objective(p, m, labels, b, 1.0, 0.1, 1.0)
        values.append(float(e.detach()))
        opt.zero_grad()
        e.backward()
        opt.step()
    assert values[-1] < 0.5 * values[0]
    assert all(b <= a * 1.05 for a, b in zip(values, values[1:]))
    # Same-class cross-source pairs end up with positive inner products, others negative.
    omega = p.detach() @ m.detach().t()
    same = labels[:, None] == labels[None, :]
    assert (omega[same] > 0).float().mean() > 0.9 and (omega[~same] < 0).float().mean() > 0.9


def test_fdc_balances_bits():
    """Features with a common offset: with FDC (γ = 1) the bits get balanced, without it they stay +1."""
    g = torch.Generator().manual_seed(2)
    base = torch.randn(64, 8, generator=g, dtype=torch.float64) + 2.0
    labels = torch.randint(0, 4, (64,), generator=g)

    def balance(gamma):
        p, m = base.clone().requires_grad_(), base.clone().flip(0).requires_grad_()
        opt = torch.optim.SGD([p, m], lr=0.01)
        for _ in range(100):
            b = torch.where(p.detach() + m.detach() >= 0, 1.0, -1.0).double()
            e = sidhcnn_objective(p, m, labels, b, 0.0, 0.0, gamma) / 64
            opt.zero_grad()
            e.backward()
            opt.step()
        bits = (p.detach() >= 0).double()
        return float((bits.mean(0) - 0.5).abs().max())

    assert balance(0.0) > 0.4  # nearly every bit still +1 for every sample
    assert balance(1.0) < 0.2


def test_input_errors():
    q = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="same code length"):
        pairwise_nll(q, torch.zeros(2, 5), torch.zeros(3, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match="integer class labels"):
        pairwise_nll(q, q, torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        pairwise_nll(q, q, torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        pairwise_nll([[0.0]], q, [0], [0])
    with pytest.raises(ValueError, match="normalization"):
        SIDHCNNLoss(normalization="mean")
    with pytest.raises(ValueError, match="alpha"):
        SIDHCNNLoss(alpha=-1)
    with pytest.raises(ValueError, match="reference_labels"):
        IASCLoss()(q, torch.zeros(3, dtype=torch.long), q)
