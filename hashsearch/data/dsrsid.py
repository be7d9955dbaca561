"""Lazy reader of the released DSRSID file (the SIDHCNN paper's dual-source data set).

Format of ``DSRSID.mat`` (MATLAB v7.3, i.e. an HDF5 file behind a 512-byte MATLAB
userblock), as h5py shows it:

============================  ====================  ========  =================================
variable                      h5py shape            dtype     content
============================  ====================  ========  =================================
``PAN_IMAGES``                (N, 1, 256, 256)      uint8     GF-1 panchromatic patches, 2 m
``MUL_IMAGES``                (N, 4, 64, 64)        uint8     GF-1 multispectral patches, 8 m
``LAND_COVER_TYPES``          (1, N)                float64   class of each pair, 1..8
============================  ====================  ========  =================================

MATLAB stores arrays column-major and HDF5 row-major, so h5py reports MATLAB's
``H x W x C x N`` array reversed, as ``(N, C, W, H)``: each sample's two spatial axes
arrive swapped, and this reader transposes them back so images are upright
(``[band, row, col]``, row 0 at the top). Pairs share an index; the classes come in
contiguous blocks of 10,000 in the paper's order (:data:`DSRSID_CLASSES`).

Labels returned by the reader are **0-based** (file value minus one), indices into
:data:`DSRSID_CLASSES`.

The file is about 6 GB: it is opened once (per process) and each sample is read on
demand; only the N labels are read at open. Nothing is ever downloaded: the file is
distributed by the paper's authors (see the paper) and must be given by path, or
placed at ``$HASHSEARCH_DATA/DSRSID.mat`` or ``$HASHSEARCH_DATA/dsrsid/DSRSID.mat``.

Splits: ``split="test"`` is the standard split of the paper's public code, 625 test
pairs drawn per class with a seeded generator (:func:`hashsearch.data.split_per_class`),
``"train"`` the remaining 75,000 (the retrieval database). ``indices=`` selects any
custom subset.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np

from hashsearch._paths import data_root
from hashsearch.data._view import LabelledView, band_stats
from hashsearch.data.errors import DataNotFoundError, MalformedDataError
from hashsearch.data.splits import split_per_class

if TYPE_CHECKING:  # pragma: no cover
    import h5py

__all__ = [
    "DSRSID",
    "DSRSID_CLASSES",
    "LABEL_KEY",
    "MS_KEY",
    "PAN_KEY",
    "STANDARD_TEST_PER_CLASS",
]

logger = logging.getLogger("hashsearch")

#: Class names in the paper's order; file label ``k`` (1..8) is ``DSRSID_CLASSES[k - 1]``.
DSRSID_CLASSES: tuple[str, ...] = (
    "aquafarm",
    "cloud",
    "forest",
    "high building",
    "low building",
    "farm land",
    "river",
    "water",
)
PAN_KEY = "PAN_IMAGES"
MS_KEY = "MUL_IMAGES"
LABEL_KEY = "LAND_COVER_TYPES"
#: Test pairs drawn per class by the standard split (8 x 625 = 5,000 queries).
STANDARD_TEST_PER_CLASS = 625

_FILE_NAMES = ("DSRSID.mat", "dsrsid/DSRSID.mat")
_MAT5_MAGIC = b"MATLAB 5.0 MAT-file"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _find_in(folder: Path) -> Path | None:
    return next((folder / name for name in _FILE_NAMES if (folder / name).is_file()), None)


def _resolve(path: str | os.PathLike[str] | None) -> Path:
    if path is None:
        root = data_root()
        found = _find_in(root)
        if found is None:
            raise DataNotFoundError(
                f"DSRSID.mat not found in the data folder {root} (looked for "
                f"{', '.join(_FILE_NAMES)}). Pass the file's path, or set HASHSEARCH_DATA to the "
                "folder that holds it. The file is distributed by the SIDHCNN authors and is "
                "never downloaded by hashsearch."
            )
        return found
    p = Path(path).expanduser()
    if p.is_dir():
        found = _find_in(p)
        if found is None:
            raise DataNotFoundError(f"{p} is a folder without DSRSID.mat in it; pass the path of DSRSID.mat")
        return found
    if not p.exists():
        raise DataNotFoundError(
            f"DSRSID file not found: {p}. Pass the path of the released DSRSID.mat "
            "(MATLAB v7.3), or set HASHSEARCH_DATA to its folder and pass path=None."
        )
    return p


def _check_container(path: Path) -> None:
    """Tell apart 'not a MAT v7.3 file' cases before h5py gives a generic error."""
    with open(path, "rb") as fh:
        head = fh.read(2056)
    if head.startswith(_MAT5_MAGIC):
        raise MalformedDataError(
            f"{path} is a MATLAB v5 MAT-file; DSRSID.mat is a MATLAB v7.3 (HDF5) file. "
            "Re-save it in MATLAB with save(name, ..., '-v7.3')."
        )
    # HDF5 looks for its signature at 0 and after a userblock of 512, 1024, 2048, ... bytes.
    if not any(head[k : k + 8] == _HDF5_MAGIC for k in (0, 512, 1024, 2048)):
        raise MalformedDataError(
            f"{path} is not a MATLAB v7.3 / HDF5 file (no HDF5 signature at byte 0, 512, 1024 or 2048); "
            "expected the released DSRSID.mat"
        )


class DSRSID(LabelledView):
    """The released DSRSID file as a map-style dataset of uint8 sample dicts.

    Item ``i`` of the dataset (``0 <= i < len(ds)``) is::

        {"pan": uint8 (1, 256, 256), "ms": uint8 (4, 64, 64), "label": int (0..7), "index": int}

    where ``index`` is the pair's position in the file (stable across splits) and the
    images are upright (spatial axes transposed back from MATLAB's column-major order).
    ``indices`` and ``labels`` (0-based classes) give those of every item of the view.

    Args:
        path: ``DSRSID.mat`` or a folder holding it; ``None`` looks in
            :func:`hashsearch._paths.data_root` (``$HASHSEARCH_DATA``).
        split: ``"all"``, or ``"train"`` / ``"test"`` of the per-class seeded split.
        test_per_class: test pairs drawn per class by the split (625 in the paper).
        seed: seed of the split.
        indices: explicit file indices (a custom split); overrides ``split``.

    Raises:
        DataNotFoundError: the file is missing.
        MalformedDataError: the file is not MAT v7.3 / HDF5, lacks a variable, or a
            variable has the wrong rank, channel count, dtype, length or label values.
        ValueError: an unknown split or out-of-range indices.
    """

    classes: tuple[str, ...] = DSRSID_CLASSES

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        split: Literal["all", "train", "test"] = "all",
        *,
        test_per_class: int = STANDARD_TEST_PER_CLASS,
        seed: int = 0,
        indices: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        self.path = _resolve(path)
        self.seed = seed
        self.test_per_class = test_per_class
        self._h5: h5py.File | None = None
        self._pid: int | None = None
        self._vars: dict[str, h5py.Dataset] = {}
        self._all_labels = self._validate()

        def standard_split(name: str) -> np.ndarray:
            train, test = self.split_indices(test_per_class=test_per_class, seed=seed)
            return train if name == "train" else test

        self._select(split, indices, standard_split)

    # ------------------------------------------------------------------ file access
    def _file(self) -> h5py.File:
        import h5py

        if self._h5 is None or self._pid != os.getpid():
            # h5py handles must not cross a fork: reopen in each DataLoader worker.
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
            self._vars = {}
        return self._h5

    def _var(self, key: str) -> h5py.Dataset:
        """The handle of variable ``key``, looked up once per open file (not per item)."""
        f = self._file()
        if key not in self._vars:
            self._vars[key] = f[key]
        return self._vars[key]

    def _validate(self) -> np.ndarray:
        import h5py

        _check_container(self.path)
        try:
            f = self._file()
        except OSError as exc:
            raise MalformedDataError(f"{self.path} could not be opened as HDF5 (MAT v7.3): {exc}") from exc
        missing = [k for k in (PAN_KEY, MS_KEY, LABEL_KEY) if k not in f]
        if missing:
            raise MalformedDataError(
                f"{self.path} lacks {', '.join(missing)}; a DSRSID file holds {PAN_KEY}, {MS_KEY} "
                f"and {LABEL_KEY} (found: {', '.join(sorted(f.keys())) or 'nothing'})"
            )
        pan, ms, lab = f[PAN_KEY], f[MS_KEY], f[LABEL_KEY]
        for key, ds, channels in ((PAN_KEY, pan, 1), (MS_KEY, ms, None)):
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 4:
                raise MalformedDataError(
                    f"{key} in {self.path} must be a 4-D array (h5py shape (N, C, W, H)), got "
                    f"{getattr(ds, 'shape', type(ds).__name__)}"
                )
            if ds.dtype != np.uint8:
                raise MalformedDataError(f"{key} in {self.path} must be uint8, got {ds.dtype}")
            if channels is not None and ds.shape[1] != channels:
                raise MalformedDataError(f"{key} in {self.path} must have {channels} band, got shape {ds.shape}")
        n = pan.shape[0]
        if ms.shape[0] != n:
            raise MalformedDataError(f"{PAN_KEY} has {n} samples but {MS_KEY} has {ms.shape[0]}; pairs share an index")
        if not isinstance(lab, h5py.Dataset) or lab.ndim > 2 or lab.size != n or (lab.ndim == 2 and 1 not in lab.shape):
            raise MalformedDataError(
                f"{LABEL_KEY} in {self.path} must have h5py shape (1, {n}), got {getattr(lab, 'shape', None)}"
            )
        values = np.asarray(lab[()], dtype=np.float64).reshape(-1)
        k = len(self.classes)
        if values.size and (
            not np.all(np.isfinite(values))
            or not np.all(values == np.round(values))
            or values.min() < 1
            or values.max() > k
        ):
            bad = values[~np.isin(values, np.arange(1, k + 1))][:5]
            raise MalformedDataError(f"{LABEL_KEY} in {self.path} must hold integers 1..{k}; found e.g. {bad.tolist()}")
        logger.debug("opened DSRSID %s: %d pairs, pan %s, ms %s", self.path, n, pan.shape, ms.shape)
        return values.astype(np.int64) - 1

    def close(self) -> None:
        """Close the HDF5 handle (it is reopened on the next read)."""
        if self._h5 is not None:
            try:
                self._h5.close()
            finally:
                self._h5 = None
                self._vars = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"] = None
        state["_pid"] = None
        state["_vars"] = {}
        return state

    # ------------------------------------------------------------------ dataset API
    @property
    def pan_shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) of one upright PAN image."""
        _, c, w, h = self._var(PAN_KEY).shape
        return (c, h, w)

    @property
    def ms_shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) of one upright MS image."""
        _, c, w, h = self._var(MS_KEY).shape
        return (c, h, w)

    def split_indices(
        self, *, test_per_class: int = STANDARD_TEST_PER_CLASS, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """The seeded per-class split of the whole file: ``(train, test)`` file indices (int64)."""
        return split_per_class(self._all_labels, test_per_class=test_per_class, seed=seed)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = self._file_index(i)
        pan = np.ascontiguousarray(self._var(PAN_KEY)[j].transpose(0, 2, 1))
        ms = np.ascontiguousarray(self._var(MS_KEY)[j].transpose(0, 2, 1))
        return {"pan": pan, "ms": ms, "label": int(self._all_labels[j]), "index": j}

    def _read_images(self, key: str, file_idx: np.ndarray) -> np.ndarray:
        """Upright images (B, C, H, W) of variable ``key`` at file indices ``file_idx``, in
        that order (one sorted HDF5 selection)."""
        ds = self._var(key)
        uniq, inverse = np.unique(file_idx, return_inverse=True)
        block = ds[uniq] if uniq.size else np.empty((0, *ds.shape[1:]), np.uint8)
        return np.ascontiguousarray(block[inverse].transpose(0, 1, 3, 2))

    def read(self, items: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Read several items at once (faster than a loop: one sorted HDF5 selection).

        Args:
            items: positions in this view, int array (B,).

        Returns:
            ``{"pan": uint8 (B, 1, H, W), "ms": uint8 (B, 4, h, w), "label": int64 (B,),
            "index": int64 (B,)}`` in the order of ``items``.
        """
        pos = np.asarray(items, dtype=np.int64).reshape(-1)
        if pos.size and (pos.min() < -len(self) or pos.max() >= len(self)):
            raise IndexError(f"items out of range for a dataset of {len(self)} samples")
        file_idx = self._indices[pos]
        return {
            "pan": self._read_images(PAN_KEY, file_idx),
            "ms": self._read_images(MS_KEY, file_idx),
            "label": self._all_labels[file_idx],
            "index": file_idx,
        }

    def compute_stats(
        self, *, max_samples: int = 2048, seed: int = 0, batch: int = 256
    ) -> dict[str, dict[str, list[float]]]:
        """Per-band mean and standard deviation of this view, from a seeded sample.

        Args:
            max_samples: at most this many items are read (all when the view is smaller).
            seed: seed of the sample.
            batch: items read per HDF5 selection.

        Returns:
            ``{"pan": {"mean": [..], "std": [..]}, "ms": {...}}``, one float per band,
            in the pixel units of the file (0..255).
        """
        n = len(self)
        pos = np.arange(n) if n <= max_samples else \
            np.sort(np.random.default_rng(seed).choice(n, max_samples, replace=False))
        file_idx = self._indices[pos]
        return {
            name: band_stats(
                (self._read_images(key, file_idx[start : start + batch]) for start in range(0, pos.size, batch)),
                channels,
            )
            for name, key, channels in (("pan", PAN_KEY, self.pan_shape[0]), ("ms", MS_KEY, self.ms_shape[0]))
        }

    def __repr__(self) -> str:
        return f"DSRSID(path={str(self.path)!r}, split={self.split!r}, len={len(self)})"
