"""Seeded synthetic codes: reproducible, the right shapes, the promised structure."""

from __future__ import annotations

import numpy as np
import pytest

from hashsearch import hamming_distances
from hashsearch.synthetic import clustered_codes, random_codes, tied_codes


def test_random_codes_are_reproducible_and_chunking_does_not_change_them():
    a = random_codes(1000, 72, seed=3)
    assert a.dtype == np.uint8 and a.shape == (1000, 9)
    np.testing.assert_array_equal(a, random_codes(1000, 72, seed=3))
    np.testing.assert_array_equal(a[:300], random_codes(300, 72, seed=3))  # a prefix of a longer draw
    assert not np.array_equal(a, random_codes(1000, 72, seed=4))
    np.testing.assert_array_equal(random_codes(1000, 72, seed=3, chunk=128), a)
    bits = np.unpackbits(a).mean()
    assert 0.48 < bits < 0.52  # uniform bits


def test_clustered_codes_are_nearer_within_a_cluster():
    codes, labels = clustered_codes(600, 64, n_clusters=4, flip_prob=0.05, seed=1)
    assert codes.shape == (600, 8) and labels.shape == (600,) and set(labels) == {0, 1, 2, 3}
    d = hamming_distances(codes, codes)
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(600, dtype=bool)
    assert d[same & off_diagonal].mean() < 10 < d[~same].mean()  # about 2*64*0.05 vs 32
    again, labels_again = clustered_codes(600, 64, n_clusters=4, flip_prob=0.05, seed=1)
    np.testing.assert_array_equal(again, codes)
    np.testing.assert_array_equal(labels_again, labels)


def test_tied_codes_repeat_few_distinct_codes():
    codes = tied_codes(2000, 16, n_unique=7, seed=2)
    assert codes.shape == (2000, 2)
    assert len(np.unique(codes, axis=0)) <= 7


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: random_codes(-1, 64), "n must be >= 0"),
        (lambda: random_codes(10, 60), "multiple of 8"),
        (lambda: clustered_codes(10, 64, 0), "n_clusters"),
        (lambda: clustered_codes(10, 64, 2, flip_prob=1.5), "flip_prob"),
        (lambda: tied_codes(10, 64, 0), "n_unique"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
