"""DCMH baseline (Jiang & Li, "Deep Cross-Modal Hashing", CVPR 2017) on the SIDHCNN networks.

The paper compares against DCMH trained with the *same* PAN-DHCNN / MUL-DHCNN
networks (Table VIII). DCMH's objective, in SPEC §2's notation (rows are samples)::

    J = Σ_ij [softplus(Θ_ij) − S_ij Θ_ij]          inter-source likelihood, Θ_ij = ½⟨F^P_i, F^M_j⟩
      + γ_q (‖B − F^P‖²_F + ‖B − F^M‖²_F)          quantisation
      + η   (‖F^P·1‖² + ‖F^M·1‖²)                  bit balance

with B = sign(F^P + F^M): SIDHCNN's terms IRSC, BQC and FDC without the
intra-source term IASC, so it is the shared weighted loss over those three terms
(``METHOD_TERMS["dcmh"]`` in :mod:`hashsearch.training.objective`), γ_q in β's
place and η in γ's. DCMH's defaults are γ_q = η = 1. It is optimised by the same
alternating scheme (Algorithm 1 is DCMH's), so :class:`~hashsearch.training.trainer.Trainer`
runs it: ``TrainConfig(method="dcmh", beta=γ_q, gamma=η)``, the ``"dcmh"`` preset or
:func:`dcmh_config`.

Imports :mod:`..config`, :mod:`..objective` and :mod:`..trainer` (a baseline sits above
the core loop; the trainer never imports it).
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from ..config import PRESETS, TrainConfig
from ..objective import WeightedLoss, method_weights
from ..pairwise import DEFAULT_CHUNK
from ..trainer import Trainer, TrainResult

__all__ = ["DCMHLoss", "dcmh_config", "train_dcmh"]


class DCMHLoss(WeightedLoss):
    """DCMH's mini-batch objective: the weighted loss over IRSC, BQC and FDC (no IASC).

    The same interface as :class:`~hashsearch.training.objective.WeightedLoss` (and the
    loss :func:`~hashsearch.training.objective.build_loss` makes for ``method="dcmh"``);
    its :class:`~hashsearch.training.objective.LossTerms` hold irsc, bqc and fdc.

    Args:
        quantization: γ_q, weight of ‖B − F‖².
        balance: η, weight of ‖F·1‖².
        normalization: "pairs" (divide by batch × V, as DCMH's code does), "per_term"
            (quantisation by batch × l instead) or "none".
        fused, chunk: see :func:`~hashsearch.training.pairwise.pairwise_nll`.
    """

    def __init__(
        self,
        quantization: float = 1.0,
        balance: float = 1.0,
        *,
        normalization: str = "pairs",
        fused: bool = True,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        weights = method_weights("dcmh", {"beta": quantization, "gamma": balance})
        super().__init__(weights, normalization=normalization, fused=fused, chunk=chunk)


def dcmh_config(base: TrainConfig | None = None, **changes: Any) -> TrainConfig:
    """A DCMH training config: ``base`` with method "dcmh", γ_q = β = 1, η = γ = 1 (DCMH's defaults)."""
    base = base or TrainConfig()
    preset = PRESETS["dcmh"]
    return base.replace(method="dcmh", alpha=0.0, beta=preset.beta, gamma=preset.gamma, **changes)


def train_dcmh(config: TrainConfig, dataset: Dataset, **kwargs: Any) -> TrainResult:
    """Train DCMH (see :func:`dcmh_config`) with the shared trainer; returns its TrainResult.

    ``kwargs`` go to :class:`~hashsearch.training.trainer.Trainer` (``checkpoint_dir``, ``progress``...).
    """
    if config.method != "dcmh":
        config = dcmh_config(config)
    return Trainer(config, dataset, **kwargs).fit()
