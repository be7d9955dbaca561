"""Seeded train/test splits shared by every dataset in :mod:`hashsearch.data`.

Two rules, both deterministic for a given seed and independent of the order in
which classes or groups are listed:

- :func:`split_per_class` draws the test samples *within each class* (the
  stratified split of the SIDHCNN paper: 625 test pairs per DSRSID class). Every
  class has its own random stream, seeded by ``(seed, class value)``, so adding a
  class to a dataset does not change the draw of the others.
- :func:`split_by_group` puts whole groups (e.g. scenes) on one side, so that no
  ground seen in training appears among the test queries.

Both return sorted ``int64`` index arrays into the full dataset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["split_by_group", "split_per_class"]


def _as_int_labels(labels: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer) and (
            not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr))):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype} with non-integral values")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative integers, got minimum {arr.min()}")
    return arr


def split_per_class(
    labels: Sequence[int] | np.ndarray,
    *,
    test_per_class: int | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into train and test, drawing the test part within each class.

    Give exactly one of ``test_per_class`` (the same count from every class) or
    ``test_fraction`` (``round(fraction * class size)`` from each class, at least one
    when the class has two or more samples, never the whole class).

    Args:
        labels: int array (N,) of non-negative class labels.
        test_per_class: number of test samples drawn from each class; every class
            must have more samples than this so that training keeps at least one.
        test_fraction: fraction in [0, 1) of each class drawn for test.
        seed: seed of the draw; class ``c`` uses ``numpy.random.default_rng([seed, c])``.

    Returns:
        ``(train, test)``: sorted int64 index arrays, disjoint, together ``0..N-1``.

    Raises:
        ValueError: both or neither of the two sizes given, a size out of range, or a
            class too small for ``test_per_class``.
    """
    lab = _as_int_labels(labels, "labels")
    if (test_per_class is None) == (test_fraction is None):
        raise ValueError("give exactly one of test_per_class or test_fraction")
    if test_per_class is not None and (int(test_per_class) != test_per_class or test_per_class < 0):
        raise ValueError(f"test_per_class must be a non-negative integer, got {test_per_class!r}")
    if test_fraction is not None and not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    test_parts: list[np.ndarray] = []
    for value in np.unique(lab):
        members = np.flatnonzero(lab == value)
        if test_per_class is not None:
            n_test = int(test_per_class)
            if n_test >= members.size:
                raise ValueError(
                    f"class {int(value)} has {members.size} samples, too few to draw "
                    f"{n_test} test samples and keep at least one for training"
                )
        else:
            n_test = round(float(test_fraction) * members.size)  # type: ignore[arg-type]
            if members.size >= 2 and test_fraction:
                n_test = min(max(n_test, 1), members.size - 1)
        rng = np.random.default_rng([int(seed), int(value)])
        test_parts.append(rng.choice(members, size=n_test, replace=False))
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.empty(0, np.int64)
    mask = np.ones(lab.size, dtype=bool)
    mask[test] = False
    return np.flatnonzero(mask).astype(np.int64), test.astype(np.int64)


def split_by_group(
    groups: Sequence[int] | np.ndarray,
    *,
    test_fraction: float,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices so that each group (scene) is wholly in train or in test.

    Args:
        groups: int array (N,) of non-negative group ids (e.g. the scene of each patch).
        test_fraction: fraction in (0, 1) of the *groups* put in test
            (``round(fraction * n_groups)``, at least one, never all).
        seed: seed of the draw (``numpy.random.default_rng(seed)`` over the sorted group ids).

    Returns:
        ``(train, test)``: sorted int64 index arrays into the samples.

    Raises:
        ValueError: fewer than two groups, or a fraction outside (0, 1).
    """
    grp = _as_int_labels(groups, "groups")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    ids = np.unique(grp)
    if ids.size < 2:
        raise ValueError(f"a group split needs at least two groups, got {ids.size}")
    n_test = min(max(round(float(test_fraction) * ids.size), 1), ids.size - 1)
    test_groups = np.random.default_rng(int(seed)).choice(ids, size=n_test, replace=False)
    in_test = np.isin(grp, test_groups)
    return np.flatnonzero(~in_test).astype(np.int64), np.flatnonzero(in_test).astype(np.int64)
