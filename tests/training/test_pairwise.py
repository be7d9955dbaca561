"""The pairwise likelihood kernel: values by hand, fused vs plain autograd, streaming, input checks."""

from __future__ import annotations

import math

import pytest
import torch

from hashsearch.training.pairwise import check_features, pair_weights, pairwise_nll, similarity


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _problem(v=17, bits=5, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    pan = torch.randn(v, bits, generator=g, dtype=torch.float64) * 1.5
    ms = torch.randn(v, bits, generator=g, dtype=torch.float64) * 1.5
    return pan, ms, torch.randint(0, k, (v,), generator=g)


def test_pairwise_value_by_hand():
    q = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    r = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    # Ω = ½⟨q, r_j⟩ = [0.5, -1.0]; labels: q ~ r_0 (S = 1), q !~ r_1 (S = 0).
    expected = (_softplus(0.5) - 0.5) + _softplus(-1.0)
    for fused in (True, False):
        got = pairwise_nll(q, r, torch.tensor([7]), torch.tensor([7, 9]), fused=fused)
        assert float(got) == pytest.approx(expected, rel=1e-12)


def test_labels_that_are_not_small_class_indices():
    """Labels like 7 and 1000 (not 0..K-1) go through torch.unique: the same value as class indices."""
    q, r, labels = _problem(v=9)
    relabelled = torch.tensor([7, 1000, -3])[labels]
    torch.testing.assert_close(pairwise_nll(q, r, relabelled, relabelled), pairwise_nll(q, r, labels, labels))


def test_fused_matches_plain_autograd_and_gradcheck():
    pan, ms, labels = _problem()
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


def test_balanced_weights_by_hand():
    # Pair ids 0..3 against themselves: T = 16 pairs, |S_1| = 4, |S_0| = 12.
    # w_1 = 16 / (2·4) = 2, w_0 = 16 / (2·12) = 2/3: each half weighs T / 2 = 8 in total.
    w0, w1 = pair_weights(torch.arange(4), torch.arange(4))
    assert (w0, w1) == pytest.approx((2 / 3, 2.0))
    assert 12 * w0 == pytest.approx(4 * w1)
    # Classes [0, 0, 1] × [0, 1, 1, 1]: |S_1| = 1 + 1 + 3 = 5 of T = 12 -> w_1 = 1.2, w_0 = 12 / 14.
    assert pair_weights(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1, 1])) == pytest.approx((12 / 14, 1.2))
    # Nothing to balance (all similar, or none similar): every pair weighs 1.
    assert pair_weights(torch.zeros(3, dtype=torch.long), torch.zeros(2, dtype=torch.long)) == (1.0, 1.0)
    assert pair_weights(torch.tensor([1]), torch.tensor([2, 3])) == (1.0, 1.0)


def test_balanced_value_by_hand():
    q = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    r = torch.tensor([[1.0, 0.0], [0.0, -1.0], [2.0, 1.0]], dtype=torch.float64)
    # Ω = ½⟨q, r_j⟩ = [0.5, -1.0, 2.0]; q ~ r_0 only: T = 3, |S_1| = 1, |S_0| = 2 -> w_1 = 3/2, w_0 = 3/4.
    expected = 1.5 * (_softplus(0.5) - 0.5) + 0.75 * (_softplus(-1.0) + _softplus(2.0))
    for fused in (True, False):
        got = pairwise_nll(q, r, torch.tensor([7]), torch.tensor([7, 9, 9]), fused=fused, balanced=True)
        assert float(got) == pytest.approx(expected, rel=1e-12)
    unweighted = (_softplus(0.5) - 0.5) + _softplus(-1.0) + _softplus(2.0)
    assert float(pairwise_nll(q, r, torch.tensor([7]), torch.tensor([7, 9, 9]))) == pytest.approx(unweighted)


def test_balanced_fused_matches_plain_autograd_and_gradcheck():
    pan, ms, _ = _problem()
    ids = torch.arange(pan.shape[0])  # instance data: one similar pair per row
    for labels in (ids, torch.randint(0, 3, (pan.shape[0],), generator=torch.Generator().manual_seed(4))):
        for chunk in (1, 4, 1000):
            a, b = pan.clone().requires_grad_(), ms.clone().requires_grad_()
            fused = pairwise_nll(a, b, labels, labels, chunk=chunk, balanced=True)
            fused.backward()
            a2, b2 = pan.clone().requires_grad_(), ms.clone().requires_grad_()
            plain = pairwise_nll(a2, b2, labels, labels, fused=False, balanced=True)
            plain.backward()
            torch.testing.assert_close(fused, plain)
            torch.testing.assert_close(a.grad, a2.grad)
            torch.testing.assert_close(b.grad, b2.grad)
    assert torch.autograd.gradcheck(
        lambda q, r: pairwise_nll(q, r, ids[:6], ids, chunk=4, balanced=True),
        (pan[:6].clone().requires_grad_(), ms.clone().requires_grad_()),
    )


def _fit_pair_ids(balanced: bool, v: int = 96, bits: int = 16, steps: int = 150) -> tuple[float, float]:
    """Gradient descent on free features of v pairs labelled by pair id, normalised per pair as the trainer does.

    Returns (mean ½⟨p_i, m_i⟩ of the own pairs, recall@1 of PAN rows finding their own MS row by inner product).
    """
    g = torch.Generator().manual_seed(0)
    pan = (0.1 * torch.randn(v, bits, generator=g, dtype=torch.float64)).requires_grad_()
    ms = (0.1 * torch.randn(v, bits, generator=g, dtype=torch.float64)).requires_grad_()
    ids = torch.arange(v)
    opt = torch.optim.SGD([pan, ms], lr=20.0)
    for _ in range(steps):
        opt.zero_grad()
        (pairwise_nll(pan, ms, ids, ids, balanced=balanced) / (v * v)).backward()
        opt.step()
    with torch.no_grad():
        omega = 0.5 * pan @ ms.t()
        return float(omega.diagonal().mean()), float((omega.argmax(dim=1) == ids).double().mean())


def test_balanced_weights_learn_pair_ids_where_the_plain_sum_stalls():
    """One similar pair among V per row: unweighted, the V − 1 dissimilar pairs are the whole loss and the
    own pair's Ω stays near 0; balanced, the own pairs pull together and are found (the fusebox failure)."""
    plain_omega, plain_recall = _fit_pair_ids(balanced=False)
    bal_omega, bal_recall = _fit_pair_ids(balanced=True)
    assert plain_omega < 0 < 1.0 < bal_omega  # unweighted: the own pairs are pushed apart with all the others
    assert plain_recall < 0.2 and bal_recall > 0.9


def test_input_errors():
    q = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="same code length"):
        pairwise_nll(q, torch.zeros(2, 5), torch.zeros(3, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match="integer class labels"):
        pairwise_nll(q, q, torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        pairwise_nll(q, q, torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        pairwise_nll([[0.0]], q, [0], [0])
    with pytest.raises(TypeError, match="share dtype"):
        pairwise_nll(q, q.double(), torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="float tensor"):
        check_features("f", torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(n, l\)"):
        check_features("f", torch.zeros(4))
