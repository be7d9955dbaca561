"""Baselines of Table VIII: DCMH (same networks) and CCA-ITQ / SCM-Seq on GIST descriptors.

All of them produce packed codes (``hashsearch.pack`` conventions) that the
engine searches like SIDHCNN's.
"""

from __future__ import annotations

from .cca import CCAITQ
from .dcmh import DCMHLoss, dcmh_config, train_dcmh
from .gist import GistConfig, gist, gist_dataset
from .linear import LinearCrossSourceHash
from .scm import SCMSeq

__all__ = [
    "CCAITQ",
    "DCMHLoss",
    "GistConfig",
    "LinearCrossSourceHash",
    "SCMSeq",
    "dcmh_config",
    "gist",
    "gist_dataset",
    "train_dcmh",
]
