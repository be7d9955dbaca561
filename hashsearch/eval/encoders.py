"""From a model and a dataset to codes: the models ``hashsearch eval`` accepts.

What this module owns: turning "a checkpoint, or any encoder" and "a dataset"
into :class:`~hashsearch.eval.protocols.EncodedSplits` plus what the report says
about them (names, provenance, band names, task).

Models (:func:`as_model`):

- a training checkpoint (file, or folder holding ``last.pt``): SIDHCNN or DCMH,
  loaded with :meth:`hashsearch.training.Encoder.load`;
- a :class:`hashsearch.training.Encoder` (e.g. ``Encoder.from_networks`` after training);
- a fitted linear baseline (:class:`~hashsearch.training.baselines.CCAITQ`,
  :class:`~hashsearch.training.baselines.SCMSeq`) or its ``.npz`` file: GIST
  descriptors of both sources, projected; or the name "cca" / "scm" to fit one on
  the training split first (``bits`` needed);
- any object with ``bits`` and ``features(images, source)`` (real-valued, packed
  here with the sign rule) or ``encode(images, source)`` (packed codes).

Datasets (:func:`open_splits`): a path (dual-source Zarr group or DSRSID ``.mat``),
opened with :func:`hashsearch.training.datasets.dual_source_splits` (train and test
views normalised with the train statistics, as training saw them), or a
``(train, test)`` pair of map-style datasets.

torch and :mod:`hashsearch.training` are imported inside the functions that need
them: this module imports only NumPy and the engine at import time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hashsearch.eval.protocols import EncodedSplits

__all__ = ["EvalModel", "as_model", "dataset_labels", "dataset_meta", "encode_splits", "open_splits"]

logger = logging.getLogger("hashsearch")

_BASELINES = {"cca": "cca-itq", "cca-itq": "cca-itq", "scm": "scm-seq", "scm-seq": "scm-seq"}
_DISPLAY = {"sidhcnn": "SIDHCNN", "dcmh": "DCMH", "cca-itq": "CCA-ITQ", "scm-seq": "SCM"}
#: GF-1's MS bands (DSRSID), which the released file does not name.
DSRSID_MS_BANDS = ("blue", "green", "red", "nir")

Encode = Callable[[Any, str, bool], tuple[np.ndarray, "np.ndarray | None"]]


@dataclass
class EvalModel:
    """A model ready to encode both sources.

    Attributes:
        name: label in tables ("SIDHCNN", "DCMH", "CCA-ITQ", "SCM", ...).
        method: machine name ("sidhcnn", "dcmh", "cca-itq", "scm-seq", ...).
        bits: code length.
        info: provenance for the report (checkpoint sha256, weights, ...).
        encode: ``(dataset, source, progress) -> (codes uint8 (n, bits/8), features float (n, l) or None)``.
    """

    name: str
    method: str
    bits: int
    info: dict[str, Any] = field(default_factory=dict)
    encode: Encode | None = None


# ------------------------------------------------------------------ datasets
def dataset_labels(dataset: Any) -> np.ndarray:
    """int64 (n,): the dataset's ``labels`` attribute, or every item's ``"label"``."""
    n = len(dataset)
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [int(dataset[i]["label"]) for i in range(n)]
    arr = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
    if arr.shape != (n,) or arr.dtype.kind not in "iub":
        raise ValueError(f"dataset labels must be {n} integers, got shape {arr.shape} dtype {arr.dtype}")
    return arr.astype(np.int64)


def dataset_meta(dataset: Any) -> dict[str, Any]:
    """The ``hashsearch`` attributes of a dataset or of the reader under a view ({} when none).

    Looks through wrappers (``.source`` of the torch adapter, ``.dataset`` of subsets).
    A DSRSID reader gets ``task`` "class", its class names and GF-1's band names.
    """
    seen = 0
    obj = dataset
    while obj is not None and seen < 4:
        meta = getattr(obj, "meta", None)
        if isinstance(meta, dict):
            return meta
        if type(obj).__name__ == "DSRSID":
            from hashsearch.data.dsrsid import DSRSID_CLASSES

            return {"task": "class", "classes": list(DSRSID_CLASSES), "ms": {"bands": list(DSRSID_MS_BANDS)},
                    "pan": {"bands": ["pan"]}, "path": str(getattr(obj, "path", ""))}
        inner = getattr(obj, "source", None)  # (not `or`: an empty dataset is falsy)
        obj = inner if inner is not None else getattr(obj, "dataset", None)
        seen += 1
    return {}


def open_splits(dataset: Any, **reader_kwargs: Any) -> tuple[Any, Any, dict[str, Any]]:
    """``(train, test, meta)`` of a dataset path or a ``(train, test)`` pair.

    Args:
        dataset: a dataset path or a ``(train, test)`` pair.
        **reader_kwargs: passed to the reader of a path (e.g. ``test_per_class`` and
            ``seed`` of a DSRSID file's standard split).

    Raises:
        TypeError: anything else (a single dataset without a split).
    """
    if isinstance(dataset, (str, os.PathLike)):
        from hashsearch.training.datasets import dual_source_splits

        train, test = dual_source_splits(dataset, **reader_kwargs)
        meta = dict(dataset_meta(train))
        meta.setdefault("path", str(dataset))
        return train, test, meta
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        train, test = dataset
        return train, test, dict(dataset_meta(train))
    raise TypeError("dataset must be a path (dual-source Zarr group or DSRSID .mat) or a (train, test) pair of "
                    f"datasets, got {type(dataset).__name__}")


def _images(dataset: Any, key: str) -> Any:
    """The dataset's ``key`` images as one array when it holds them in memory, else the dataset."""
    arr = getattr(dataset, key, None)
    if arr is not None and hasattr(arr, "shape") and len(arr.shape) == 4:
        return arr
    return dataset


# ------------------------------------------------------------------ models
def _encoder_model(encoder: Any, batch_size: int) -> EvalModel:
    from hashsearch.packing import pack

    def encode(ds: Any, source: str, progress: bool) -> tuple[np.ndarray, np.ndarray | None]:
        feats = encoder.features(_images(ds, source), source, batch_size=batch_size, progress=progress)
        return pack(feats, encoding="sign"), feats

    info = dict(getattr(encoder, "info", {}) or {})
    method = str(info.get("method") or str(info.get("model") or "sidhcnn")).lower()
    name = str(info.get("model") or _DISPLAY.get(method, method.upper()))
    return EvalModel(name=name, method=method, bits=int(encoder.bits), info=info, encode=encode)


def _gist_configs(dataset: Any) -> dict[str, Any]:
    """GIST parameters per source for a dataset's patch sizes (the rule of ``hashsearch train baseline``)."""
    from hashsearch.training.baselines import GistConfig

    item = dataset[0]
    cfgs = {}
    for key in ("pan", "ms"):
        size = min(128, int(item[key].shape[-1]))
        cfgs[key] = GistConfig(image_size=max(size, 8), grid=4, scales=4 if size >= 32 else 3)
    return cfgs


def _linear_model(model: Any, gist_configs: dict[str, Any] | None, batch_size: int) -> EvalModel:
    from hashsearch.packing import pack
    from hashsearch.training.baselines import gist_dataset

    def encode(ds: Any, source: str, progress: bool) -> tuple[np.ndarray, np.ndarray | None]:
        cfgs = gist_configs or _gist_configs(ds)
        proj = model.project(gist_dataset(ds, source, cfgs[source], progress=progress), source)
        return pack(proj, encoding="sign"), proj.astype(np.float32)

    method = str(getattr(model, "name", "linear"))
    name = _DISPLAY.get(method, method.upper())
    info: dict[str, Any] = {"model": name, "method": method, "descriptor": "GIST",
                            "gist": {k: vars(v) for k, v in (gist_configs or {}).items()} or "per patch size"}
    return EvalModel(name=name, method=method, bits=int(model.bits), info=info, encode=encode)


def _generic_model(model: Any, batch_size: int) -> EvalModel:
    from hashsearch.packing import pack

    has_features = callable(getattr(model, "features", None))

    def encode(ds: Any, source: str, progress: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if has_features:
            feats = np.asarray(model.features(_images(ds, source), source))
            return pack(feats, encoding="sign"), feats
        return np.asarray(model.encode(_images(ds, source), source)), None

    name = str(getattr(model, "name", type(model).__name__))
    return EvalModel(name=name, method=name.lower(), bits=int(model.bits), info={"model": name}, encode=encode)


def _fit_baseline(method: str, bits: int, train_set: Any, progress: bool) -> tuple[Any, dict[str, Any], float]:
    from hashsearch.training.baselines import CCAITQ, SCMSeq, gist_dataset

    start = time.perf_counter()
    cfgs = _gist_configs(train_set)
    x = gist_dataset(train_set, "pan", cfgs["pan"], progress=progress)
    y = gist_dataset(train_set, "ms", cfgs["ms"], progress=progress)
    model = (CCAITQ if method == "cca-itq" else SCMSeq)(bits)
    model.fit(x, y, dataset_labels(train_set))
    return model, cfgs, time.perf_counter() - start


def as_model(model: Any, *, train_set: Any = None, bits: int | None = None, device: str = "cpu",
             batch_size: int = 256, progress: bool = False) -> EvalModel:
    """Wrap any accepted model (see the module docstring) as an :class:`EvalModel`.

    Args:
        model: checkpoint path, "cca" / "scm", a baseline ``.npz``, an Encoder, a
            fitted baseline or a duck-typed encoder.
        train_set: the training split (needed to fit "cca" / "scm").
        bits: code length of a baseline fitted here.
        device: where a checkpoint's networks run.
        batch_size: images per forward pass.
        progress: progress bars while fitting a baseline.

    Raises:
        ValueError: "cca" / "scm" without ``bits`` or ``train_set``.
        FileNotFoundError: a path with nothing there.
    """
    if isinstance(model, EvalModel):
        return model
    if isinstance(model, str) and model.lower() in _BASELINES:
        method = _BASELINES[model.lower()]
        if bits is None or train_set is None:
            raise ValueError(f"fitting the {method} baseline needs bits= and the training split")
        fitted, cfgs, seconds = _fit_baseline(method, bits, train_set, progress)
        out = _linear_model(fitted, cfgs, batch_size)
        out.info["fit_seconds"] = round(seconds, 2)
        return out
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.suffix == ".npz" and path.is_file():
            from hashsearch.training.baselines import CCAITQ, SCMSeq

            with np.load(path, allow_pickle=False) as z:
                stored = str(z["name"])
            cls = SCMSeq if stored == "scm-seq" else CCAITQ
            loaded = cls.load(path)
            loaded.name = stored
            out = _linear_model(loaded, None, batch_size)
            out.info["file"] = path.name
            return out
        from hashsearch.training.encoder import Encoder

        return _encoder_model(Encoder.load(path, device=device), batch_size)
    if callable(getattr(model, "project", None)) and hasattr(model, "w_x"):
        return _linear_model(model, None, batch_size)
    if hasattr(model, "nets") and callable(getattr(model, "features", None)):
        return _encoder_model(model, batch_size)
    duck = callable(getattr(model, "features", None)) or callable(getattr(model, "encode", None))
    if hasattr(model, "bits") and duck:
        return _generic_model(model, batch_size)
    raise TypeError(f"cannot evaluate a {type(model).__name__}: give a checkpoint path, 'cca' / 'scm', an Encoder, "
                    "a fitted baseline, or an object with bits and features(images, source) / encode(images, source)")


def encode_splits(model: EvalModel, train_set: Any, test_set: Any, *, progress: bool = False,
                  features: bool = True) -> tuple[EncodedSplits, float]:
    """Codes (and features) of both sources of both splits; returns them and the seconds taken."""
    assert model.encode is not None
    start = time.perf_counter()
    codes: dict[str, dict[str, np.ndarray]] = {}
    feats: dict[str, dict[str, np.ndarray]] | None = {} if features else None
    for split, ds in (("train", train_set), ("test", test_set)):
        codes[split] = {}
        if feats is not None:
            feats[split] = {}
        for source in ("pan", "ms"):
            c, f = model.encode(ds, source, progress)
            codes[split][source] = np.ascontiguousarray(c, dtype=np.uint8)
            if feats is not None:
                if f is None:
                    feats = None
                else:
                    feats[split][source] = np.asarray(f, dtype=np.float32)
            logger.info("encoded %d %s %s images", c.shape[0], split, source)
    enc = EncodedSplits(nbits=model.bits, codes=codes,
                        labels={"train": dataset_labels(train_set), "test": dataset_labels(test_set)},
                        features=feats)
    return enc, time.perf_counter() - start
