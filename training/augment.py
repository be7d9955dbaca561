"""Paired geometric augmentation: one random flip / 90-degree rotation for both sources.

A PAN patch and its MS patch cover the same ground, so any augmentation must move
both the same way or the pair stops being co-registered. :class:`PairedAugment`
draws one element of the dihedral group of the square (4 rotations x optional
mirror, uniform over the 8 when rotations and both flips are enabled) and applies
it to the spatial axes of both tensors; pixel values are untouched.

The draw depends only on ``(seed, epoch, index)`` (``numpy.random.default_rng``),
so it is the same in any DataLoader worker, in any order, and a run is
reproducible; call :meth:`PairedAugment.set_epoch` each epoch for new draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["PairedAugment", "apply_dihedral"]


def apply_dihedral(x: Tensor, k: int, hflip: bool, vflip: bool) -> Tensor:
    """Rotate ``x`` (..., H, W) by ``k`` quarter turns counter-clockwise, then mirror it.

    Args:
        x: tensor whose last two axes are rows and columns.
        k: quarter turns (``torch.rot90`` over the last two axes).
        hflip: mirror left-right (reverse columns) after the rotation.
        vflip: mirror top-bottom (reverse rows) after the rotation.

    Returns:
        The transformed tensor ((..., W, H) for odd ``k``).
    """
    if k % 4:
        x = torch.rot90(x, k % 4, dims=(-2, -1))
    if hflip:
        x = torch.flip(x, dims=(-1,))
    if vflip:
        x = torch.flip(x, dims=(-2,))
    return x


@dataclass
class PairedAugment:
    """Apply the same random dihedral transform to a PAN and an MS tensor.

    Attributes:
        hflip: allow left-right mirroring.
        vflip: allow top-bottom mirroring.
        rot90: allow quarter-turn rotations (square patches only).
        seed: base seed of the draws.
        epoch: current epoch (part of the seed; see :meth:`set_epoch`).
    """

    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw new transforms for the next epoch."""
        self.epoch = int(epoch)

    def params(self, index: int) -> tuple[int, bool, bool]:
        """The transform of sample ``index`` this epoch: ``(quarter_turns, hflip, vflip)``."""
        rng = np.random.default_rng([int(self.seed), int(self.epoch), int(index)])
        draws = rng.integers(0, 4, size=3)
        k = int(draws[0]) if self.rot90 else 0
        h = bool(draws[1] % 2) if self.hflip else False
        v = bool(draws[2] % 2) if self.vflip else False
        return k, h, v

    def __call__(self, pan: Tensor, ms: Tensor, index: int) -> tuple[Tensor, Tensor]:
        """Transform one pair.

        Args:
            pan: (Cp, Hp, Wp) tensor.
            ms: (Cm, Hm, Wm) tensor.
            index: the sample's dataset index (selects the draw).

        Returns:
            ``(pan, ms)`` transformed identically (contiguous).

        Raises:
            ValueError: quarter turns asked for non-square patches.
        """
        k, h, v = self.params(index)
        if k % 2 and (pan.shape[-1] != pan.shape[-2] or ms.shape[-1] != ms.shape[-2]):
            raise ValueError(
                f"90-degree rotations need square patches, got PAN {tuple(pan.shape)} and MS {tuple(ms.shape)}; "
                "use PairedAugment(rot90=False)"
            )
        return apply_dihedral(pan, k, h, v).contiguous(), apply_dihedral(ms, k, h, v).contiguous()
