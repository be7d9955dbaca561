"""Paired augmentation: the eight transforms of the square, one draw for both sources, seeded by
(seed, epoch, index)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hashsearch.training.augment import PairedAugment, apply_dihedral

SQ = torch.arange(16.0).reshape(1, 4, 4)


def test_transforms_by_hand():
    x = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])  # (1, 2, 2): rows [0 1], [2 3]
    # One quarter turn counter-clockwise: the right column becomes the top row.
    assert apply_dihedral(x, 1, False, False).tolist() == [[[1.0, 3.0], [0.0, 2.0]]]
    assert apply_dihedral(x, 2, False, False).tolist() == [[[3.0, 2.0], [1.0, 0.0]]]
    assert apply_dihedral(x, 0, True, False).tolist() == [[[1.0, 0.0], [3.0, 2.0]]]  # left-right
    assert apply_dihedral(x, 0, False, True).tolist() == [[[2.0, 3.0], [0.0, 1.0]]]  # top-bottom
    # Rotation first, then the mirror: a quarter turn then left-right mirrors about the anti-diagonal.
    assert apply_dihedral(x, 1, True, False).tolist() == [[[3.0, 1.0], [2.0, 0.0]]]
    assert apply_dihedral(x, 4, False, False).tolist() == x.tolist()  # k counts modulo 4
    # Non-square patches: a quarter turn swaps the sides, mirrors keep them.
    r = torch.arange(12.0).reshape(1, 3, 4)
    assert tuple(apply_dihedral(r, 1, False, False).shape) == (1, 4, 3)
    np.testing.assert_array_equal(apply_dihedral(r, 0, True, True).numpy(), r.numpy()[:, ::-1, ::-1])


def test_the_sixteen_draws_cover_the_eight_elements_twice():
    images: dict[bytes, int] = {}
    for k in range(4):
        for h in (False, True):
            for v in (False, True):
                key = apply_dihedral(SQ, k, h, v).numpy().tobytes()
                images[key] = images.get(key, 0) + 1
    # Both mirrors = a half turn, so (k, h, v) and (k + 2, not h, not v) coincide: 8 elements, 2 draws each.
    assert len(images) == 8 and set(images.values()) == {2}


def test_draws_are_about_uniform_over_the_group():
    aug = PairedAugment(seed=0)
    counts: dict[bytes, int] = {}
    for i in range(800):
        key = apply_dihedral(SQ, *aug.params(i)).numpy().tobytes()
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 8 and min(counts.values()) > 60  # 100 expected each


def test_both_sources_move_the_same_way():
    """MS = 4×4 block mean of PAN before the transform, and still after it (any band count)."""
    rng = np.random.default_rng(0)
    pan = torch.from_numpy(rng.random((1, 16, 16)).astype(np.float32))
    ms = pan.reshape(1, 4, 4, 4, 4).mean(dim=(2, 4)).repeat(8, 1, 1) + torch.arange(8.0)[:, None, None]
    aug = PairedAugment(seed=3)
    seen = set()
    for i in range(40):
        p2, m2 = aug(pan, ms, i)
        assert p2.is_contiguous() and m2.is_contiguous() and m2.shape == ms.shape
        expected = p2.reshape(1, 4, 4, 4, 4).mean(dim=(2, 4))
        for b in range(8):
            torch.testing.assert_close(m2[b], expected[0] + b)
        assert torch.equal(torch.sort(p2.flatten())[0], torch.sort(pan.flatten())[0])  # pixels only move
        seen.add(aug.params(i))
    assert len(seen) >= 6


def test_draws_depend_on_seed_epoch_and_index_only():
    a, b = PairedAugment(seed=7), PairedAugment(seed=7)
    forward = [a.params(i) for i in range(30)]
    backward = [b.params(i) for i in reversed(range(30))][::-1]  # any order, any worker
    assert forward == backward
    assert [PairedAugment(seed=8).params(i) for i in range(30)] != forward
    a.set_epoch(1)
    assert a.epoch == 1 and [a.params(i) for i in range(30)] != forward
    a.set_epoch(0)
    assert [a.params(i) for i in range(30)] == forward


def test_disabled_transforms_are_never_drawn():
    assert all(PairedAugment(rot90=False).params(i)[0] == 0 for i in range(50))
    assert all(not PairedAugment(hflip=False).params(i)[1] for i in range(50))
    assert all(not PairedAugment(vflip=False).params(i)[2] for i in range(50))
    none = PairedAugment(hflip=False, vflip=False, rot90=False)
    pan, ms = torch.rand(1, 8, 8), torch.rand(4, 2, 2)
    p2, m2 = none(pan, ms, 5)
    assert torch.equal(p2, pan) and torch.equal(m2, ms)


def test_quarter_turns_need_square_patches():
    aug = PairedAugment(seed=0)
    odd = next(i for i in range(100) if aug.params(i)[0] % 2)
    with pytest.raises(ValueError, match=r"square.*rot90=False"):
        aug(torch.zeros(1, 8, 4), torch.zeros(4, 2, 1), odd)
    flips = PairedAugment(rot90=False)
    p2, m2 = flips(torch.zeros(1, 8, 4), torch.zeros(4, 2, 1), odd)
    assert tuple(p2.shape) == (1, 8, 4) and tuple(m2.shape) == (4, 2, 1)
