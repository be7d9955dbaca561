"""Seeded fake dual-source data: PAN and MS patches of the same synthetic "ground".

For tests, examples and the encoding / training benchmarks. Every class has its
own texture (orientation and spatial frequency of a grating, plus a second
finer grating) and its own spectral signature (per-band gains), so a network can
learn the classes from either sensor; every sample draws its own phase,
orientation and frequency jitter, contrast, brightness and noise.

The ground of a sample is rendered per MS band at PAN resolution; the MS patch
is its block mean (``pan_size / ms_size`` must be an integer ratio), the PAN
patch the band average at full resolution (the panchromatic response), plus
independent sensor noise. Values are float32 around 0..1.

Items follow the training contract: ``{"pan": float32 tensor (Cp, Hp, Wp),
"ms": float32 tensor (Cm, Hm, Wm), "label": int, "index": int}``.

``task="class"`` (default) labels every pair with its class (class retrieval, as
DSRSID); ``task="instance"`` labels pair i with i (a pair id, as a tiled scene
without labels: instance matching), the classes still shaping the ground. The
dataset's ``task`` attribute says which, as a stored dataset's metadata does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from hashsearch._validate import check_int

__all__ = ["FakeDualSource", "InMemoryDualSource", "fake_dual_source"]


class FakeDualSource(Dataset):
    """A map-style dataset of ``n`` seeded fake dual samples, generated on access.

    Args:
        n: number of samples V.
        num_classes: number of classes; labels are balanced (``i % num_classes``,
            then shuffled with the seed).
        pan_size: PAN patch side (DSRSID: 256).
        ms_size: MS patch side (DSRSID: 64); must divide ``pan_size``.
        pan_bands: PAN channels (1 for a panchromatic sensor).
        ms_bands: MS channels (DSRSID: 4).
        seed: seed of the class textures and of every sample.
        noise: std of the additive sensor noise.
        difficulty: 0..1; scales the per-sample jitter (orientation, frequency,
            contrast) relative to the gap between classes. 0.5 keeps classes
            separable but not trivially so.
        task: "class" (label = class) or "instance" (label = pair id i; see the
            module docstring).

    Item i is the same for the same arguments on every machine (NumPy PCG64).
    """

    def __init__(
        self,
        n: int = 256,
        *,
        num_classes: int = 8,
        pan_size: int = 256,
        ms_size: int = 64,
        pan_bands: int = 1,
        ms_bands: int = 4,
        seed: int = 0,
        noise: float = 0.05,
        difficulty: float = 0.5,
        task: str = "class",
    ) -> None:
        for name, value in (("n", n), ("num_classes", num_classes), ("pan_size", pan_size), ("ms_size", ms_size),
                            ("pan_bands", pan_bands), ("ms_bands", ms_bands)):
            check_int(value, name)
        if pan_size % ms_size:
            raise ValueError(f"pan_size ({pan_size}) must be a multiple of ms_size ({ms_size})")
        if noise < 0 or not 0 <= difficulty <= 1:
            raise ValueError(f"noise must be >= 0 and difficulty in [0, 1], got {noise}, {difficulty}")
        if task not in ("class", "instance"):
            raise ValueError(f"task must be 'class' or 'instance', got {task!r}")
        self.n = n
        self.num_classes = num_classes
        self.pan_size, self.ms_size = pan_size, ms_size
        self.pan_bands, self.ms_bands = pan_bands, ms_bands
        self.seed = seed
        self.noise = float(noise)
        self.difficulty = float(difficulty)
        rng = np.random.default_rng([seed, 0x5EED])
        self.task = task
        #: int64 (n,) the class of every pair (the ground it shows).
        self.class_of = rng.permutation(np.arange(n, dtype=np.int64) % num_classes)
        self.labels = self.class_of if task == "class" else np.arange(n, dtype=np.int64)
        k = num_classes
        # Class parameters: orientations spread over [0, π), two frequency levels (cycles per
        # patch, low enough to survive the MS block mean), spectral gains per band.
        self._theta = (np.arange(k) * np.pi / k + rng.uniform(0, np.pi / (4 * k))).astype(np.float64)
        nyquist_ms = ms_size / 2.0
        low, high = max(1.0, 0.15 * nyquist_ms), max(1.5, 0.45 * nyquist_ms)
        self._freq = np.where(np.arange(k) % 2 == 0, low, high) * rng.uniform(0.9, 1.1, size=k)
        self._theta2 = rng.uniform(0, np.pi, size=k)
        self._freq2 = rng.uniform(1.0, max(1.5, 0.3 * nyquist_ms), size=k)
        self._gain = rng.uniform(0.25, 1.0, size=(k, ms_bands))
        self._pan_gain = rng.uniform(0.8, 1.2, size=pan_bands)
        grid = (np.arange(pan_size, dtype=np.float64) + 0.5) / pan_size
        self._yy, self._xx = np.meshgrid(grid, grid, indexing="ij")

    def __len__(self) -> int:
        return self.n

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The numpy arrays of item ``i``: (pan float32 (Cp, Hp, Wp), ms float32 (Cm, Hm, Wm), label)."""
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} samples")
        i = int(i) % self.n
        c = int(self.class_of[i])
        rng = np.random.default_rng([self.seed, 1, i])
        d = self.difficulty
        theta = self._theta[c] + rng.normal(0, d * np.pi / (3 * self.num_classes))
        freq = self._freq[c] * (1 + rng.normal(0, 0.1 * d))
        phase, phase2 = rng.uniform(0, 2 * np.pi, size=2)
        contrast = 0.5 * (1 + rng.uniform(-0.4, 0.4) * d)
        u = self._xx * np.cos(theta) + self._yy * np.sin(theta)
        u2 = self._xx * np.cos(self._theta2[c]) + self._yy * np.sin(self._theta2[c])
        texture = (contrast * np.sin(2 * np.pi * freq * u + phase)
                   + 0.25 * np.sin(2 * np.pi * self._freq2[c] * u2 + phase2))
        brightness = 0.5 + rng.uniform(-0.1, 0.1) * d
        gains = self._gain[c] * (1 + rng.normal(0, 0.1 * d, size=self.ms_bands))
        ground = brightness * gains[:, None, None] * (1.0 + 0.8 * texture[None])  # (Cm, Hp, Wp)
        r = self.pan_size // self.ms_size
        ms = ground.reshape(self.ms_bands, self.ms_size, r, self.ms_size, r).mean(axis=(2, 4))
        pan = ground.mean(axis=0)[None] * self._pan_gain[:, None, None]
        pan = pan + rng.normal(0, self.noise, size=pan.shape)
        ms = ms + rng.normal(0, self.noise, size=ms.shape)
        return pan.astype(np.float32), ms.astype(np.float32), int(self.labels[i])

    def __getitem__(self, i: int) -> dict[str, Any]:
        pan, ms, label = self.sample(int(i))
        return {"pan": torch.from_numpy(pan), "ms": torch.from_numpy(ms), "label": label, "index": int(i) % self.n}

    def materialize(self) -> InMemoryDualSource:
        """All samples generated once into memory (fast access for training and benchmarks)."""
        pan = np.empty((self.n, self.pan_bands, self.pan_size, self.pan_size), np.float32)
        ms = np.empty((self.n, self.ms_bands, self.ms_size, self.ms_size), np.float32)
        for i in range(self.n):
            pan[i], ms[i], _ = self.sample(i)
        return InMemoryDualSource(pan, ms, self.labels, task=self.task)


class InMemoryDualSource(Dataset):
    """Dual samples held in memory as tensors (e.g. from :meth:`FakeDualSource.materialize`).

    Args:
        pan: float (V, Cp, Hp, Wp) array or tensor.
        ms: float (V, Cm, Hm, Wm).
        labels: int (V,).
        task: "class" (labels are classes) or "instance" (labels are pair ids).
    """

    def __init__(self, pan: Any, ms: Any, labels: Sequence[int] | np.ndarray | torch.Tensor, *,
                 task: str = "class") -> None:
        if task not in ("class", "instance"):
            raise ValueError(f"task must be 'class' or 'instance', got {task!r}")
        self.task = task
        self.pan = torch.as_tensor(pan)
        self.ms = torch.as_tensor(ms)
        self.labels = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64).reshape(-1)
        n = self.labels.size
        if self.pan.dim() != 4 or self.ms.dim() != 4 or self.pan.shape[0] != n or self.ms.shape[0] != n:
            raise ValueError(
                f"pan and ms must be (V, C, H, W) with V = len(labels) = {n}, got {tuple(self.pan.shape)} "
                f"and {tuple(self.ms.shape)}"
            )

    def __len__(self) -> int:
        return int(self.labels.size)

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        return {"pan": self.pan[i], "ms": self.ms[i], "label": int(self.labels[i]), "index": i}


def fake_dual_source(n: int = 256, *, materialize: bool = True, **kwargs: Any) -> Dataset:
    """A :class:`FakeDualSource` (``materialize=True``: generated once into memory)."""
    ds = FakeDualSource(n, **kwargs)
    return ds.materialize() if materialize else ds
