"""Run and evaluate training experiments: one config, the Table IV ablation, α/β/γ sweeps.

What this module owns: the train/test split of in-memory data
(:func:`split_dataset`), the evaluation a training run reports
(:func:`evaluate_cross_source`, :func:`evaluate_codes`, :class:`CrossSourceResult`)
and running named configs one after the other (:func:`run_experiments`).

The evaluation follows the dataset's ``task`` (:func:`dataset_task`), through
:func:`hashsearch.eval.protocols.resolve_protocol` and
:func:`~hashsearch.eval.protocols.evaluate_encoded` (the definitions live in
:mod:`hashsearch.eval.metrics`):

- **class retrieval** (task "class", DSRSID's protocol, the paper's Algorithm 2):
  the training set is the search database and the test set the queries; PAN→MS
  queries the PAN codes of the test set against the MS codes of the training set,
  MS→PAN the reverse; reported: MAP over the full Hamming ranking (eq. 10, ties by
  database position), both directions.
- **instance matching** (task "instance": tiled scenes without labels, whose
  labels are pair ids): each test query must find its own pair among the other
  source's test images; reported: recall@1, recall@10 (the fraction of queries
  whose pair is ranked first / in the top 10) and the mean reciprocal rank, both
  directions. MAP is not reported there: against the training database a test
  pair is never present, which is how a MAP of 0.0 used to appear.

Imports :mod:`.config`, :mod:`.encoder`, :mod:`.run_state` (:func:`dataset_task`, defined
there so the trainer can read it too), :mod:`.trainer`, :mod:`hashsearch.eval`
(metrics, protocols, results) and NumPy / torch.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from torch.utils.data import Dataset

from hashsearch.eval.protocols import EncodedSplits, evaluate_encoded, resolve_protocol
from hashsearch.eval.results import EvalConfig, Protocol

from .config import TrainConfig
from .encoder import Encoder
from .run_state import dataset_task
from .trainer import Trainer, dataset_labels

__all__ = [
    "DIRECTION_KEYS",
    "PROTOCOL_METRICS",
    "CrossSourceResult",
    "dataset_task",
    "evaluate_codes",
    "evaluate_cross_source",
    "protocol_of",
    "run_experiment",
    "run_experiments",
    "split_dataset",
]

logger = logging.getLogger("hashsearch")

#: The metrics a training run reports for each protocol, per direction.
PROTOCOL_METRICS: dict[str, tuple[str, ...]] = {
    "class": ("map",),
    "instance": ("recall@1", "recall@10", "mrr"),
}
#: Direction names of :mod:`hashsearch.eval` -> the suffix of the flat keys (``map_pan2ms``).
DIRECTION_KEYS: dict[str, str] = {"PAN->MS": "pan2ms", "MS->PAN": "ms2pan"}


@dataclass
class CrossSourceResult:
    """Cross-source retrieval quality of one trained model.

    Attributes:
        name: the experiment's name.
        map_pan2ms: class retrieval: MAP of PAN test queries against the MS training
            codes; None under instance matching (not measured, never a silent 0).
        map_ms2pan: class retrieval: MAP of MS test queries against the PAN training
            codes; None under instance matching.
        bits: code length.
        protocol: "class" or "instance" (see the module docstring).
        metrics: per direction ("PAN->MS", "MS->PAN"), the protocol's metrics
            (:data:`PROTOCOL_METRICS`), e.g. ``{"PAN->MS": {"recall@1": 0.4, ...}}``.
        database_size: items each query is ranked against (the training set for
            class retrieval, the other source's test images for instance matching;
            chance recall@1 is 1 / database_size).
        config: the training config (dict), when known.
        train_seconds: wall time of training.
        pairs_per_s: mean training throughput over the epochs.
        checkpoint: path of the final checkpoint, when one was written.
        extra: anything else (e.g. per-epoch losses).
    """

    name: str
    map_pan2ms: float | None
    map_ms2pan: float | None
    bits: int
    protocol: str = "class"
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    database_size: int | None = None
    config: dict[str, Any] | None = None
    train_seconds: float | None = None
    pairs_per_s: float | None = None
    checkpoint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, float]:
        """The protocol's metrics as flat keys, e.g. ``{"map_pan2ms": .., "map_ms2pan": ..}`` or
        ``{"recall@1_pan2ms": .., "recall@10_pan2ms": .., "mrr_pan2ms": .., ...}``."""
        return {f"{metric}_{DIRECTION_KEYS[direction]}": value
                for direction, values in self.metrics.items() for metric, value in values.items()}

    def describe(self) -> str:
        """One line, e.g. ``"MAP PAN->MS 0.5070, MS->PAN 0.4640"`` or ``"recall@1 PAN->MS 0.41 ..."``."""
        parts = []
        for metric in PROTOCOL_METRICS.get(self.protocol, ()):
            label = "MAP" if metric == "map" else metric
            values = ", ".join(f"{d} {m[metric]:.4f}" for d, m in self.metrics.items() if metric in m)
            parts.append(f"{label} {values}")
        return "; ".join(parts)


def _images(dataset: Dataset, key: str) -> Any:
    """The dataset's ``key`` images as one array if it holds them in memory, else the dataset."""
    arr = getattr(dataset, key, None)
    if arr is not None and hasattr(arr, "shape") and len(arr.shape) == 4:
        return arr
    return dataset


def protocol_of(protocol: str, *datasets: Dataset) -> str:
    """The protocol to run: ``protocol`` unless "auto", else the task of the first of
    ``datasets`` that has one (:func:`dataset_task`; "class" when none has).

    Raises:
        ValueError: an unknown protocol or task.
    """
    task = next((t for t in (dataset_task(ds) for ds in datasets) if t is not None), None)
    return resolve_protocol(protocol, task)


def evaluate_codes(
    codes: Mapping[str, Mapping[str, np.ndarray]],
    train_labels: Any,
    test_labels: Any,
    nbits: int,
    *,
    protocol: str = "class",
    name: str = "model",
    backend: str = "auto",
    progress: bool = False,
    distractors: bool = False,
) -> CrossSourceResult:
    """Both directions of cross-source retrieval over computed codes, with the protocol's metrics.

    Args:
        codes: ``codes[split][source]``, packed uint8 (n_split, nbits / 8), split
            "train" / "test", source "pan" / "ms". Instance matching needs only the
            test split (give empty (0, nbits / 8) train arrays).
        train_labels, test_labels: int (n_train,) / (n_test,) class labels or pair ids.
        nbits: code length.
        protocol: "class", "instance", or "auto" (= "class": this function sees no dataset).
        name: label of the result.
        backend: engine backend that ranks.
        progress: progress bars over the queries.
        distractors: instance matching: the other source's training codes join the
            gallery (never relevant).

    Returns:
        A :class:`CrossSourceResult` with the metrics of :data:`PROTOCOL_METRICS`.
    """
    protocol = resolve_protocol(protocol, None)
    enc = EncodedSplits(
        nbits=int(nbits),
        codes={split: {src: np.ascontiguousarray(codes[split][src], dtype=np.uint8) for src in ("pan", "ms")}
               for split in ("train", "test")},
        labels={"train": np.asarray(train_labels, dtype=np.int64), "test": np.asarray(test_labels, dtype=np.int64)},
    )
    # resolve_protocol returned "class" or "instance" (it raises on anything else); its annotation says str.
    config = EvalConfig(protocol=cast(Protocol, protocol), ks=(1, 10), features=False, figures=False,
                        backend=backend, progress=progress, distractors=distractors)
    results, _ = evaluate_encoded(enc, protocol, config)
    metrics: dict[str, dict[str, float]] = {}
    for direction, r in results.items():
        if protocol == "class":
            metrics[direction] = {"map": float(r.map)}
        else:  # recall@k for k clipped to the gallery (a gallery under 10 items has recall@10 = 1)
            metrics[direction] = {
                "recall@1": float(r.recall_at[min(1, r.database_size)]),
                "recall@10": float(r.recall_at[min(10, r.database_size)]),
                "mrr": float(r.mrr),
            }
    first = next(iter(results.values()))
    return CrossSourceResult(
        name=name,
        map_pan2ms=metrics["PAN->MS"]["map"] if protocol == "class" else None,
        map_ms2pan=metrics["MS->PAN"]["map"] if protocol == "class" else None,
        bits=int(nbits), protocol=protocol, metrics=metrics, database_size=int(first.database_size),
    )


def evaluate_cross_source(
    encoder: Encoder,
    database: Dataset,
    queries: Dataset,
    *,
    name: str = "model",
    batch_size: int = 256,
    backend: str = "auto",
    protocol: str = "auto",
    progress: bool = False,
    distractors: bool = False,
) -> CrossSourceResult:
    """PAN→MS and MS→PAN retrieval quality of a trained encoder, by the dataset's protocol.

    Args:
        encoder: the trained networks.
        database: the training set (the search database of class retrieval).
        queries: the test set (the queries; under instance matching also the gallery).
        name: label of the result.
        batch_size: images per forward pass.
        backend: engine backend for the Hamming distances.
        protocol: "auto" (the datasets' ``task``, :func:`dataset_task`; "class" when
            they have none), "class" or "instance".
        progress: progress bars while ranking.
        distractors: instance matching: the other source's training images join the
            gallery as distractors (never relevant).

    Returns:
        :class:`CrossSourceResult`: MAP both directions (class), or recall@1, recall@10
        and MRR both directions (instance).
    """
    protocol = protocol_of(protocol, queries, database)
    nbytes = encoder.bits // 8
    codes: dict[str, dict[str, np.ndarray]] = {"train": {}, "test": {}}
    for split, ds in (("train", database), ("test", queries)):
        for key in ("pan", "ms"):
            if split == "train" and protocol == "instance" and not distractors:  # gallery: the test split only
                codes[split][key] = np.zeros((0, nbytes), np.uint8)
                continue
            codes[split][key] = encoder.encode(_images(ds, key), key, batch_size=batch_size)
    train_labels = dataset_labels(database) if codes["train"]["pan"].shape[0] else np.zeros(0, np.int64)
    return evaluate_codes(codes, train_labels, dataset_labels(queries), encoder.bits, protocol=protocol, name=name,
                          backend=backend, progress=progress, distractors=distractors)


def split_dataset(dataset: Dataset, test_fraction: float = 0.25, seed: int = 0) -> tuple[Dataset, Dataset]:
    """A seeded split of an in-memory or map-style dataset into (train, test) subsets.

    Class data: each class contributes ``round(test_fraction * count)`` test items (at
    least one when it has two or more). Instance data (:func:`dataset_task` "instance",
    every label a pair id): ``round(test_fraction * V)`` pairs drawn at random (at least
    one, at most V - 1). Subsets keep a ``labels`` attribute and the task.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = dataset_labels(dataset)
    rng = np.random.default_rng(seed)
    test: list[int] = []
    strata = np.zeros_like(labels) if dataset_task(dataset) == "instance" else labels
    for c in np.unique(strata):
        idx = np.flatnonzero(strata == c)
        k = round(test_fraction * idx.size)
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
        self.task = dataset_task(dataset)
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
    logger.info("%s (%s): %s (%.0f s)", name, res.protocol, res.describe(), seconds)
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
