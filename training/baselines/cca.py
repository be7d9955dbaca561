"""CCA + ITQ: the unsupervised linear baseline of Table VIII.

CCA (Hotelling 1936; for cross-modal hashing, Gong et al., TPAMI 2013) finds
directions W_x, W_y maximising the correlation of the paired projections
X W_x and Y W_y (X: PAN descriptors, Y: MS descriptors, both centred). With
Kx = C_xx^(-1/2), Ky = C_yy^(-1/2) (ridge-regularised), the top l left/right
singular vectors U, V of Kx C_xy Ky give W_x = Kx U, W_y = Ky V.

ITQ (Gong & Lazebnik, CVPR 2011) then learns one orthogonal rotation R (l × l)
of the stacked projections Z = [X W_x; Y W_y] that minimises the quantisation
loss ‖sign(Z R) − Z R‖²_F, alternating B = sign(Z R) (:func:`hashsearch.packing.sign_codes`,
>= 0 -> +1, the rule of :func:`hashsearch.pack`) and R = W Uᵀ from the SVD
Bᵀ Z = U Σ Wᵀ (orthogonal Procrustes). Labels are not used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hashsearch.packing import sign_codes

from .linear import LinearCrossSourceHash, check_pair, inverse_sqrt

__all__ = ["CCAITQ", "itq_rotation"]


def itq_rotation(z: np.ndarray, iterations: int = 50, seed: int = 0) -> np.ndarray:
    """ITQ's orthogonal rotation for centred projections z (n, l); returns R (l, l)."""
    bits = z.shape[1]
    rng = np.random.default_rng(seed)
    r, _ = np.linalg.qr(rng.standard_normal((bits, bits)))
    for _ in range(iterations):
        b = sign_codes(z @ r)
        u, _, wt = np.linalg.svd(b.T @ z)
        r = (u @ wt).T
    return r


class CCAITQ(LinearCrossSourceHash):
    """CCA projections + a shared ITQ rotation (unsupervised).

    Args:
        bits: code length l (<= min(dx, dy)).
        reg: ridge on the covariances, as a fraction of their mean eigenvalue.
        iterations: ITQ iterations.
        seed: seed of ITQ's initial rotation.
    """

    name = "cca-itq"

    def __init__(self, bits: int, *, reg: float = 1e-3, iterations: int = 50, seed: int = 0) -> None:
        super().__init__(bits)
        self.reg, self.iterations, self.seed = reg, iterations, seed

    def fit(self, x: Any, y: Any, labels: Any = None) -> CCAITQ:
        """Learn from paired descriptors x (n, dx) (PAN) and y (n, dy) (MS); labels are ignored."""
        x, y, _ = check_pair(x, y)
        if self.bits > min(x.shape[1], y.shape[1]):
            raise ValueError(f"bits ({self.bits}) cannot exceed the descriptor sizes {x.shape[1]}, {y.shape[1]}")
        n = x.shape[0]
        self.mean_x, self.mean_y = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - self.mean_x, y - self.mean_y
        kx = inverse_sqrt(xc.T @ xc / n, self.reg)
        ky = inverse_sqrt(yc.T @ yc / n, self.reg)
        u, _, vt = np.linalg.svd(kx @ (xc.T @ yc / n) @ ky, full_matrices=False)
        wx, wy = kx @ u[:, : self.bits], ky @ vt.T[:, : self.bits]
        r = itq_rotation(np.vstack([xc @ wx, yc @ wy]), self.iterations, self.seed)
        self.w_x, self.w_y = wx @ r, wy @ r
        return self
