"""hashsearch.eval.metrics: hand-worked cases, brute-force and scikit-learn cross-checks, bounds, bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from hashsearch.eval.metrics import (
    feature_ranking_stats,
    harmonic_numbers,
    mean_average_precision,
    ranking_stats,
    tie_aware_average_precisions,
)
from hashsearch.functional import hamming_distances, range_search


def _codes(*values: int) -> np.ndarray:
    return np.array([[v] for v in values], dtype=np.uint8)


# ---------------------------------------------------------------- hand-worked cases
def test_eq10_average_precision_by_hand():
    # query 0b0; db distances: 0 (rel), 2 (irr), 8 (rel) -> ranking rel, irr, rel
    # AP = (1/1 + 2/3) / 2 = 5/6
    db = _codes(0b00000000, 0b00000011, 0b11111111)
    s = ranking_stats(_codes(0), [0], db, [0, 1, 0], backend="numpy")
    assert s.ap[0] == pytest.approx(5 / 6)
    assert s.first_rank.tolist() == [1]
    assert s.n_relevant.tolist() == [2]


def test_ties_are_broken_by_database_position():
    # four identical codes (all at distance 0), labels [1, 0, 0, 1], query label 1:
    # by position the relevant items sit at ranks 1 and 4: AP = (1/1 + 2/4) / 2 = 3/4
    db = np.zeros((4, 1), np.uint8)
    s = ranking_stats(np.zeros((1, 1), np.uint8), [1], db, [1, 0, 0, 1], backend="numpy")
    assert s.mean_average_precision() == pytest.approx(0.75)
    # the same database reversed in storage: ranks 1 and 4 again (symmetric labels) -> 3/4;
    # labels [0, 0, 1, 1]: ranks 3 and 4: AP = (1/3 + 2/4) / 2 = 5/12
    s = ranking_stats(np.zeros((1, 1), np.uint8), [1], db, [0, 0, 1, 1], backend="numpy")
    assert s.mean_average_precision() == pytest.approx(5 / 12)


def test_tie_aware_average_precision_by_hand():
    # one group of t = 4 items, m = 2 relevant. The 6 placements of the two relevant items:
    # (1,2) 1; (1,3) (1+2/3)/2 = 5/6; (1,4) 3/4; (2,3) (1/2+2/3)/2 = 7/12; (2,4) 1/2; (3,4) 5/12
    # mean = (12 + 10 + 9 + 7 + 6 + 5) / 12 / 6 = 49/72, whatever the storage order
    db = np.zeros((4, 1), np.uint8)
    for labels in ([1, 0, 0, 1], [0, 0, 1, 1], [1, 1, 0, 0]):
        ap = tie_aware_average_precisions(np.zeros((1, 1), np.uint8), [1], db, labels, backend="numpy")
        assert ap[0] == pytest.approx(49 / 72)


def test_tie_aware_equals_position_rule_without_ties():
    # distances 0, 1, 2, 3 (all different): random order within groups changes nothing
    db = _codes(0b0000, 0b0001, 0b0011, 0b0111)
    s = ranking_stats(_codes(0), [1], db, [0, 1, 0, 1], backend="numpy")
    # ranks 2 and 4: AP = (1/2 + 2/4) / 2 = 1/2
    assert s.ap[0] == pytest.approx(0.5)
    assert s.average_precisions_tie_aware()[0] == pytest.approx(0.5)
    assert s.mean_reciprocal_rank() == pytest.approx(0.5)
    assert s.mean_reciprocal_rank_tie_aware() == pytest.approx(0.5)


def test_top_k_metrics_by_hand():
    # query 0 against distances 0, 1, 2, 3, 4 with labels rel, irr, rel, irr, irr (query label 7)
    db = _codes(0b0000, 0b0001, 0b0011, 0b0111, 0b1111)
    s = ranking_stats(_codes(0), [7], db, [7, 0, 7, 0, 0], ks=(1, 2, 3, 10), backend="numpy")
    assert s.ks == (1, 2, 3, 5)  # 10 is clipped to n = 5
    assert s.precision_at(1) == 1.0
    assert s.precision_at(2) == 0.5
    assert s.precision_at(3) == pytest.approx(2 / 3)
    assert s.precision_at(10) == pytest.approx(2 / 5)
    assert s.recall_at(1) == 0.5 and s.recall_at(3) == 1.0
    # MAP@2: only rank 1 is relevant in the top 2 -> (1/1) / 1 = 1; MAP@3: (1 + 2/3) / 2 = 5/6
    assert s.map_at(2) == 1.0
    assert s.map_at(3) == pytest.approx(5 / 6)
    with pytest.raises(KeyError, match="k=4 was not computed"):
        s.precision_at(4)


def test_radius_precision_and_recall_by_hand():
    # distances 0, 1, 2, 3, 4, labels rel, irr, rel, irr, rel (n_rel = 3)
    db = _codes(0b0000, 0b0001, 0b0011, 0b0111, 0b1111)
    s = ranking_stats(_codes(0), [1], db, [1, 0, 1, 0, 1], nbits=8, backend="numpy")
    curves = s.radius_curves()
    assert curves["radius"].tolist() == list(range(9))
    # r = 0: 1 retrieved, 1 relevant -> P 1, R 1/3; r = 1: 1/2, 1/3; r = 2: 2/3, 2/3; r = 4..8: 3/5, 1
    np.testing.assert_allclose(curves["precision"][:5], [1, 1 / 2, 2 / 3, 2 / 4, 3 / 5])
    np.testing.assert_allclose(curves["recall"][:5], [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(curves["precision"][4:], 3 / 5)
    np.testing.assert_allclose(curves["mean_retrieved"][:5], [1, 2, 3, 4, 5])


def test_radius_query_retrieving_nothing_has_precision_zero():
    # query 0xFF is at distance 8 from the only item: nothing within radius 0..7
    s = ranking_stats(_codes(0xFF), [0], _codes(0), [0], backend="numpy")
    curves = s.radius_curves()
    assert curves["precision"][:8].tolist() == [0.0] * 8 and curves["precision"][8] == 1.0
    assert curves["retrieved_fraction"][:8].tolist() == [0.0] * 8


def test_instance_matching_recall_and_mrr_by_hand():
    # three queries, each with exactly one relevant item (its pair, key = query index)
    db = _codes(0b0000, 0b0001, 0b1111)  # keys 0, 1, 2
    q = _codes(0b0000, 0b0111, 0b1111)
    s = ranking_stats(q, [0, 1, 2], db, [0, 1, 2], ks=(1, 2, 3), backend="numpy")
    # q0: distances 0, 1, 4 -> pair (db 0) at rank 1
    # q1 (0b0111): distances 3, 2, 1 -> order db2, db1, db0 -> pair (db 1) at rank 2
    # q2 (0b1111): distances 4, 3, 0 -> order db2, db1, db0 -> pair (db 2) at rank 1
    assert s.first_rank.tolist() == [1, 2, 1]
    assert s.recall_at(1) == pytest.approx(2 / 3)
    assert s.recall_at(2) == 1.0
    assert s.mean_reciprocal_rank() == pytest.approx((1 + 1 / 2 + 1) / 3)


def test_tie_aware_mrr_and_expected_hits_by_hand():
    # five identical codes, one relevant item: its rank is uniform on 1..5
    # E[1/rank] = H(5) / 5 = (137/60) / 5 = 137/300; E[hits@2] = 2/5
    db = np.zeros((5, 1), np.uint8)
    s = ranking_stats(np.zeros((1, 1), np.uint8), [3], db, [0, 0, 0, 0, 3], ks=(2,), backend="numpy")
    assert s.mean_reciprocal_rank() == pytest.approx(1 / 5)  # by position: rank 5
    assert s.mean_reciprocal_rank_tie_aware() == pytest.approx(137 / 300)
    assert s.precision_at_tie_aware(2) == pytest.approx((2 / 5) / 2)
    assert s.recall_at_tie_aware(2) == pytest.approx(2 / 5)
    # two relevant among four tied items: P(first at 1) = 1/2, at 2: 1/3, at 3: 1/6
    # E[1/J] = 1/2 + 1/6 + 1/18 = 13/18
    s = ranking_stats(np.zeros((1, 1), np.uint8), [3], db[:4], [3, 0, 0, 3], backend="numpy")
    assert s.mean_reciprocal_rank_tie_aware() == pytest.approx(13 / 18)


def test_query_without_relevant_items_counts_as_zero():
    db = _codes(0, 1, 3)
    s = ranking_stats(_codes(0, 0), [5, 9], db, [5, 5, 1], backend="numpy")
    assert s.ap[1] == 0.0 and s.first_rank[1] == 0
    # query 0: ranks 1, 2 relevant -> AP 1; mean over both queries = 1/2
    assert s.mean_average_precision() == pytest.approx(0.5)
    assert s.mean_average_precision_tie_aware() == pytest.approx(0.5)
    # recall@1: query 0 finds 1 of its 2 relevant items, query 1 has none -> (1/2 + 0) / 2
    assert s.recall_at(1) == pytest.approx(0.25)
    assert s.precision_at(1) == pytest.approx(0.5)


def test_harmonic_numbers():
    np.testing.assert_allclose(harmonic_numbers(4), [0, 1, 1.5, 11 / 6, 25 / 12])


# ---------------------------------------------------------------- independent references
def _expected_ap_by_enumeration(dist: np.ndarray, rel: np.ndarray) -> float:
    """Mean eq. 10 AP over every order of the items within each distance group (brute force)."""
    groups = [np.flatnonzero(dist == d) for d in np.unique(dist)]
    perms = [list(itertools.permutations(g)) for g in groups]
    total, count = 0.0, 0
    for choice in itertools.product(*perms):
        order = np.concatenate([np.asarray(c, dtype=np.int64) for c in choice])
        r = rel[order]
        hits = np.cumsum(r)
        ranks = np.flatnonzero(r) + 1
        total += float(np.sum(hits[ranks - 1] / ranks) / max(1, r.sum()))
        count += 1
    return total / count


def test_tie_aware_ap_matches_enumeration_of_orders():
    rng = np.random.default_rng(11)
    for _ in range(6):
        n = 7
        db = rng.integers(0, 4, (n, 1), dtype=np.uint8)  # 2-bit-ish codes: heavy ties
        q = rng.integers(0, 4, (1, 1), dtype=np.uint8)
        labels = rng.integers(0, 2, n)
        if labels.sum() == 0:
            labels[0] = 1
        s = ranking_stats(q, [1], db, labels, backend="numpy")
        dist = hamming_distances(q, db)[0]
        expected = _expected_ap_by_enumeration(dist, labels == 1)
        assert s.average_precisions_tie_aware()[0] == pytest.approx(expected, rel=1e-12)


def test_tie_aware_hits_and_mrr_match_enumeration_of_orders():
    rng = np.random.default_rng(12)
    for _ in range(6):
        n = 7
        db = rng.integers(0, 4, (n, 1), dtype=np.uint8)
        q = rng.integers(0, 4, (1, 1), dtype=np.uint8)
        labels = rng.integers(0, 2, n)
        labels[rng.integers(0, n)] = 1
        s = ranking_stats(q, [1], db, labels, ks=(1, 3, 5), backend="numpy")
        dist = hamming_distances(q, db)[0]
        rel = labels == 1
        groups = [np.flatnonzero(dist == d) for d in np.unique(dist)]
        hits = {1: [], 3: [], 5: []}
        rr = []
        for choice in itertools.product(*[list(itertools.permutations(g)) for g in groups]):
            r = rel[np.concatenate([np.asarray(c, dtype=np.int64) for c in choice])]
            for k in hits:
                hits[k].append(r[:k].sum())
            rr.append(1.0 / (np.argmax(r) + 1))
        for k in hits:
            assert s.precision_at_tie_aware(k) == pytest.approx(np.mean(hits[k]) / k, rel=1e-12)
            assert s.recall_at_tie_aware(k) == pytest.approx(np.mean(hits[k]) / rel.sum(), rel=1e-12)
        assert s.mean_reciprocal_rank_tie_aware() == pytest.approx(np.mean(rr), rel=1e-12)


def test_ap_matches_scikit_learn_on_the_engines_ranking():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    q = rng.integers(0, 256, (20, 2), dtype=np.uint8)
    db = rng.integers(0, 256, (150, 2), dtype=np.uint8)
    ql, dl = rng.integers(0, 3, 20), rng.integers(0, 3, 150)
    s = ranking_stats(q, ql, db, dl, ks=(10,), backend="numpy")
    from hashsearch.functional import knn_search

    _, pos = knn_search(db, q, db.shape[0], backend="numpy")
    for i in range(q.shape[0]):
        # strictly decreasing scores along the engine's ranking: no ties for scikit-learn
        score = np.empty(db.shape[0])
        score[pos[i]] = -np.arange(db.shape[0], dtype=np.float64)
        expected = sklearn_metrics.average_precision_score(dl == ql[i], score)
        assert s.ap[i] == pytest.approx(expected, rel=1e-12)
        # precision@10 as scikit-learn's top-k precision of the same ranking
        assert s.hits_at_k[i, 0] / 10 == pytest.approx(np.mean((dl == ql[i])[pos[i, :10]]))


def test_feature_ranking_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(8)
    qf, df = rng.standard_normal((12, 6)), rng.standard_normal((90, 6))
    ql, dl = rng.integers(0, 3, 12), rng.integers(0, 3, 90)
    s = feature_ranking_stats(qf, ql, df, dl, ks=(5,))
    assert s.nbits is None and s.hist_total is None
    cos = (qf / np.linalg.norm(qf, axis=1, keepdims=True)) @ (df / np.linalg.norm(df, axis=1, keepdims=True)).T
    for i in range(12):
        assert s.ap[i] == pytest.approx(sklearn_metrics.average_precision_score(dl == ql[i], cos[i]), rel=1e-5)
    with pytest.raises(ValueError, match="only for Hamming rankings"):
        s.radius_curves()


def test_radius_counts_match_the_engines_range_search():
    rng = np.random.default_rng(2)
    q = rng.integers(0, 256, (15, 2), dtype=np.uint8)
    db = rng.integers(0, 256, (200, 2), dtype=np.uint8)
    ql, dl = rng.integers(0, 4, 15), rng.integers(0, 4, 200)
    s = ranking_stats(q, ql, db, dl)
    curves = s.radius_curves()
    for r in (0, 3, 6, 9, 16):
        lims, _, ids = range_search(db, q, r)
        prec, rec = [], []
        for i in range(15):
            found = ids[lims[i]:lims[i + 1]]
            good = int(np.sum(dl[found] == ql[i]))
            prec.append(good / found.size if found.size else 0.0)
            nrel = int(np.sum(dl == ql[i]))
            rec.append(good / nrel if nrel else 0.0)
        assert curves["precision"][r] == pytest.approx(np.mean(prec))
        assert curves["recall"][r] == pytest.approx(np.mean(rec))


def test_every_backend_gives_the_same_statistics():
    # (hashsearch.training.metrics is a re-export of these functions now: comparing with
    # it would compare the metric with itself.)
    from hashsearch.backends import available_backends

    rng = np.random.default_rng(4)
    q = rng.integers(0, 256, (30, 4), dtype=np.uint8)
    db = rng.integers(0, 256, (400, 4), dtype=np.uint8)
    ql, dl = rng.integers(0, 5, 30), rng.integers(0, 5, 400)
    reference = ranking_stats(q, ql, db, dl, backend="numpy")
    for name in available_backends():
        got = ranking_stats(q, ql, db, dl, backend=name, num_threads=2)
        np.testing.assert_array_equal(got.ap, reference.ap)
        np.testing.assert_array_equal(got.hist_total, reference.hist_total)


def test_blocks_do_not_change_the_statistics():
    rng = np.random.default_rng(9)
    q = rng.integers(0, 256, (37, 2), dtype=np.uint8)
    db = rng.integers(0, 256, (120, 2), dtype=np.uint8)
    ql, dl = rng.integers(0, 3, 37), rng.integers(0, 3, 120)
    one = ranking_stats(q, ql, db, dl)
    many = ranking_stats(q, ql, db, dl, block_bytes=1)  # one query per block
    for name in ("ap", "hits_at_k", "ap_at_k", "hits_at_rank", "first_rank", "hist_total", "hist_relevant"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name), err_msg=name)


def test_rank_curve_ends_at_full_recall():
    rng = np.random.default_rng(1)
    q = rng.integers(0, 256, (10, 1), dtype=np.uint8)
    db = rng.integers(0, 256, (50, 1), dtype=np.uint8)
    s = ranking_stats(q, np.zeros(10, int), db, np.r_[np.zeros(25, int), np.ones(25, int)], rank_points=8)
    c = s.rank_curves()
    assert c["rank"][0] == 1 and c["rank"][-1] == 50
    assert c["recall"][-1] == pytest.approx(1.0)
    assert c["precision"][-1] == pytest.approx(0.5)
    assert np.all(np.diff(c["recall"]) >= 0)


# ---------------------------------------------------------------- bounds
def test_perfect_codes_score_one_and_random_codes_the_class_prior():
    rng = np.random.default_rng(0)
    classes = 4
    centres = np.array([[0x00, 0x00], [0xFF, 0x00], [0x00, 0xFF], [0xFF, 0xFF]], dtype=np.uint8)
    db_labels = np.repeat(np.arange(classes), 500)
    q_labels = rng.integers(0, classes, 100)
    s = ranking_stats(centres[q_labels], q_labels, centres[db_labels], db_labels)
    assert s.mean_average_precision() == 1.0
    assert s.mean_average_precision_tie_aware() == pytest.approx(1.0)
    assert s.precision_at(100) == 1.0 and s.radius_curves()["precision"][2] == 1.0
    # random 16-bit codes: MAP of a random ranking is about the prior 1/4
    # (plus ~ H(n_rel)/n_rel-ish small bias: < 0.02 at 500 relevant items)
    rand = ranking_stats(rng.integers(0, 256, (100, 2), dtype=np.uint8), q_labels,
                         rng.integers(0, 256, (2000, 2), dtype=np.uint8), db_labels)
    assert rand.mean_average_precision() == pytest.approx(0.25, abs=0.02)
    assert rand.mean_average_precision_tie_aware() == pytest.approx(0.25, abs=0.02)


def test_mean_average_precision_doctest_value():
    codes = _codes(0b00000000, 0b00000011, 0b11111111)
    assert mean_average_precision(codes[:1], [0], codes, [0, 1, 0], backend="numpy") == pytest.approx(5 / 6)
    # MAP@top_k = 2: only rank 1 relevant in the top 2 -> 1
    assert mean_average_precision(codes[:1], [0], codes, [0, 1, 0], top_k=2, backend="numpy") == 1.0
    assert math.isfinite(mean_average_precision(codes[:0], np.zeros(0, int), codes, [0, 1, 0]))


# ---------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors():
    db = _codes(0, 1, 2)
    with pytest.raises(TypeError):
        ranking_stats(np.zeros((1, 1), np.float32), [0], db, [0, 1, 2])
    with pytest.raises(TypeError, match="integer labels"):
        ranking_stats(_codes(0), [0.5], db, [0, 1, 2])
    with pytest.raises(ValueError, match=r"db_keys must have shape \(3,\)"):
        ranking_stats(_codes(0), [0], db, [0, 1])
    with pytest.raises(ValueError, match="empty"):
        ranking_stats(_codes(0), [0], np.zeros((0, 1), np.uint8), np.zeros(0, int))
    with pytest.raises(ValueError):
        ranking_stats(np.zeros((1, 2), np.uint8), [0], db, [0, 1, 2])
    with pytest.raises(ValueError):
        ranking_stats(_codes(0), [0], db, [0, 1, 2], ks=(0,))
    with pytest.raises(ValueError, match="same l"):
        feature_ranking_stats(np.zeros((1, 3)), [0], np.zeros((3, 4)), [0, 1, 2])
