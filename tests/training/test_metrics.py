"""MAP of Hamming ranking as training code imports it: hand-computed cases, the tie rule, top-k.

``hashsearch.training.metrics`` re-exports :mod:`hashsearch.eval.metrics` (one definition);
these cases pin what the training experiments rely on through that name.
"""

from __future__ import annotations

import numpy as np
import pytest

from hashsearch.eval import metrics as eval_metrics
from hashsearch.training.metrics import average_precisions, mean_average_precision


def test_one_definition_lives_in_eval():
    assert average_precisions is eval_metrics.average_precisions
    assert mean_average_precision is eval_metrics.mean_average_precision


def test_hand_computed_average_precision():
    db = np.array([[0b0000], [0b0011], [0b1111], [0b0001]], dtype=np.uint8)
    q = np.array([[0b0000]], dtype=np.uint8)
    # distances 0, 2, 4, 1 -> ranking positions 0, 3, 1, 2; relevant (label 0): 0 and 2.
    ap = average_precisions(q, [0], db, [0, 1, 0, 1], backend="numpy")
    assert ap[0] == pytest.approx((1 / 1 + 2 / 4) / 2)


def test_ties_break_by_database_position():
    db = np.zeros((4, 1), np.uint8)  # all at distance 0
    q = np.zeros((1, 1), np.uint8)
    # Ranking must be 0, 1, 2, 3: the relevant item at position 3 gets precision 1/4.
    assert mean_average_precision(q, [5], db, [1, 1, 1, 5], backend="numpy") == pytest.approx(0.25)
    assert mean_average_precision(q, [5], db, [5, 1, 1, 1], backend="numpy") == pytest.approx(1.0)


def test_top_k_and_no_relevant():
    db = np.array([[0], [1], [3], [7]], dtype=np.uint8)
    q = np.array([[0], [255]], dtype=np.uint8)
    ap = average_precisions(q, [0, 9], db, [1, 1, 0, 0], top_k=2, backend="numpy")
    assert ap.tolist() == [0.0, 0.0]  # nothing relevant in the top 2 / at all
    ap = average_precisions(q, [0, 9], db, [1, 1, 0, 0], backend="numpy")
    assert ap[0] == pytest.approx((1 / 3 + 2 / 4) / 2) and ap[1] == 0.0


def test_perfect_and_random_codes():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    centres = rng.integers(0, 256, (4, 4), dtype=np.uint8)
    codes = centres[labels]
    assert mean_average_precision(codes[:20], labels[:20], codes, labels, backend="numpy") == pytest.approx(1.0)
    noise = rng.integers(0, 256, (200, 4), dtype=np.uint8)
    m = mean_average_precision(noise[:50], labels[:50], noise, labels, backend="numpy")
    assert 0.15 < m < 0.4


def test_errors():
    with pytest.raises(ValueError, match="bytes per code"):
        mean_average_precision(np.zeros((1, 2), np.uint8), [0], np.zeros((2, 1), np.uint8), [0, 0])
    with pytest.raises(ValueError, match="shape"):
        mean_average_precision(np.zeros((1, 1), np.uint8), [0, 1], np.zeros((2, 1), np.uint8), [0, 0])
    with pytest.raises(TypeError, match="integer"):
        mean_average_precision(np.zeros((1, 1), np.uint8), [0.5], np.zeros((2, 1), np.uint8), [0, 0])
