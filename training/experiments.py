"""Run and evaluate training experiments: one config, the Table IV ablation, α/β/γ sweeps.

The evaluation is the paper's protocol (Algorithm 2): the training set is the
search database and the test set the queries; PAN→MS queries the PAN codes of
the test set against the MS codes of the training set, MS→PAN the reverse; MAP
over the full Hamming ranking (:func:`~hashsearch.training.metrics.mean_average_precision`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from .config import TrainConfig
from .encoder import Encoder
from .metrics import mean_average_precision
from .trainer import Trainer, dataset_labels

__all__ = ["CrossSourceResult", "evaluate_cross_source", "run_experiment", "run_experiments", "split_dataset"]

logger = logging.getLogger("hashsearch")


@dataclass
class CrossSourceResult:
    """Cross-source retrieval quality of one trained model.

    Attributes:
        name: the experiment's name.
        map_pan2ms: MAP of PAN test queries against the MS training codes.
        map_ms2pan: MAP of MS test queries against the PAN training codes.
        bits: code length.
        config: the training config (dict), when known.
        train_seconds: wall time of training.
        pairs_per_s: mean training throughput over the epochs.
        checkpoint: path of the final checkpoint, when one was written.
        extra: anything else (e.g. per-epoch losses).
    """

    name: str
    map_pan2ms: float
    map_ms2pan: float
    bits: int
    config: dict[str, Any] | None = None
    train_seconds: float | None = None
    pairs_per_s: float | None = None
    checkpoint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _images(dataset: Dataset, key: str) -> Any:
    """The dataset's ``key`` images as one array if it holds them in memory, else the dataset."""
    arr = getattr(dataset, key, None)
    if arr is not None and hasattr(arr, "shape") and len(arr.shape) == 4:
        return arr
    return dataset


def evaluate_cross_source(
    encoder: Encoder,
    database: Dataset,
    queries: Dataset,
    *,
    name: str = "model",
    batch_size: int = 256,
    backend: str = "auto",
) -> CrossSourceResult:
    """MAP of PAN→MS and MS→PAN retrieval with a trained encoder.

    Args:
        encoder: the trained networks.
        database: the training set (search database), dual-source dataset.
        queries: the test set (queries), dual-source dataset.
        name: label of the result.
        batch_size: images per forward pass.
        backend: engine backend for the Hamming distances.
    """
    db_labels = dataset_labels(database)
    q_labels = dataset_labels(queries)
    codes = {}
    for role, ds in (("db", database), ("q", queries)):
        for key in ("pan", "ms"):
            codes[role, key] = encoder.encode(_images(ds, key), key, batch_size=batch_size)
    p2m = mean_average_precision(codes["q", "pan"], q_labels, codes["db", "ms"], db_labels, backend=backend)
    m2p = mean_average_precision(codes["q", "ms"], q_labels, codes["db", "pan"], db_labels, backend=backend)
    return CrossSourceResult(name=name, map_pan2ms=p2m, map_ms2pan=m2p, bits=encoder.bits)


def split_dataset(dataset: Dataset, test_fraction: float = 0.25, seed: int = 0) -> tuple[Dataset, Dataset]:
    """A seeded per-class split of an in-memory or map-style dataset into (train, test) subsets.

    Each class contributes ``round(test_fraction * count)`` test items (at least one
    when it has two or more). Subsets keep a ``labels`` attribute.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = dataset_labels(dataset)
    rng = np.random.default_rng(seed)
    test: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = int(round(test_fraction * idx.size))
        if idx.size >= 2:
            k = min(max(k, 1), idx.size - 1)
        test.extend(rng.choice(idx, size=k, replace=False).tolist())
    test_idx = np.sort(np.asarray(test, dtype=np.int64))
    train_idx = np.setdiff1d(np.arange(labels.size), test_idx)
    return _Subset(dataset, train_idx), _Subset(dataset, test_idx)


class _Subset(Dataset):
    """Items ``indices`` of a dataset, re-indexed 0..len-1, with labels and in-memory arrays kept."""

    def __init__(self, dataset: Dataset, indices: np.ndarray) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = dataset_labels(dataset)[self.indices]
        for key in ("pan", "ms"):
            arr = getattr(dataset, key, None)
            if arr is not None and hasattr(arr, "shape") and len(arr.shape) == 4:
                setattr(self, key, arr[self.indices])

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = dict(self.dataset[int(self.indices[int(i)])])
        item["index"] = int(i)
        return item


def run_experiment(
    name: str,
    config: TrainConfig,
    train_set: Dataset,
    test_set: Dataset,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    backend: str = "auto",
) -> CrossSourceResult:
    """Train one config and evaluate it; checkpoints go to ``out_dir/name`` when given."""
    ckpt_dir = Path(out_dir) / name if out_dir is not None else None
    start = time.perf_counter()
    result = Trainer(config, train_set, checkpoint_dir=ckpt_dir, progress=progress).fit()
    seconds = time.perf_counter() - start
    encoder = Encoder.from_networks(result.pan_net, result.ms_net, device=str(next(result.pan_net.parameters()).device),
                                    model=config.method.upper())
    res = evaluate_cross_source(encoder, train_set, test_set, name=name, backend=backend)
    res.config = config.to_dict()
    res.train_seconds = seconds
    res.pairs_per_s = float(np.mean([h.pairs_per_s for h in result.history])) if result.history else None
    res.checkpoint = str(result.checkpoint) if result.checkpoint else None
    res.extra["history"] = [asdict(h) for h in result.history]
    logger.info("%s: MAP PAN->MS %.4f, MS->PAN %.4f (%.0f s)", name, res.map_pan2ms, res.map_ms2pan, seconds)
    return res


def run_experiments(
    configs: Mapping[str, TrainConfig],
    train_set: Dataset,
    test_set: Dataset,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    backend: str = "auto",
) -> list[CrossSourceResult]:
    """Run several named configs one after the other; writes ``out_dir/results.json`` as it goes."""
    results: list[CrossSourceResult] = []
    for name, cfg in configs.items():
        results.append(run_experiment(name, cfg, train_set, test_set, out_dir=out_dir, progress=progress,
                                      backend=backend))
        if out_dir is not None:
            path = Path(out_dir) / "results.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps([r.as_dict() for r in results], indent=2, default=str))
            os.replace(tmp, path)
    return results
