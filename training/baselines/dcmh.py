"""DCMH baseline (Jiang & Li, "Deep Cross-Modal Hashing", CVPR 2017) on the SIDHCNN networks.

The paper compares against DCMH trained with the *same* PAN-DHCNN / MUL-DHCNN
networks (Table VIII). DCMH's objective, in SPEC §2's notation (rows are samples)::

    J = Σ_ij [softplus(Θ_ij) − S_ij Θ_ij]          inter-source likelihood, Θ_ij = ½⟨F^P_i, F^M_j⟩
      + γ_q (‖B − F^P‖²_F + ‖B − F^M‖²_F)          quantisation
      + η   (‖F^P·1‖² + ‖F^M·1‖²)                  bit balance

with B = sign(F^P + F^M): it has no intra-source term (SIDHCNN's IASC). DCMH's
defaults are γ_q = η = 1. It is optimised by the same alternating scheme
(Algorithm 1 is DCMH's), so :class:`~hashsearch.training.trainer.Trainer` runs it:
``TrainConfig(method="dcmh", beta=γ_q, gamma=η)`` or the ``"dcmh"`` preset.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..config import PRESETS, TrainConfig
from ..losses import BQCLoss, FDCLoss, IRSCLoss, LossTerms

__all__ = ["DCMHLoss", "dcmh_config", "train_dcmh"]


class DCMHLoss(nn.Module):
    """DCMH's mini-batch objective, with the interface of :class:`~hashsearch.training.losses.SIDHCNNLoss`.

    Args:
        quantization: γ_q, weight of ‖B − F‖².
        balance: η, weight of ‖F·1‖².
        normalization: "pairs" (divide by batch × V, as DCMH's code does), "per_term"
            (quantisation by batch × l instead) or "none".
    """

    def __init__(self, quantization: float = 1.0, balance: float = 1.0, *, normalization: str = "pairs") -> None:
        super().__init__()
        if normalization not in ("pairs", "per_term", "none"):
            raise ValueError(f"normalization must be 'pairs', 'per_term' or 'none', got {normalization!r}")
        if not (quantization >= 0 and balance >= 0):
            raise ValueError(f"weights must be >= 0, got {quantization!r}, {balance!r}")
        self.quantization, self.balance = float(quantization), float(balance)
        self.normalization = normalization
        self.likelihood = IRSCLoss()
        self.bqc = BQCLoss()
        self.fdc = FDCLoss()

    def forward(self, features: Tensor, labels: Tensor, index: Tensor, own: Tensor, other: Tensor,
                all_labels: Tensor, codes: Tensor) -> LossTerms:
        n, l = features.shape
        v = own.shape[0]
        own = own.detach()
        like = self.likelihood(features, other.detach(), labels, all_labels)
        quant = self.bqc(features, codes.index_select(0, index))
        rest = own.sum(dim=0) - own.index_select(0, index).sum(dim=0)
        bal = self.fdc(features, rest)
        pairs = float(n) * float(v)
        if self.normalization == "pairs":
            total = (like + self.quantization * quant + self.balance * bal) / pairs
        elif self.normalization == "per_term":
            total = (like + self.balance * bal) / pairs + self.quantization * quant / (n * l)
        else:
            total = like + self.quantization * quant + self.balance * bal
        return LossTerms(total=total, irsc=float(like.detach()) / pairs, iasc=0.0,
                         bqc=float(quant.detach()) / (n * l), fdc=float(bal.detach()) / (float(v) * v * l))


def dcmh_config(base: TrainConfig | None = None, **changes: Any) -> TrainConfig:
    """A DCMH training config: ``base`` with method "dcmh", γ_q = β = 1, η = γ = 1 (DCMH's defaults)."""
    base = base or TrainConfig()
    preset = PRESETS["dcmh"]
    return base.replace(method="dcmh", alpha=0.0, beta=preset.beta, gamma=preset.gamma, **changes)


def train_dcmh(config: TrainConfig, dataset: torch.utils.data.Dataset, **kwargs: Any) -> Any:
    """Train DCMH (see :func:`dcmh_config`) with the shared trainer; returns its TrainResult."""
    from ..trainer import Trainer

    if config.method != "dcmh":
        config = dcmh_config(config)
    return Trainer(config, dataset, **kwargs).fit()
