"""Run state of a training run and the dataset helpers the trainer reads its data with.

Owns :class:`EpochStats` (one epoch's summary) and :class:`TrainResult` (what
:meth:`~hashsearch.training.trainer.Trainer.fit` returns), the device choice
(:func:`resolve_device`), the derived seeds of the mini-batch orders
(:func:`_derived_seed`), the one-source dataset view the loaders read
(:class:`_Source`), and the dataset contract's readers :func:`dataset_labels`,
:func:`dataset_pixel_stats` and :func:`dataset_task` (see :mod:`.trainer` for the
contract; ``dataset_task`` is re-exported by :mod:`.experiments`). All are
re-exported by :mod:`.trainer`, where they were first defined.

Imports :mod:`.models` (the network type of a result) only; never :mod:`.trainer`
or anything above it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .models import DHCNN

__all__ = [
    "EpochStats",
    "TrainResult",
    "dataset_labels",
    "dataset_pixel_stats",
    "dataset_task",
    "resolve_device",
]

#: The two sources, in the order of the passes of an epoch.
_SOURCES = ("pan", "ms")


def resolve_device(device: str) -> torch.device:
    """"auto" -> CUDA when available else CPU; otherwise ``torch.device(device)`` (checked)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available to this torch build")
    return dev


def _derived_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (stable across runs and machines)."""
    digest = hashlib.blake2b(np.asarray(parts, dtype=np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


@dataclass
class EpochStats:
    """Summary of one epoch.

    Attributes:
        epoch: 1-based epoch number.
        lr: learning rate used.
        pan, ms: mean loss terms of the PAN and MUL passes: ``"loss"`` and one entry per
            term of the loss (SIDHCNN: irsc, iasc, bqc, fdc; DCMH: irsc, bqc, fdc).
        seconds: wall time of the epoch.
        pairs_per_s: V / seconds (a pair = one PAN and one MUL image through forward and backward).
        bit_balance: max over bits of |mean of B|: 0 when every bit splits the set in half.
        source_agreement: fraction of bits where sign(F^P) == sign(F^M) (same sample).
    """

    epoch: int
    lr: float
    pan: dict[str, float]
    ms: dict[str, float]
    seconds: float
    pairs_per_s: float
    bit_balance: float
    source_agreement: float


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        pan_net, ms_net: the trained networks (eval mode, on the training device).
        history: one :class:`EpochStats` per epoch run so far (resumed ones included).
        checkpoint: path of the last checkpoint written (None without a checkpoint dir).
        interrupted: True when training stopped on KeyboardInterrupt (re-raised by fit
            unless ``raise_interrupt=False``).
    """

    pan_net: DHCNN
    ms_net: DHCNN
    history: list[EpochStats] = field(default_factory=list)
    checkpoint: Path | None = None
    interrupted: bool = False


class _Source(Dataset):
    """View of a dual-source dataset that yields one source's image, as float32, by position."""

    def __init__(self, dataset: Dataset, key: str) -> None:
        self.dataset, self.key = dataset, key

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Tensor:
        item = self.dataset[i]
        try:
            image = item[self.key]
        except (KeyError, TypeError, IndexError):
            raise TypeError(
                f"dataset items must be dicts with a {self.key!r} image, got {type(item).__name__}"
            ) from None
        return _as_float_tensor(image)


def _as_float_tensor(image: Any) -> Tensor:
    if isinstance(image, Tensor):
        return image.float()
    arr = np.asarray(image)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"images must be numeric arrays, got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """int64 (V,) labels of a dual-source dataset: its ``labels`` attribute, else read item by item."""
    n = len(dataset)  # type: ignore[arg-type]
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [int(dataset[i]["label"]) for i in range(n)]
    arr = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels)
    if arr.shape != (n,) or arr.dtype.kind not in "iub":
        raise ValueError(f"dataset labels must be {n} integers, got shape {arr.shape} dtype {arr.dtype}")
    return arr.astype(np.int64)


def dataset_pixel_stats(dataset: Dataset) -> dict[str, dict[str, list[float]]] | None:
    """The per-band pixel statistics a dataset normalised its items with, or None.

    Read from a ``pixel_stats`` attribute, else from ``stats`` when the dataset's
    ``normalize`` is true (:class:`~hashsearch.training.datasets.DualSourceTorchDataset`);
    None for a dataset that yields raw pixels or says nothing.

    Returns:
        ``{"pan": {"mean": [...], "std": [...]}, "ms": {...}}`` (plain floats, one per band).

    Raises:
        ValueError: statistics without a source's ``mean`` / ``std``.
    """
    stats = getattr(dataset, "pixel_stats", None)
    if stats is None and getattr(dataset, "normalize", False) is True:
        stats = getattr(dataset, "stats", None)
    if stats is None:
        return None
    if not isinstance(stats, Mapping):
        raise ValueError(f"the dataset's pixel statistics must be a mapping, got {type(stats).__name__}")
    out: dict[str, dict[str, list[float]]] = {}
    for key in _SOURCES:
        entry = stats.get(key)
        if not isinstance(entry, Mapping) or "mean" not in entry or "std" not in entry:
            raise ValueError(f"the dataset's pixel statistics must hold {key!r} with 'mean' and 'std'")
        out[key] = {name: [float(v) for v in np.asarray(entry[name], dtype=np.float64).reshape(-1)]
                    for name in ("mean", "std")}
    return out


def dataset_task(dataset: Any) -> str | None:
    """The dataset's task, "class" or "instance", or None when nothing says.

    Read from a ``task`` attribute (fake data, subsets), else ``meta["task"]`` (a stored
    dual-source dataset), looking through wrappers (``.source`` of the torch adapter,
    ``.dataset`` of a subset).
    """
    obj = dataset
    for _ in range(4):
        if obj is None:
            break
        task = getattr(obj, "task", None)
        if isinstance(task, str):
            return task
        meta = getattr(obj, "meta", None)
        if isinstance(meta, Mapping) and isinstance(meta.get("task"), str):
            return str(meta["task"])
        inner = getattr(obj, "source", None)
        obj = inner if inner is not None else getattr(obj, "dataset", None)
    return None
