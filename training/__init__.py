"""hashsearch.training — SIDHCNN in PyTorch (the ``train`` extra).

Two CNNs, PAN-DHCNN and MUL-DHCNN (Tables II/III of Li et al., TGRS 2018),
trained with the corrected objective of SPEC §2 by Algorithm 1, turn PAN and MS
images into source-invariant binary codes searched by :class:`hashsearch.BinaryIndex`.

- :mod:`.config` — :class:`TrainConfig`, the Table IV presets and Tables V–VII sweeps.
- :mod:`.models` — :class:`PanDHCNN`, :class:`MulDHCNN` (any band count; small patches via ``padding="auto"``).
- :mod:`.pairwise` — the fused pairwise likelihood kernel (:func:`pairwise_nll`).
- :mod:`.losses` — the loss terms IRSC, IASC, BQC, FDC (one ``nn.Module`` each), their registry :data:`TERMS`.
- :mod:`.objective` — :class:`WeightedLoss` over named terms, :class:`SIDHCNNLoss`, :func:`build_loss`.
- :mod:`.checkpoint` — atomic checkpoint files, :func:`load_checkpoint`.
- :mod:`.run_state` — :class:`EpochStats`, :class:`TrainResult`, the dataset readers of the trainer.
- :mod:`.trainer` — :class:`Trainer` (Algorithm 1, checkpoints, resume).
- :mod:`.encoder` — :class:`Encoder` (checkpoint -> packed codes, CodeStore provenance).
- :mod:`.fake` — seeded fake dual-source data (class or instance task).
- :mod:`.metrics` — :func:`mean_average_precision`, re-exported from :mod:`hashsearch.eval.metrics`.
- :mod:`.experiments` — train-and-evaluate runs by the dataset's task (class: MAP; instance:
  recall@1/@10, MRR; both directions), ablations, sweeps.
- :mod:`.baselines` — DCMH, and CCA-ITQ / SCM on GIST descriptors.

Importing this package imports torch; :mod:`hashsearch` itself never does.

Import direction inside the package (no cycles; ``tests/test_architecture.py``
checks it): config < pairwise < losses < objective < models < checkpoint, run_state < trainer
< encoder < experiments < baselines; fake, augment, datasets and metrics sit beside
them. The core loop (trainer) never imports a baseline.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401 - checked here so the error says what to install
except ImportError as exc:  # pragma: no cover - exercised in a venv without torch
    raise ImportError(
        "hashsearch.training needs PyTorch: pip install 'hashsearch[train]' "
        "(on a machine without a GPU, first: pip install torch==2.13.0 for the CPU build)"
    ) from exc

from .checkpoint import load_checkpoint
from .config import PRESETS, TABLE_SWEEPS, ModelConfig, TrainConfig, ablation_configs, sweep_configs
from .encoder import Encoder
from .experiments import (
    CrossSourceResult,
    dataset_task,
    evaluate_codes,
    evaluate_cross_source,
    run_experiment,
    run_experiments,
    split_dataset,
)
from .fake import FakeDualSource, InMemoryDualSource, fake_dual_source
from .losses import (
    TERMS,
    BQCLoss,
    FDCLoss,
    IASCLoss,
    IRSCLoss,
    LossTerm,
    closed_form_gradient,
    register_term,
    sidhcnn_objective,
)
from .metrics import average_precisions, mean_average_precision
from .models import DHCNN, MUL_STAGES, PAN_STAGES, MulDHCNN, PanDHCNN, build_networks
from .objective import LossTerms, SIDHCNNLoss, WeightedLoss, build_loss
from .pairwise import pairwise_nll
from .trainer import EpochStats, Trainer, TrainResult, train

__all__ = [
    "DHCNN",
    "MUL_STAGES",
    "PAN_STAGES",
    "PRESETS",
    "TABLE_SWEEPS",
    "TERMS",
    "BQCLoss",
    "CrossSourceResult",
    "Encoder",
    "EpochStats",
    "FDCLoss",
    "FakeDualSource",
    "IASCLoss",
    "IRSCLoss",
    "InMemoryDualSource",
    "LossTerm",
    "LossTerms",
    "ModelConfig",
    "MulDHCNN",
    "PanDHCNN",
    "SIDHCNNLoss",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "WeightedLoss",
    "ablation_configs",
    "average_precisions",
    "build_loss",
    "build_networks",
    "closed_form_gradient",
    "dataset_task",
    "evaluate_codes",
    "evaluate_cross_source",
    "fake_dual_source",
    "load_checkpoint",
    "mean_average_precision",
    "pairwise_nll",
    "register_term",
    "run_experiment",
    "run_experiments",
    "sidhcnn_objective",
    "split_dataset",
    "sweep_configs",
    "train",
]
