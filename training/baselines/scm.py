"""SCM-Seq: semantic correlation maximisation, sequential (Zhang & Li, AAAI 2014).

The supervised linear baseline of Table VIII. With label vectors l_i (one-hot
here, row-normalised) the scaled semantic similarity is S̃ = 2 L̃ L̃ᵀ − 1
(+1 same class, −1 otherwise). SCM wants the code inner products to match
l·S̃: min ‖sign(X W_x) sign(Y W_y)ᵀ − l S̃‖². The sequential variant learns one
bit t at a time on the residual C_t (C_1 = l S̃, C_{t+1} = C_t − b_x^t b_y^tᵀ),
each bit by the relaxed problem

    max  w_xᵀ Xᵀ C_t Y w_y   s.t.  w_xᵀ (XᵀX) w_x = w_yᵀ (YᵀY) w_y = 1,

solved, with Kx = (XᵀX)^(-1/2) and Ky = (YᵀY)^(-1/2) (ridge-regularised), by the
top singular pair (u, v) of Kx Xᵀ C_t Y Ky: w_x = Kx u, w_y = Ky v.

S̃ is never formed (n × n): for centred X, Y, Xᵀ S̃ Y = 2 (XᵀL̃)(L̃ᵀY)
(the −11ᵀ part vanishes) and each residual update subtracts (Xᵀ b_x)(b_yᵀ Y),
so every step costs O(n (dx + dy)) after the d × d algebra.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hashsearch.packing import sign_codes

from .linear import LinearCrossSourceHash, check_pair, inverse_sqrt

__all__ = ["SCMSeq"]

#: Largest min(rows, columns) whose leading singular pair comes from the Gram matrix
#: (one eigh of at most GRAM_LIMIT²; about as fast as ARPACK there, and exact when the
#: top singular value repeats).
GRAM_LIMIT = 1024


class SCMSeq(LinearCrossSourceHash):
    """Supervised SCM, sequential version.

    Args:
        bits: code length l.
        reg: ridge on the covariances, as a fraction of their mean eigenvalue.
    """

    name = "scm-seq"

    def __init__(self, bits: int, *, reg: float = 1e-3) -> None:
        super().__init__(bits)
        self.reg = reg

    @staticmethod
    def check_labels(labels: Any) -> None:
        """Raise ValueError unless ``labels`` (n,) are class labels SCM can learn from (some shared).

        With one label per pair (instance data) SCM's target similarity asks every two
        pairs for opposite codes, and the codes collapse (two distinct codes for 120 pairs).
        """
        lab = np.asarray(labels).reshape(-1)
        if lab.size > 1 and np.unique(lab).size == lab.size:
            raise ValueError(
                f"SCM learns from class labels, and all {lab.size} labels differ (one label per pair: instance "
                "data); its target similarity would ask every two pairs for opposite codes and the codes collapse. "
                "Use CCA-ITQ (unsupervised) or DCMH / SIDHCNN for instance data"
            )

    def fit(self, x: Any, y: Any, labels: Any = None) -> SCMSeq:
        """Learn from paired descriptors x (n, dx) (PAN), y (n, dy) (MS) and their class labels (n,).

        Raises:
            ValueError: no labels, or one label per sample (instance data: see the message).
        """
        x, y, lab = check_pair(x, y, labels)
        if lab is None:
            raise ValueError("SCM is supervised: labels are required")
        n = x.shape[0]
        self.mean_x, self.mean_y = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - self.mean_x, y - self.mean_y
        self.check_labels(lab)
        classes, codes = np.unique(lab, return_inverse=True)
        onehot = np.zeros((n, classes.size))
        onehot[np.arange(n), codes] = 1.0  # one label per sample: already unit norm
        kx = inverse_sqrt(xc.T @ xc, self.reg)
        ky = inverse_sqrt(yc.T @ yc, self.reg)
        m = self.bits * 2.0 * (xc.T @ onehot) @ (onehot.T @ yc)  # Xᵀ (l S̃) Y, dx × dy
        wx = np.empty((x.shape[1], self.bits))
        wy = np.empty((y.shape[1], self.bits))
        a = kx @ m @ ky
        for t in range(self.bits):
            u, v = _top_singular_pair(a)
            wx[:, t] = kx @ u
            wy[:, t] = ky @ v
            bx = sign_codes(xc @ wx[:, t])  # the bit t of every sample, as pack() will write it
            by = sign_codes(yc @ wy[:, t])
            a -= np.outer(kx @ (xc.T @ bx), ky @ (yc.T @ by))  # residual C_{t+1} = C_t − b_x b_yᵀ
        self.w_x, self.w_y = wx, wy
        return self


def _top_singular_pair(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leading left/right singular vectors of ``a`` (deterministic sign: largest |u| entry positive).

    Up to :data:`GRAM_LIMIT` rows or columns (GIST's 512 / 2,048 dimensions), from the
    smaller Gram matrix (:func:`_top_pair_from_gram`); larger ones by ARPACK, falling
    back to the Gram matrix when ARPACK does not converge (a repeated top singular
    value, as one label per pair gives).
    """
    if min(a.shape) <= GRAM_LIMIT:
        u0, v0 = _top_pair_from_gram(a)
    else:
        from scipy.sparse.linalg import ArpackNoConvergence, svds

        start = np.ones(min(a.shape)) / np.sqrt(min(a.shape))  # fixed start vector: reproducible
        try:
            u, _, vt = svds(a, k=1, v0=start, tol=1e-10, solver="arpack")
            u0, v0 = u[:, 0], vt[0]
        except ArpackNoConvergence:
            u0, v0 = _top_pair_from_gram(a)
    sign = 1.0 if u0[np.argmax(np.abs(u0))] >= 0 else -1.0
    return sign * u0, sign * v0


def _top_pair_from_gram(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leading singular pair of ``a`` from the eigenvectors of its smaller Gram matrix (a aᵀ or aᵀ a).

    For a top singular value that ARPACK cannot isolate (repeated or nearly so: any
    vector of that subspace is a solution); one eigh of a min(shape)² matrix, far cheaper
    than a full SVD.
    """
    wide = a.shape[0] <= a.shape[1]
    small = a if wide else a.T
    _, vecs = np.linalg.eigh(small @ small.T)
    top = vecs[:, -1]
    other = small.T @ top
    norm = float(np.linalg.norm(other))
    other = other / norm if norm > 0 else other
    return (top, other) if wide else (other, top)
