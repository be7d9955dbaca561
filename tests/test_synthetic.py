"""Seeded synthetic codes: reproducible, the right shapes, the promised structure."""

from __future__ import annotations

import numpy as np
import pytest

from hashsearch import hamming_distances
from hashsearch.synthetic import bounded_clusters, clustered_codes, flip_random_bits, random_codes, tied_codes


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


def _distances(a, b):
    return np.unpackbits(a ^ b, axis=1).sum(axis=1)


def test_bounded_clusters_keep_every_code_within_the_radius_of_its_centre():
    codes, labels, centres = bounded_clusters(1000, 64, cluster_size=16, radius=4, seed=3)
    assert codes.shape == (1000, 8) and codes.dtype == np.uint8 and centres.shape == (63, 8)
    # 1000 = 62 * 16 + 8: 62 full clusters and one of 8
    assert sorted(np.bincount(labels)) == [8] + [16] * 62
    d = _distances(codes, centres[labels])
    assert d.max() <= 4 and set(np.unique(d)) == {0, 1, 2, 3, 4}
    # random centres of 64 bits lie far from each other: the clusters do not overlap
    assert _distances(centres[:-1], centres[1:]).min() > 8
    again = bounded_clusters(1000, 64, cluster_size=16, radius=4, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip((codes, labels, centres), again, strict=True))


def test_flip_random_bits_flips_at_most_max_flips_and_leaves_the_input():
    base = random_codes(500, 32, seed=1)
    before = base.copy()
    out = flip_random_bits(base, 2, seed=4)
    np.testing.assert_array_equal(base, before)
    d = _distances(out, base)
    # 0, 1 or 2 flips (a twice-drawn index cancels, so 2 draws may leave 0 flips)
    assert set(np.unique(d)) == {0, 1, 2}
    np.testing.assert_array_equal(flip_random_bits(base, 0, seed=4), base)
    with pytest.raises(TypeError, match="uint8"):
        flip_random_bits(base.astype(np.int16), 2)
