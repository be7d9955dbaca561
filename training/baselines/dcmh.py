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

from ..config import PRESETS, TrainConfig
from ..losses import SIDHCNNLoss

__all__ = ["DCMHLoss", "dcmh_config", "train_dcmh"]


class DCMHLoss(SIDHCNNLoss):
    """DCMH's mini-batch objective: :class:`~hashsearch.training.losses.SIDHCNNLoss` with α = 0.

    DCMH's J is eq. (5) without IASC (γ_q in β's place, η in γ's), so the SIDHCNN
    batch loss with α = 0 is exactly DCMH's; same interface and :class:`LossTerms`
    (``iasc`` is 0).

    Args:
        quantization: γ_q, weight of ‖B − F‖².
        balance: η, weight of ‖F·1‖².
        normalization: "pairs" (divide by batch × V, as DCMH's code does), "per_term"
            (quantisation by batch × l instead) or "none".
    """

    def __init__(self, quantization: float = 1.0, balance: float = 1.0, *, normalization: str = "pairs") -> None:
        super().__init__(0.0, quantization, balance, normalization=normalization)


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
