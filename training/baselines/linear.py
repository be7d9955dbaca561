"""Shared parts of the linear cross-source hashing baselines (CCA-ITQ, SCM).

Both learn, from paired descriptors X (PAN, n × dx) and Y (MS, n × dy), one
projection per source, W_x (dx × l) and W_y (dy × l); a code is
``sign((x − μ_x) W_x)`` (>= 0 -> bit 1), packed by :func:`hashsearch.pack`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LinearCrossSourceHash", "check_pair", "inverse_sqrt"]


def check_pair(x: Any, y: Any, labels: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate paired descriptors: float64 X (n, dx), Y (n, dy), optional int labels (n,)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"descriptors must be (n, dx) and (n, dy) with the same n, got {x.shape} and {y.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 pairs, got {x.shape[0]}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("descriptors contain NaN or infinite values")
    lab = None
    if labels is not None:
        lab = np.asarray(labels)
        if lab.shape != (x.shape[0],) or lab.dtype.kind not in "iub":
            raise ValueError(f"labels must be {x.shape[0]} integers, got shape {lab.shape} dtype {lab.dtype}")
    return x, y, lab


def inverse_sqrt(cov: np.ndarray, reg: float) -> np.ndarray:
    """(C + reg·tr(C)/d·I)^(-1/2) of a symmetric PSD matrix, by eigendecomposition."""
    d = cov.shape[0]
    c = cov + (reg * np.trace(cov) / d + 1e-12) * np.eye(d)
    w, v = np.linalg.eigh(c)
    return (v / np.sqrt(np.maximum(w, 1e-12))) @ v.T


class LinearCrossSourceHash:
    """Projection-based hashing for two sources: ``fit`` learns, ``encode`` packs codes.

    Attributes (after fit): ``mean_x`` (dx,), ``mean_y`` (dy,), ``w_x`` (dx, l), ``w_y`` (dy, l).
    """

    name = "linear"

    def __init__(self, bits: int) -> None:
        if isinstance(bits, bool) or not isinstance(bits, int) or bits < 8 or bits % 8:
            raise ValueError(f"bits must be a positive multiple of 8, got {bits!r}")
        self.bits = bits
        self.mean_x: np.ndarray | None = None
        self.mean_y: np.ndarray | None = None
        self.w_x: np.ndarray | None = None
        self.w_y: np.ndarray | None = None

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The fitted ``(mean_x, mean_y, w_x, w_y)``; raises RuntimeError before :meth:`fit`."""
        mean_x, mean_y, w_x, w_y = self.mean_x, self.mean_y, self.w_x, self.w_y
        if mean_x is None or mean_y is None or w_x is None or w_y is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        return mean_x, mean_y, w_x, w_y

    def project(self, features: Any, source: str) -> np.ndarray:
        """Real-valued projections (n, l) of one source's descriptors."""
        mean_x, mean_y, w_x, w_y = self._fitted()
        if source not in ("pan", "ms"):
            raise ValueError(f"source must be 'pan' or 'ms', got {source!r}")
        mean, w = (mean_x, w_x) if source == "pan" else (mean_y, w_y)
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != w.shape[0]:
            raise ValueError(f"{source} descriptors must have shape (n, {w.shape[0]}), got {f.shape}")
        return (f - mean) @ w

    def encode(self, features: Any, source: str) -> np.ndarray:
        """Packed codes uint8 (n, bits / 8) of one source's descriptors."""
        from hashsearch.packing import pack

        return pack(self.project(features, source), encoding="sign")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted model to an ``.npz`` file."""
        mean_x, mean_y, w_x, w_y = self._fitted()
        path = Path(path)
        np.savez(path, name=self.name, bits=self.bits, mean_x=mean_x, mean_y=mean_y, w_x=w_x, w_y=w_y)
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LinearCrossSourceHash:
        """Read a model written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            model = cls(int(z["bits"]))
            model.mean_x, model.mean_y, model.w_x, model.w_y = z["mean_x"], z["mean_y"], z["w_x"], z["w_y"]
        return model
