"""The loss terms: values by hand, autograd vs the closed form of SPEC §2, batch forms, the registry."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from hashsearch.packing import sign_codes
from hashsearch.training.losses import (
    TERMS,
    Batch,
    BQCLoss,
    FDCLoss,
    IASCLoss,
    IRSCLoss,
    LossTerm,
    closed_form_gradient,
    register_term,
    sidhcnn_objective,
)


def _problem(v=23, bits=8, k=3, seed=0, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    pan = torch.randn(v, bits, generator=g, dtype=torch.float64) * scale
    ms = torch.randn(v, bits, generator=g, dtype=torch.float64) * scale
    labels = torch.randint(0, k, (v,), generator=g)
    codes = sign_codes(pan + ms)
    return pan, ms, labels, codes


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


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
    # BQC: (1-1)² + (0-1)² + (0+1)² + (2-1)² = 3; FDC: column sums (1, 2) -> 1 + 4.
    assert float(BQCLoss()(pan, codes)) == pytest.approx(3.0)
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


#: Which (α, β, γ) isolates each term's share of the closed-form gradient.
_ISOLATE = {"irsc": (0.0, 0.0, 0.0), "iasc": (1.0, 0.0, 0.0), "bqc": (0.0, 1.0, 0.0), "fdc": (0.0, 0.0, 1.0)}


@pytest.mark.parametrize("name", list(_ISOLATE))
def test_each_term_batch_form_gives_its_share_of_the_row_gradient(name):
    """term.batch_loss over a batch of PAN rows: gradient = that term's part of ∂E/∂F^P for those rows."""
    pan, ms, labels, codes = _problem(v=19)
    idx = torch.tensor([2, 11, 5, 18])
    base, _ = closed_form_gradient(pan, ms, labels, codes, 0.0, 0.0, 0.0)
    full, _ = closed_form_gradient(pan, ms, labels, codes, *_ISOLATE[name])
    expected = full if name == "irsc" else full - base  # IRSC is in every objective
    f = pan[idx].clone().requires_grad_()
    batch = Batch(f, labels[idx], idx, pan, ms, labels, codes)
    TERMS[name](chunk=5).batch_loss(batch).backward()
    torch.testing.assert_close(f.grad, expected[idx], rtol=1e-9, atol=1e-9)


def test_registry_holds_the_papers_terms_in_order():
    assert list(TERMS) == ["irsc", "iasc", "bqc", "fdc"]
    assert [TERMS[n].weight for n in TERMS] == [None, "alpha", "beta", "gamma"]
    assert TERMS["irsc"] is IRSCLoss and TERMS["iasc"] is IASCLoss
    assert all(issubclass(t, LossTerm) and t.name == n for n, t in TERMS.items())
    assert TERMS["iasc"].skip_when_unweighted and not TERMS["bqc"].skip_when_unweighted


def test_register_term_rejects_bad_terms():
    class Again(LossTerm):
        name = "irsc"

    class Nameless(LossTerm):
        pass

    class Total(LossTerm):
        name = "loss"

    class BadWeight(LossTerm):
        name = "ok_name"
        weight = "not a field"

    with pytest.raises(ValueError, match="already registered"):
        register_term(Again)
    with pytest.raises(ValueError, match="identifier"):
        register_term(Nameless)
    with pytest.raises(ValueError, match="other than 'loss'"):
        register_term(Total)
    with pytest.raises(ValueError, match="weight"):
        register_term(BadWeight)
    with pytest.raises(TypeError, match="LossTerm subclass"):
        register_term(torch.nn.Module)  # type: ignore[arg-type]
    assert list(TERMS) == ["irsc", "iasc", "bqc", "fdc"]  # nothing registered on the way


def test_loss_decreases_under_gradient_descent():
    """Free features optimised on E: the objective goes down steadily and codes follow the labels."""
    pan, ms, labels, _ = _problem(v=40, bits=8, k=4, scale=0.3)
    p, m = pan.clone().requires_grad_(), ms.clone().requires_grad_()
    opt = torch.optim.SGD([p, m], lr=0.01)
    values = []
    for _ in range(60):
        b = sign_codes(p.detach() + m.detach())
        e = sidhcnn_objective(p, m, labels, b, 1.0, 0.1, 1.0)
        values.append(float(e.detach()))
        opt.zero_grad()
        e.backward()
        opt.step()
    assert values[-1] < 0.5 * values[0]
    assert all(b <= a * 1.05 for a, b in itertools.pairwise(values))
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
            b = sign_codes(p.detach() + m.detach())
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
    with pytest.raises(ValueError, match="reference_labels"):
        IASCLoss()(q, torch.zeros(3, dtype=torch.long), q)
    with pytest.raises(ValueError, match="features' shape"):
        BQCLoss()(q, torch.zeros(3, 5))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        FDCLoss()([[0.0]])
