"""Query by image: hash images with a trained model and search the codes of the other source.

What this module owns: the product's everyday use, from pixels to ranked archive entries.

- :class:`Retriever` — ``Retriever(model, store).search(images, source="pan", k=10)``
  encodes the images with the network of their source (PAN-DHCNN or MUL-DHCNN of a
  trained checkpoint), searches the code store(s) holding the *other* source, and
  returns a :class:`RetrievalResult`: ids, Hamming distances and, where the store
  knows them, labels (with class names) and dataset sample indices.
- :func:`read_image` / :func:`tile_image` — a query image from a ``.npy`` array or a
  GeoTIFF, and a scene larger than the model's patch cut into patches.

Normalisation. Images are given in the pixel units of the dataset the model was
trained on (e.g. uint16 reflectance x 10000 for eurosat-ms). The networks apply the
per-band standardisation stored in the checkpoint (``DHCNN.input_mean`` /
``input_std``). A model trained on inputs that were already normalised (the
``DualSourceTorchDataset`` default, ``hashsearch train --data``) also needs that
first step: the dataset's statistics, given as ``pixel_stats`` (a mapping, a dataset
path or reader) or recorded under ``"pixel_stats"`` in the model's or the store's
provenance. It is applied exactly as :mod:`hashsearch.training.datasets` does,
``(x - mean[c]) / std[c]`` with a std at or below 1e-6 taken as 1. A batch whose
per-band mean lies far outside what the network saw in training is logged as a
warning (wrong units or missing statistics).

What a store knows. A store's source comes from its ``source`` column or its encoder
provenance (``encoder_info["source"]``). Its encoder provenance may carry
``"dataset": {"path", "split", "ids": "sample_index", "classes"}``: the ids are then
the dataset's sample indices and labels get class names (the demo writes this).

Imports NumPy, :mod:`hashsearch.functional`, :mod:`hashsearch.store` and the base
modules; torch and :mod:`hashsearch.training` only when a model is loaded from a
path, rasterio only when a GeoTIFF is read. ``import hashsearch`` exports
:class:`Retriever` lazily and never imports torch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from hashsearch._ids import find_positions, sorted_lookup
from hashsearch._validate import check_int

__all__ = [
    "OTHER_SOURCE",
    "RetrievalResult",
    "Retriever",
    "read_image",
    "source_name",
    "tile_image",
]

logger = logging.getLogger("hashsearch")

#: The source a query of each source searches.
OTHER_SOURCE: dict[str, str] = {"pan": "ms", "ms": "pan"}
_ALIASES = {"pan": "pan", "ms": "ms", "mul": "ms", "mss": "ms"}
_STD_FLOOR = 1e-6  # as hashsearch.training.datasets: a constant band stays constant
_UNITS_WARNING_SIGMAS = 10.0


def source_name(source: Any) -> str:
    """"pan" or "ms" for a source name ("mul" and "mss" mean "ms"; any case).

    Raises:
        ValueError: any other name.
    """
    key = _ALIASES.get(str(source).lower())
    if key is None:
        raise ValueError(f"source must be 'pan' or 'ms', got {source!r}")
    return key


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class RetrievalResult:
    """The top-k archive entries of every query image.

    Attributes:
        source: source of the queries ("pan" or "ms").
        target: source searched (the other one).
        ids: int64 (nq, k) store ids, best first; -1 where fewer than k codes exist.
        distances: int32 (nq, k) Hamming distances; 2**31 - 1 in padded columns.
        codes: uint8 (nq, nbits / 8) packed codes of the queries.
        labels: int64 (nq, k) labels of the results (-1 in padding), or None when the
            store keeps no labels.
        indices: int64 (nq, k) dataset sample indices of the results (-1 in padding),
            or None when the store does not record them.
        classes: class names indexed by label, or None.
        dataset: path of the dataset the archive was encoded from, or None.
    """

    source: str
    target: str
    ids: np.ndarray
    distances: np.ndarray
    codes: np.ndarray
    labels: np.ndarray | None = None
    indices: np.ndarray | None = None
    classes: tuple[str, ...] | None = None
    dataset: str | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def k(self) -> int:
        """Results per query."""
        return int(self.ids.shape[1])

    def class_name(self, label: int) -> str | None:
        """The class name of ``label``, or None."""
        if self.classes is None or not 0 <= int(label) < len(self.classes):
            return None
        return self.classes[int(label)]

    def hits(self, query: int) -> list[dict[str, Any]]:
        """The results of query ``query`` as dicts (padding left out).

        Returns:
            ``[{"rank", "id", "distance", "label", "class", "index"}, ...]``, best
            first; "label", "class" and "index" are present only when known.
        """
        out: list[dict[str, Any]] = []
        for r in range(self.k):
            ident = int(self.ids[query, r])
            if ident < 0:
                break
            hit: dict[str, Any] = {"rank": r + 1, "id": ident, "distance": int(self.distances[query, r])}
            if self.labels is not None:
                hit["label"] = int(self.labels[query, r])
                name = self.class_name(hit["label"])
                if name is not None:
                    hit["class"] = name
            if self.indices is not None:
                hit["index"] = int(self.indices[query, r])
            out.append(hit)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: sources, k, the dataset and every query's hits."""
        return {"source": self.source, "target": self.target, "k": self.k, "dataset": self.dataset,
                "queries": [{"query": q, "results": self.hits(q)} for q in range(len(self))]}


# --------------------------------------------------------------------------- stores
class _Target:
    """The codes of one source in one store: the whole store or a subset of its rows."""

    def __init__(self, store: Any, rows: np.ndarray | None) -> None:
        self.store = store
        self.rows = rows  # None: every row
        info = store.encoder_info or {}
        ds = info.get("dataset") if isinstance(info.get("dataset"), Mapping) else {}
        self.dataset: dict[str, Any] = dict(ds or {})
        self._labels: np.ndarray | None = None
        self._sorted_ids: tuple[np.ndarray, np.ndarray] | None = None
        self._cached_n: int | None = None  # store.ntotal when the two above were read
        self._codes: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.store.ntotal if self.rows is None else self.rows.size)

    def labels_at(self, positions: np.ndarray) -> np.ndarray | None:
        if not self.store.has_labels:
            return None
        self._forget_if_grown()
        if self._labels is None:
            self._labels = np.asarray(self.store.read_labels(), dtype=np.int64)
        out = np.full(positions.shape, -1, np.int64)
        valid = positions >= 0
        out[valid] = self._labels[positions[valid]]
        return out

    def positions_of(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of store ids (-1 stays -1)."""
        if self.store.ids_are_positions:
            return ids.copy()
        self._forget_if_grown()
        if self._sorted_ids is None:
            self._sorted_ids = sorted_lookup(np.asarray(self.store.read_ids(), dtype=np.int64))
        return find_positions(*self._sorted_ids, ids, ids >= 0, missing_in="store")

    def _forget_if_grown(self) -> None:
        """Drop the cached labels and ids when the store's row count changed (a store
        open for appending grows between searches)."""
        n = int(self.store.ntotal)
        if self._cached_n != n:
            self._labels = None
            self._sorted_ids = None
            self._cached_n = n

    def search(self, queries: np.ndarray, k: int, *, backend: Any, num_threads: int | None,
               memory_limit: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distances int32 (nq, k), ids int64 (nq, k), row positions int64 (nq, k))."""
        if self.rows is None:
            d, ids = self.store.search(queries, k, memory_limit=memory_limit, backend=backend, num_threads=num_threads)
            return d, ids, self.positions_of(ids)
        from hashsearch.functional import knn_search

        if self._codes is None:
            self._codes = np.ascontiguousarray(self.store.read_codes()[self.rows])
        d, local = knn_search(self._codes, queries, k, nbits=self.store.nbits, backend=backend,
                              num_threads=num_threads)
        positions = np.where(local >= 0, self.rows[np.maximum(local, 0)], -1).astype(np.int64)
        return d, self.store.ids_at(positions), positions


def _open_store(store: Any) -> tuple[Any, bool]:
    """(CodeStore, opened here) for a store or a path."""
    if isinstance(store, (str, os.PathLike)):
        from hashsearch.store import CodeStore

        return CodeStore.open(store), True
    for attr in ("search", "nbits", "encoder_info", "has_labels"):
        if not hasattr(store, attr):
            raise TypeError(f"store must be a hashsearch.CodeStore or a path to one, got {type(store).__name__}")
    return store, False


def _store_sources(store: Any) -> dict[str, np.ndarray | None]:
    """Which sources a store holds: {source: rows (None for all rows)}; {} when it does not say."""
    if store.has_source and store.ntotal:
        names = [source_name(n) if str(n).lower() in _ALIASES else str(n) for n in store.source_names]
        src = np.asarray(store.read_source(), dtype=np.int64)
        present = np.unique(src)
        if present.size == 1:
            return {names[int(present[0])]: None}
        return {names[int(s)]: np.flatnonzero(src == s).astype(np.int64) for s in present}
    recorded = (store.encoder_info or {}).get("source")
    if recorded is not None and str(recorded).lower() in _ALIASES:
        return {source_name(recorded): None}
    return {}


# --------------------------------------------------------------------------- normalisation
def _as_stats(value: Any) -> dict[str, dict[str, list[float]]]:
    """Per-source pixel statistics from a mapping, a dataset path or a reader with ``.stats``."""
    if isinstance(value, (str, os.PathLike)):
        from hashsearch.data import open_dataset

        value = open_dataset(value, "train")
    stats = getattr(value, "stats", value)
    if not isinstance(stats, Mapping):
        raise TypeError(f"pixel_stats must be a mapping {{'pan': {{'mean', 'std'}}, 'ms': ...}}, a dataset path or a "
                        f"dataset with .stats, got {type(value).__name__}")
    out: dict[str, dict[str, list[float]]] = {}
    for key, entry in stats.items():
        if str(key).lower() not in _ALIASES:
            continue
        if not isinstance(entry, Mapping) or "mean" not in entry or "std" not in entry:
            raise ValueError(f"pixel_stats[{key!r}] must hold 'mean' and 'std' lists")
        out[source_name(key)] = {"mean": [float(v) for v in entry["mean"]], "std": [float(v) for v in entry["std"]]}
    return out


def _load_encoder(model: Any, device: str) -> Any:
    if isinstance(model, (str, os.PathLike)):
        try:
            from hashsearch.training.encoder import Encoder
        except ImportError as exc:
            raise RuntimeError(f"loading a model needs PyTorch: pip install 'hashsearch[train]' ({exc})") from exc
        path = Path(model)
        if path.is_dir() and not (path / "last.pt").exists():
            candidates = sorted(path.glob("*/last.pt"))
            if len(candidates) == 1:  # a demo or experiment folder holding one run
                path = candidates[0]
        return Encoder.load(path, device=device)
    for attr in ("encode", "network", "bits"):
        if not hasattr(model, attr):
            raise TypeError("model must be a hashsearch.training.Encoder or a checkpoint path / run folder, "
                            f"got {type(model).__name__}")
    return model


# --------------------------------------------------------------------------- the retriever
class Retriever:
    """Cross-source search by image over code stores.

    Args:
        model: a :class:`hashsearch.training.Encoder`, or a training checkpoint (file,
            run folder holding ``last.pt``, or a folder holding one such run).
        store: a :class:`hashsearch.CodeStore` or path holding the codes to search; a
            store with a ``source`` column may hold both sources; or a mapping
            ``{"pan": store, "ms": store}``.
        pixel_stats: the pixel normalisation applied before the network (see the
            module docstring): ``{"pan": {"mean": [...], "std": [...]}, "ms": ...}``, a
            dataset path or reader; default: the ``"pixel_stats"`` recorded in the
            model's or the store's provenance, else none.
        device: where the networks run when ``model`` is a path.
        batch_size: images per forward pass.
        backend, num_threads: search backend and kernel threads.
        memory_limit: bytes for an out-of-core store search (None: the store's default).

    Example::

        retriever = Retriever("runs/eurosat", "archive-ms.zarr")
        result = retriever.search(pan_patches, source="pan", k=10)
        result.ids, result.distances, result.labels   # (n, 10) each

    Raises:
        TypeError: a model or store of the wrong type.
        ValueError: the store's code length differs from the model's, or no store
            holds either source.
    """

    def __init__(
        self,
        model: Any,
        store: Any,
        *,
        pixel_stats: Any = None,
        device: str = "cpu",
        batch_size: int = 64,
        backend: str = "auto",
        num_threads: int | None = None,
        memory_limit: int | None = None,
    ) -> None:
        self.encoder = _load_encoder(model, device)
        self.bits = int(self.encoder.bits)
        self.batch_size = check_int(batch_size, "batch_size")
        self.backend = backend
        self.num_threads = num_threads
        self.memory_limit = memory_limit
        self._owned: list[Any] = []
        self.targets: dict[str, _Target] = {}
        unsourced: list[Any] = []
        self._any: _Target | None = None
        items: list[tuple[str | None, Any]]
        if isinstance(store, Mapping):
            items = [(source_name(key), value) for key, value in store.items()]
        else:
            items = [(None, store)]
        try:
            for key, value in items:
                opened, owned = _open_store(value)
                if owned:
                    self._owned.append(opened)
                if opened.nbits != self.bits:
                    raise ValueError(f"the store {opened.path} holds {opened.nbits}-bit codes, the model makes "
                                     f"{self.bits}-bit codes")
                held = _store_sources(opened)
                if key is not None:
                    if held and key not in held:
                        raise ValueError(f"the store given for {key!r} holds {', '.join(held)} codes")
                    held = {key: held.get(key)}
                if not held:
                    unsourced.append(opened)
                for src, rows in held.items():
                    if src in self.targets:
                        raise ValueError(f"two stores hold {src!r} codes; give one store per source")
                    self.targets[src] = _Target(opened, rows)
            if unsourced:
                if len(unsourced) > 1 or self.targets:
                    raise ValueError("a store does not record which source its codes come from; give stores as "
                                     "{'pan': ..., 'ms': ...}")
                logger.warning("the store %s does not record its source: it is searched by queries of either source",
                               unsourced[0].path)
                self._any = _Target(unsourced[0], None)
        except BaseException:
            self.close()
            raise
        self.pixel_stats = self._resolve_stats(pixel_stats)

    # ------------------------------------------------------------ setup
    def _resolve_stats(self, given: Any) -> dict[str, dict[str, list[float]]]:
        if given is not None:
            return _as_stats(given)
        recorded = (getattr(self.encoder, "info", None) or {}).get("pixel_stats")
        for target in (*self.targets.values(), *([self._any] if self._any else [])):
            recorded = recorded or (target.store.encoder_info or {}).get("pixel_stats")
        return _as_stats(recorded) if recorded else {}

    def close(self) -> None:
        """Close the stores this retriever opened from paths."""
        for store in self._owned:
            store.close()
        self._owned.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        held = {s: t.size for s, t in self.targets.items()}
        return f"Retriever(bits={self.bits}, stores={held or 'unsourced'})"

    def input_shape(self, source: str) -> tuple[int, int, int]:
        """(C, S, S) of one image of ``source`` for this model."""
        c, h, w = self.encoder.network(source_name(source)).input_shape
        return int(c), int(h), int(w)

    def target(self, source: str) -> _Target:
        """The codes a query of ``source`` searches (those of the other source)."""
        other = OTHER_SOURCE[source_name(source)]
        if other in self.targets:
            return self.targets[other]
        if self._any is not None:
            return self._any
        held = ", ".join(self.targets) or "none"
        raise ValueError(f"{source} queries search {other} codes, but the store(s) hold {held}; "
                         f"encode the {other} archive into a store (hashsearch encode --source {other})")

    # ------------------------------------------------------------ encoding
    def _prepare(self, images: Any, key: str) -> np.ndarray:
        x = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"images must be a real-valued array, got dtype {x.dtype}")
        shape = self.input_shape(key)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != shape:
            raise ValueError(f"{key} images for this model have shape (n, {', '.join(map(str, shape))}) or "
                             f"({', '.join(map(str, shape))}), got {tuple(np.shape(images))}; a larger scene can "
                             "be cut with hashsearch.retrieval.tile_image")
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise ValueError("images contain NaN or infinite values")
        stats = self.pixel_stats.get(key)
        if stats is not None:
            mean = np.asarray(stats["mean"], np.float32)
            std = np.asarray(stats["std"], np.float32)
            if mean.shape != (shape[0],) or std.shape != (shape[0],):
                raise ValueError(f"pixel_stats[{key!r}] has {mean.size} means / {std.size} stds for {shape[0]} bands")
            std = np.where(std > _STD_FLOOR, std, np.float32(1.0))
            x = (x - mean[None, :, None, None]) / std[None, :, None, None]
        self._check_units(x, key)
        return x

    def _check_units(self, x: np.ndarray, key: str) -> None:
        net = self.encoder.network(key)
        mean = getattr(net, "input_mean", None)
        std = getattr(net, "input_std", None)
        if mean is None or std is None or x.shape[0] == 0:
            return
        m = np.asarray(mean.detach().cpu() if hasattr(mean, "detach") else mean, np.float64)
        s = np.asarray(std.detach().cpu() if hasattr(std, "detach") else std, np.float64)
        seen = x.mean(axis=(0, 2, 3), dtype=np.float64)
        off = np.abs(seen - m) / np.maximum(s, _STD_FLOOR)
        if np.max(off) > _UNITS_WARNING_SIGMAS:
            logger.warning("the %s images' band means %s are %.0f standard deviations from what the network saw in "
                           "training (%s): are they in the training data's pixel units, with its normalisation "
                           "(pixel_stats / --data)?", key, np.round(seen, 3).tolist(), float(np.max(off)),
                           np.round(m, 3).tolist())

    def encode(self, images: Any, source: str) -> np.ndarray:
        """Packed codes of images of ``source``.

        Args:
            images: (n, C, S, S) or (C, S, S) array or tensor in the training data's pixel units.
            source: "pan" or "ms".

        Returns:
            uint8 (n, nbits / 8).
        """
        key = source_name(source)
        x = self._prepare(images, key)
        return self.encoder.encode(x, key, batch_size=self.batch_size)

    # ------------------------------------------------------------ searching
    def search(self, images: Any, source: str = "pan", k: int = 10) -> RetrievalResult:
        """Hash the images and find the k nearest codes of the other source.

        Args:
            images: (n, C, S, S) or (C, S, S) images of ``source`` (array or tensor, any
                real dtype) in the pixel units of the training data; C and S as the
                model's network of that source takes them (:meth:`input_shape`).
            source: "pan" or "ms" (the source of the images).
            k: results per image, >= 1.

        Returns:
            A :class:`RetrievalResult` with ``ids`` / ``distances`` (n, k) and, where
            the store records them, ``labels``, ``indices`` and ``classes``.

        Raises:
            ValueError: images of the wrong shape or with NaN, k < 1, no store of the
                other source.
            TypeError: a non-numeric array or a non-integer k.
        """
        key = source_name(source)
        k = check_int(k, "k")
        target = self.target(key)
        codes = self.encode(images, key)
        d, ids, positions = target.search(codes, k, backend=self.backend, num_threads=self.num_threads,
                                          memory_limit=self.memory_limit)
        labels = target.labels_at(positions)
        meta = target.dataset
        indices = None
        if meta.get("ids") == "sample_index":
            indices = np.where(ids >= 0, ids, -1).astype(np.int64)
        classes = tuple(str(c) for c in meta["classes"]) if meta.get("classes") else None
        db_source = OTHER_SOURCE[key] if target is not self._any else "any"
        return RetrievalResult(source=key, target=db_source, ids=ids, distances=d, codes=codes, labels=labels,
                               indices=indices, classes=classes,
                               dataset=str(meta["path"]) if meta.get("path") else None)


# --------------------------------------------------------------------------- images
def read_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a query image: a ``.npy`` array or a GeoTIFF.

    Args:
        path: ``.npy`` holding (H, W), (C, H, W) or (n, C, H, W), or a GeoTIFF
            (``.tif`` / ``.tiff``, read with rasterio: all bands, (C, H, W)).

    Returns:
        ``(array, meta)``: the array as stored (2-D becomes (1, H, W)); ``meta`` holds
        ``"path"`` and, for a GeoTIFF, ``"crs"`` and ``"transform"`` (GDAL order).

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unsupported suffix or array rank.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no image at {p}")
    meta: dict[str, Any] = {"path": str(p)}
    suffix = p.suffix.lower()
    if suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
    elif suffix in (".tif", ".tiff"):
        try:
            import rasterio
        except ImportError as exc:
            raise RuntimeError(f"reading GeoTIFFs needs rasterio: pip install 'hashsearch[data]' ({exc})") from exc
        with rasterio.open(p) as ds:
            arr = ds.read()
            meta["crs"] = ds.crs.to_string() if ds.crs else None
            meta["transform"] = list(ds.transform.to_gdal())
    else:
        raise ValueError(f"{p}: query images are .npy arrays or GeoTIFFs (.tif), got {suffix or 'no suffix'}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim not in (3, 4):
        raise ValueError(f"{p}: expected an image (H, W), (C, H, W) or a stack (n, C, H, W), got shape {arr.shape}")
    return arr, meta


def tile_image(image: np.ndarray, patch: int, *, stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut a (C, H, W) scene into square patches (row-major, whole patches only).

    Args:
        image: (C, H, W) array, H and W >= ``patch``.
        patch: patch side.
        stride: step between patches (default ``patch``: no overlap).

    Returns:
        ``(tiles, origins)``: (n, C, patch, patch) in the image's dtype and int64 (n, 2)
        (row, col) of each tile's top-left pixel. Pixels past the last whole patch are
        left out (logged).

    Raises:
        ValueError: not 3-D, or smaller than one patch.
    """
    patch = check_int(patch, "patch")
    stride = patch if stride is None else check_int(stride, "stride")
    if image.ndim != 3:
        raise ValueError(f"tile_image expects (C, H, W), got shape {image.shape}")
    _, h, w = image.shape
    if h < patch or w < patch:
        raise ValueError(f"the image is {h}x{w} pixels, smaller than the model's {patch}x{patch} patch")
    rows = range(0, h - patch + 1, stride)
    cols = range(0, w - patch + 1, stride)
    origins = np.array([(r, c) for r in rows for c in cols], dtype=np.int64)
    tiles = np.stack([image[:, r : r + patch, c : c + patch] for r, c in origins])
    left_h, left_w = h - (rows[-1] + patch), w - (cols[-1] + patch)
    if left_h or left_w:
        logger.info("tiling %dx%d into %d patches of %d: the last %d rows and %d columns are left out",
                    h, w, len(origins), patch, left_h, left_w)
    return tiles, origins
