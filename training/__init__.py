"""hashsearch.training — SIDHCNN in PyTorch (the ``train`` extra).

Two CNNs, PAN-DHCNN and MUL-DHCNN (Tables II/III of Li et al., TGRS 2018),
trained with the corrected objective of SPEC §2 by Algorithm 1, turn PAN and MS
images into source-invariant binary codes searched by :class:`hashsearch.BinaryIndex`.

- :mod:`.config` — :class:`TrainConfig`, the Table IV presets and Tables V–VII sweeps.
- :mod:`.models` — :class:`PanDHCNN`, :class:`MulDHCNN`.
- :mod:`.losses` — IRSC, IASC, BQC, FDC as modules; :class:`SIDHCNNLoss`.
- :mod:`.trainer` — :class:`Trainer` (Algorithm 1, checkpoints, resume).
- :mod:`.encoder` — :class:`Encoder` (checkpoint -> packed codes, CodeStore provenance).
- :mod:`.fake` — seeded fake dual-source data.
- :mod:`.metrics` — :func:`mean_average_precision` of Hamming ranking.
- :mod:`.experiments` — train-and-evaluate runs (PAN→MS / MS→PAN MAP), ablations, sweeps.
- :mod:`.baselines` — DCMH, and CCA-ITQ / SCM on GIST descriptors.

Importing this package imports torch; :mod:`hashsearch` itself never does.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401 - checked here so the error says what to install
except ImportError as exc:  # pragma: no cover - exercised in a venv without torch
    raise ImportError(
        "hashsearch.training needs PyTorch: pip install 'hashsearch[train]' "
        "(on a machine without a GPU, first: pip install torch==2.13.0 for the CPU build)"
    ) from exc

from .config import PRESETS, TABLE_SWEEPS, ModelConfig, TrainConfig, ablation_configs, sweep_configs
from .encoder import Encoder
from .fake import FakeDualSource, InMemoryDualSource, fake_dual_source
from .losses import (
    BQCLoss,
    FDCLoss,
    IASCLoss,
    IRSCLoss,
    LossTerms,
    SIDHCNNLoss,
    closed_form_gradient,
    pairwise_nll,
    sidhcnn_objective,
)
from .experiments import CrossSourceResult, evaluate_cross_source, run_experiment, run_experiments, split_dataset
from .metrics import average_precisions, mean_average_precision
from .models import DHCNN, MUL_STAGES, PAN_STAGES, MulDHCNN, PanDHCNN, build_networks
from .trainer import EpochStats, Trainer, TrainResult, load_checkpoint, train

__all__ = [
    "BQCLoss",
    "CrossSourceResult",
    "DHCNN",
    "Encoder",
    "EpochStats",
    "FDCLoss",
    "FakeDualSource",
    "IASCLoss",
    "IRSCLoss",
    "InMemoryDualSource",
    "LossTerms",
    "MUL_STAGES",
    "ModelConfig",
    "MulDHCNN",
    "PAN_STAGES",
    "PRESETS",
    "PanDHCNN",
    "SIDHCNNLoss",
    "TABLE_SWEEPS",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "ablation_configs",
    "average_precisions",
    "build_networks",
    "closed_form_gradient",
    "evaluate_cross_source",
    "fake_dual_source",
    "load_checkpoint",
    "mean_average_precision",
    "pairwise_nll",
    "run_experiment",
    "run_experiments",
    "sidhcnn_objective",
    "split_dataset",
    "sweep_configs",
    "train",
]
