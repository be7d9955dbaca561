"""Seeded per-class and per-group splits."""

from __future__ import annotations

import numpy as np
import pytest

from hashsearch.data.splits import split_by_group, split_per_class


def test_per_class_counts_and_partition() -> None:
    labels = np.repeat([0, 3, 5], [10, 20, 7])
    train, test = split_per_class(labels, test_per_class=4, seed=0)
    np.testing.assert_array_equal(np.bincount(labels[test], minlength=6)[[0, 3, 5]], [4, 4, 4])
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    assert train.dtype == test.dtype == np.int64 and np.all(np.diff(test) > 0)


def test_per_class_fraction_rounds_and_keeps_one_for_training() -> None:
    labels = np.repeat([0, 1, 2], [10, 3, 2])
    _, test = split_per_class(labels, test_fraction=0.2, seed=0)
    np.testing.assert_array_equal(np.bincount(labels[test], minlength=3), [2, 1, 1])
    _, test = split_per_class(labels, test_fraction=0.0, seed=0)
    assert test.size == 0


def test_per_class_is_seeded_and_class_streams_are_independent() -> None:
    labels = np.repeat([0, 1], 50)
    a = split_per_class(labels, test_per_class=5, seed=3)[1]
    np.testing.assert_array_equal(a, split_per_class(labels, test_per_class=5, seed=3)[1])
    assert not np.array_equal(a, split_per_class(labels, test_per_class=5, seed=4)[1])
    # Adding a class does not change the draw of the others.
    more = np.concatenate([labels, np.full(30, 7)])
    b = split_per_class(more, test_per_class=5, seed=3)[1]
    np.testing.assert_array_equal(b[b < 100], a)


def test_per_class_errors() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        split_per_class([0, 1], seed=0)
    with pytest.raises(ValueError, match="too few"):
        split_per_class([0, 0, 1], test_per_class=2)
    with pytest.raises(ValueError, match="non-negative"):
        split_per_class([-1, 0], test_fraction=0.5)
    with pytest.raises(ValueError, match="integers"):
        split_per_class([0.5, 1.0], test_fraction=0.5)


def test_by_group_keeps_groups_whole() -> None:
    groups = np.repeat(np.arange(10), 5)
    train, test = split_by_group(groups, test_fraction=0.3, seed=1)
    assert len(set(groups[test])) == 3
    assert not set(groups[test]) & set(groups[train])
    np.testing.assert_array_equal(test, split_by_group(groups, test_fraction=0.3, seed=1)[1])
    with pytest.raises(ValueError, match="two groups"):
        split_by_group([4, 4, 4], test_fraction=0.5)
