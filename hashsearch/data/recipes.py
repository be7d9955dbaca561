"""Recipes that turn the real data in ``$HASHSEARCH_DATA`` into dual-source datasets.

Each recipe reads one folder of ``hashsearch._paths.data_root()`` (``$HASHSEARCH_DATA``,
default ``../shared/data``), never downloads anything, and writes a
:mod:`hashsearch.data.dual` Zarr dataset with a stored, seeded train/test split.
CLI: ``hashsearch dataset build NAME --out PATH``.

``nc-landsat7`` (class-level, real PAN sensor)
    Landsat-7 ETM+ over North Carolina. PAN = band 8 (14.25 m), MS = bands 1, 2, 3, 4
    (blue, green, red, NIR; 28.5 m), so the native PAN:MS ratio is 2 (``ratio=2``:
    32 x 32 PAN / 16 x 16 MS patches by default). ``ratio=4`` averages MS over 2 x 2
    more pixels (57 m, GF-1's 4:1 ratio; 64 x 64 PAN / 16 x 16 MS by default). Labels
    come from ``landclass96.tif`` (1996 land use, 28.5 m) sampled at each PAN pixel
    centre through the geotransforms: its origin is offset from the bands' by
    (-12.5 m, +14.25 m), a fraction of a pixel, so pixel indices would be wrong. A
    patch keeps the majority class if it covers at least ``min_purity`` (0.6) of the
    patch; classes are very unbalanced (mostly forest and developed). Split: a seeded
    ``test_fraction`` (0.2) of each class.

``eurosat-ms`` (class-level, PAN derived from the MS bands)
    469 EuroSAT Sentinel-2 L1C tiles (64 x 64, 13 bands, uint16, ~10 m) in 10 class
    folders. Sentinel-2 has no PAN band, so the pair is derived physically:
    PAN (1 x 64 x 64, 10 m) = weighted sum of B02, B03, B04, B08 with
    :data:`EUROSAT_PAN_WEIGHTS` = (0.169, 0.191, 0.303, 0.337). The weights model a
    flat PAN response over GF-1's PAN range 450-900 nm: each band stands for the part
    of the range nearer its centre (492, 560, 665, 833 nm) than any other band's,
    i.e. 76, 86, 137 and 151 nm of the 450 nm. MS (4 x 16 x 16, 40 m) = B02, B03, B04,
    B08 averaged over 4 x 4 pixels: GF-1's 4:1 ratio and band set. Values stay uint16
    (TOA reflectance x 10000, rounded half up). Labels are the folders (sorted);
    split: a seeded ``test_fraction`` (0.2) of each class. Files are checked against
    ``manifest.json``'s md5 sums when it is present.

``fusebox-landsat7`` (instance-level: a PAN patch must find its own MS patch)
    39 FuseBox Landsat-7 crops: ``N_ms.mat`` ``cropped_im`` (400, 400, 6) uint8, 30 m,
    bands red, green, blue, NIR, SWIR1, SWIR2 (red first!); ``N_pan.mat``
    ``cropped_gray`` (800, 800) uint8, 15 m (read with ``scipy.io.loadmat``). MS keeps
    blue, green, red, NIR (reordered to GF-1's order) by default. The crops carry no
    geotransform; the PAN crop is offset from the MS crop by one PAN pixel along both
    axes (measured on all 39 scenes: MS pixel (i, j) matches PAN pixels
    (2i-1 .. 2i, 2j-1 .. 2j) best, correlation ~0.9 against ~0.85 unshifted), which
    ``pan_shift=(-1, -1)`` corrects. Patches: 64 x 64 PAN / 32 x 32 MS, stride 64,
    144 per scene. Each pair's label is its own index (task "instance"); ``scene``
    holds the scene. Split: whole groups of scenes go to test (seeded
    ``test_fraction`` 0.2 of the groups), where a group joins scenes whose crops
    overlap on the ground (``locations.txt``: scenes 10/11, 33/34 and 36/39 share
    pixels), so no test ground is seen in training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hashsearch._paths import data_root
from hashsearch.data.dual import DualDatasetWriter, split_array
from hashsearch.data.errors import DataNotFoundError, MalformedDataError
from hashsearch.data.splits import split_by_group, split_per_class
from hashsearch.data.tiler import Scene, TileConfig, _crs_text, tile_scenes

__all__ = [
    "EUROSAT_BANDS",
    "EUROSAT_PAN_WEIGHTS",
    "FUSEBOX_BANDS",
    "FUSEBOX_PAN_SHIFT",
    "NC_LANDCLASS96",
    "RECIPES",
    "build_eurosat_ms",
    "build_fusebox_landsat7",
    "build_nc_landsat7",
    "build_recipe",
    "eurosat_pair",
    "fusebox_pairs",
    "recipe_dir",
]

logger = logging.getLogger("hashsearch")

#: landclass96 raw values and names (0 is nodata).
NC_LANDCLASS96: dict[int, str] = {
    1: "developed", 2: "agriculture", 3: "herbaceous", 4: "shrubland", 5: "forest", 6: "water", 7: "sediment",
}
#: EuroSAT band order in its GeoTIFFs.
EUROSAT_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A",
)
#: Weights of B02, B03, B04, B08 in the derived PAN band (see the module docstring).
EUROSAT_PAN_WEIGHTS: tuple[float, float, float, float] = (0.169, 0.191, 0.303, 0.337)
_EUROSAT_MS = ("B02", "B03", "B04", "B08")
#: FuseBox MS band order in ``cropped_im``.
FUSEBOX_BANDS: tuple[str, ...] = ("red", "green", "blue", "nir", "swir1", "swir2")
#: PAN offset (rows, cols, in PAN pixels) that registers FuseBox PAN crops to their MS crops.
FUSEBOX_PAN_SHIFT: tuple[int, int] = (-1, -1)


def recipe_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of data set ``name`` under the data root, or an actionable error.

    Raises:
        DataNotFoundError: the folder does not exist; the message names the path and
            the ``HASHSEARCH_DATA`` variable.
    """
    base = Path(root).expanduser() if root is not None else data_root()
    folder = base / name
    if not folder.is_dir():
        source = "the data_root argument" if root is not None else (
            "$HASHSEARCH_DATA" if os.environ.get("HASHSEARCH_DATA") else "the default ../shared/data"
        )
        raise DataNotFoundError(
            f"the {name!r} data is not at {folder} (data root {base}, from {source}). Set HASHSEARCH_DATA "
            f"to the folder that holds {name}/ (or pass --data-root). hashsearch never downloads data."
        )
    return folder


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataNotFoundError(f"{what} is missing: {path}")
    return path


# --------------------------------------------------------------------------- nc-landsat7
def build_nc_landsat7(
    out: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    ratio: int = 2,
    patch_size: int | None = None,
    stride: int | None = None,
    min_purity: float = 0.6,
    test_fraction: float = 0.2,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Build the nc-landsat7 dataset (see the module docstring).

    Args:
        out: Zarr group to write.
        root: data root (default ``$HASHSEARCH_DATA``).
        ratio: 2 (native) or 4 (MS block-averaged 2 x 2).
        patch_size: PAN patch side (default 16 * ratio: 16 x 16 MS pixels).
        stride: PAN step (default ``patch_size``).
        min_purity: majority-class share a patch needs.
        test_fraction: fraction of each class in the test split.
        seed: split seed.
        overwrite: replace ``out``.
        progress: tqdm bars.

    Returns:
        The dataset path.
    """
    if ratio not in (2, 4):
        raise ValueError(f"nc-landsat7 supports ratio 2 (native) or 4 (MS averaged 2x2), got {ratio}")
    folder = recipe_dir("nc-landsat7", root)
    pan = _need(folder / "lsat7_2000_80.tif", "nc-landsat7 PAN band 8")
    ms = [_need(folder / f"lsat7_2000_{b}0.tif", f"nc-landsat7 band {b}") for b in (1, 2, 3, 4)]
    labels = _need(folder / "landclass96.tif", "nc-landsat7 land-use labels")
    config = TileConfig(
        patch_size=patch_size or 16 * ratio,
        stride=stride,
        target_ratio=ratio,
        min_purity=min_purity,
        ms_band_names=["blue", "green", "red", "nir"],
        classes=NC_LANDCLASS96,
        test_fraction=test_fraction,
        split_seed=seed,
    )
    scene = Scene(pan=pan, ms=ms, labels=labels, name="lsat7_2000")
    return tile_scenes([scene], out, config, overwrite=overwrite, progress=progress,
                       provenance={"recipe": "nc-landsat7", "recipe_options": {"ratio": ratio}})


# --------------------------------------------------------------------------- eurosat-ms
def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def eurosat_pair(tile: np.ndarray, weights: Sequence[float] = EUROSAT_PAN_WEIGHTS) -> tuple[np.ndarray, np.ndarray]:
    """Derive a PAN / MS pair from one EuroSAT tile.

    Args:
        tile: uint16 (13, H, W), EuroSAT band order; H and W multiples of 4.
        weights: weights of B02, B03, B04, B08 in the PAN band.

    Returns:
        ``(pan, ms)``: uint16 (1, H, W) and uint16 (4, H/4, W/4), rounded half up.
    """
    if tile.ndim != 3 or tile.shape[0] != len(EUROSAT_BANDS):
        raise MalformedDataError(f"a EuroSAT tile must be ({len(EUROSAT_BANDS)}, H, W), got {tile.shape}")
    h, w = tile.shape[1:]
    if h % 4 or w % 4:
        raise MalformedDataError(f"EuroSAT tile sides must be multiples of 4, got {h} x {w}")
    bands = tile[[EUROSAT_BANDS.index(b) for b in _EUROSAT_MS]].astype(np.float64)
    wts = np.asarray(weights, dtype=np.float64)
    if wts.shape != (4,):
        raise ValueError(f"weights must be 4 numbers (B02, B03, B04, B08), got {weights!r}")
    pan = np.floor(np.tensordot(wts, bands, axes=1) + 0.5)[None]
    ms = np.floor(bands.reshape(4, h // 4, 4, w // 4, 4).mean(axis=(2, 4)) + 0.5)
    limit = np.iinfo(np.uint16).max
    return np.clip(pan, 0, limit).astype(np.uint16), np.clip(ms, 0, limit).astype(np.uint16)


def build_eurosat_ms(
    out: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    pan_weights: Sequence[float] = EUROSAT_PAN_WEIGHTS,
    test_fraction: float = 0.2,
    seed: int = 0,
    verify: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Build the eurosat-ms dataset (see the module docstring).

    Args:
        out: Zarr group to write.
        root: data root (default ``$HASHSEARCH_DATA``).
        pan_weights: weights of B02, B03, B04, B08 in the PAN band.
        test_fraction: fraction of each class in the test split.
        seed: split seed.
        verify: check files against ``manifest.json``'s md5 sums.
        overwrite: replace ``out``.
        progress: tqdm bar.

    Returns:
        The dataset path.
    """
    import rasterio
    from tqdm.auto import tqdm

    folder = recipe_dir("eurosat-ms", root)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DataNotFoundError(f"no class folders in {folder}")
    expected: dict[str, str] = {}
    manifest = folder / "manifest.json"
    if verify and manifest.exists():
        expected = {e["file"]: e["md5"] for e in json.loads(manifest.read_text())}

    def key(p: Path) -> tuple[str, int, str]:
        stem = p.stem.rsplit("_", 1)
        return (stem[0], int(stem[1]) if len(stem) == 2 and stem[1].isdigit() else -1, p.name)

    files = [(k, f) for k, c in enumerate(classes) for f in sorted((folder / c).glob("*.tif"), key=key)]
    if not files:
        raise DataNotFoundError(f"no .tif tiles in the class folders of {folder}")
    labels = np.array([k for k, _ in files], dtype=np.int64)
    split = split_array(labels.size, *split_per_class(labels, test_fraction=test_fraction, seed=seed))

    scenes: list[dict[str, Any]] = []
    with DualDatasetWriter(out, pan_shape=(1, 64, 64), ms_shape=(4, 16, 16), pan_dtype=np.uint16,
                           ms_dtype=np.uint16, overwrite=overwrite) as writer:
        for i, (k, path) in enumerate(tqdm(files, desc="eurosat-ms", unit="tile", disable=not progress)):
            rel = f"{path.parent.name}/{path.name}"
            if expected:
                if rel not in expected:
                    raise MalformedDataError(f"{rel} is not listed in {manifest}")
                if _md5(path) != expected[rel]:
                    raise MalformedDataError(f"{path} does not match its md5 in {manifest}; the copy is damaged")
            with rasterio.open(path) as ds:
                tile = ds.read()
                if tile.shape != (13, 64, 64) or tile.dtype != np.uint16:
                    raise MalformedDataError(f"{path}: expected uint16 (13, 64, 64) bands, got {tile.dtype} {tile.shape}")
                bounds = np.array([list(ds.bounds)], dtype=np.float64)
                crs = _crs_text(ds.crs) if ds.crs else None
            pan, ms = eurosat_pair(tile, pan_weights)
            writer.append(pan[None], ms[None], [k], bounds=bounds, scene=i,
                          pan_origin=np.zeros((1, 2), np.int64))
            scenes.append({"name": path.stem, "file": rel, "crs": crs})
        return writer.finalize(
            classes=classes, task="class", split=split,
            pan_bands=["pan (0.169 B02 + 0.191 B03 + 0.303 B04 + 0.337 B08)"
                       if tuple(pan_weights) == EUROSAT_PAN_WEIGHTS else f"pan (weights {list(pan_weights)})"],
            ms_bands=list(_EUROSAT_MS), pan_pixel_size=[10.0, 10.0], ms_pixel_size=[40.0, 40.0], ratio=4,
            crs=None, scenes=scenes,
            splits={"rule": "per-class", "test_fraction": test_fraction, "seed": seed},
            provenance={"recipe": "eurosat-ms", "source": str(folder),
                        "recipe_options": {"pan_weights": list(pan_weights), "verified_md5": bool(expected)}},
        )


# --------------------------------------------------------------------------- fusebox-landsat7
def _fusebox_locations(folder: Path, n: int) -> list[dict[str, Any]]:
    """The crop of scene k (1-based) is entry k - 1 (from ``locations.txt``); at least ``n``
    entries, ``{}`` where the file says nothing."""
    path = folder / "locations.txt"
    out: list[dict[str, Any]] = []
    if path.exists():
        for line in path.read_text().strip().splitlines():
            parts = [p.strip() for p in line.split(",")]
            out.append({"path_row": parts[0], "date": parts[1], "x": int(parts[2]), "y": int(parts[3]),
                        "width": int(parts[4]), "height": int(parts[5])})
    return out + [{} for _ in range(n - len(out))]


def _overlap_groups(locations: list[dict[str, Any]]) -> np.ndarray:
    """Group ids joining scenes whose crops overlap (same path/row and date)."""
    n = len(locations)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            a, b = locations[i], locations[j]
            if not a or not b or (a["path_row"], a["date"]) != (b["path_row"], b["date"]):
                continue
            ox = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
            oy = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
            if ox > 0 and oy > 0:
                parent[find(j)] = find(i)
    roots = [find(i) for i in range(n)]
    _, ids = np.unique(roots, return_inverse=True)
    return ids.astype(np.int64)


def _loadmat_var(path: Path, var: str) -> np.ndarray:
    import scipy.io

    try:
        content = scipy.io.loadmat(path)
    except (ValueError, NotImplementedError, OSError) as exc:
        raise MalformedDataError(f"{path} could not be read as a MATLAB v5 file: {exc}") from exc
    if var not in content:
        raise MalformedDataError(f"{path} has no variable {var!r} (found {sorted(k for k in content if not k.startswith('__'))})")
    return np.asarray(content[var])


def fusebox_pairs(
    pan: np.ndarray, ms: np.ndarray, *, patch_size: int, stride: int, pan_shift: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut registered pairs from one FuseBox scene (ratio 2).

    MS patch ``(i, j)`` (top-left MS pixel, side ``q = patch_size / 2``) pairs with the PAN
    patch whose top-left PAN pixel is ``(2 i + pan_shift[0], 2 j + pan_shift[1])``.

    Args:
        pan: (Hp, Wp) PAN image.
        ms: (C, Hm, Wm) MS image, ``Hp = 2 Hm``.
        patch_size: PAN patch side (even).
        stride: PAN step (even).
        pan_shift: PAN offset in PAN pixels.

    Returns:
        ``(pan_patches (B, 1, P, P), ms_patches (B, C, P/2, P/2), pan_origin int64 (B, 2))``.
    """
    if patch_size % 2 or stride % 2:
        raise ValueError(f"patch_size and stride must be even (PAN:MS ratio 2), got {patch_size}, {stride}")
    if pan.shape != (2 * ms.shape[1], 2 * ms.shape[2]):
        raise MalformedDataError(f"PAN {pan.shape} is not twice MS {ms.shape[1:]}")
    q, sq = patch_size // 2, stride // 2
    dr, dc = pan_shift

    def starts(ms_len: int, pan_len: int, d: int) -> list[int]:
        first = max(0, math.ceil(-d / 2))  # smallest i with 2 i + d >= 0
        return [i for i in range(first, ms_len - q + 1, sq) if 2 * i + d + patch_size <= pan_len]

    rows, cols = starts(ms.shape[1], pan.shape[0], dr), starts(ms.shape[2], pan.shape[1], dc)
    pans, mss, origins = [], [], []
    for i in rows:
        for j in cols:
            r, c = 2 * i + dr, 2 * j + dc
            pans.append(pan[None, r : r + patch_size, c : c + patch_size])
            mss.append(ms[:, i : i + q, j : j + q])
            origins.append((r, c))
    return np.stack(pans), np.stack(mss), np.asarray(origins, dtype=np.int64)


def build_fusebox_landsat7(
    out: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    patch_size: int = 64,
    stride: int | None = None,
    ms_bands: Sequence[str] = ("blue", "green", "red", "nir"),
    pan_shift: tuple[int, int] = FUSEBOX_PAN_SHIFT,
    scenes: Sequence[int] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Build the fusebox-landsat7 dataset (see the module docstring).

    Args:
        out: Zarr group to write.
        root: data root (default ``$HASHSEARCH_DATA``).
        patch_size: PAN patch side (MS side is half).
        stride: PAN step (default ``patch_size``).
        ms_bands: MS bands kept, by name (:data:`FUSEBOX_BANDS`), in the order wanted.
        pan_shift: PAN offset (rows, cols) registering PAN to MS; (0, 0) disables it.
        scenes: scene numbers (1-based, as in the file names) to use; default all.
        test_fraction: fraction of the scene groups in the test split.
        seed: split seed.
        overwrite: replace ``out``.
        progress: tqdm bar.

    Returns:
        The dataset path.
    """
    from tqdm.auto import tqdm

    folder = recipe_dir("fusebox-landsat7", root)
    cropped = _need(folder / "cropped", "fusebox-landsat7 cropped/ folder")
    numbers = sorted(int(p.name.split("_")[0]) for p in cropped.glob("*_ms.mat"))
    if not numbers:
        raise DataNotFoundError(f"no N_ms.mat files in {cropped}")
    if scenes is not None:
        absent = sorted(set(scenes) - set(numbers))
        if absent:
            raise DataNotFoundError(f"fusebox-landsat7 scene(s) {absent} not in {cropped} (found 1..{max(numbers)})")
        numbers = sorted(set(int(n) for n in scenes))
    unknown = [b for b in ms_bands if b not in FUSEBOX_BANDS]
    if unknown or not ms_bands:
        raise ValueError(f"ms_bands must be names from {FUSEBOX_BANDS}, got {list(ms_bands)}")
    band_idx = [FUSEBOX_BANDS.index(b) for b in ms_bands]
    stride = stride or patch_size
    locations = _fusebox_locations(folder, max(numbers))
    groups_all = _overlap_groups(locations)

    scene_meta: list[dict[str, Any]] = []
    q = patch_size // 2
    with DualDatasetWriter(out, pan_shape=(1, patch_size, patch_size), ms_shape=(len(band_idx), q, q),
                           pan_dtype=np.uint8, ms_dtype=np.uint8, overwrite=overwrite) as writer:
        for k, n in enumerate(tqdm(numbers, desc="fusebox-landsat7", unit="scene", disable=not progress)):
            ms = _loadmat_var(_need(cropped / f"{n}_ms.mat", f"scene {n} MS"), "cropped_im")
            pan = _loadmat_var(_need(cropped / f"{n}_pan.mat", f"scene {n} PAN"), "cropped_gray")
            if ms.ndim != 3 or ms.shape[2] != len(FUSEBOX_BANDS) or pan.ndim != 2:
                raise MalformedDataError(f"scene {n}: expected MS (H, W, 6) and PAN (2H, 2W), got {ms.shape}, {pan.shape}")
            ms_chw = np.ascontiguousarray(ms.transpose(2, 0, 1)[band_idx])
            pans, mss, origins = fusebox_pairs(pan, ms_chw, patch_size=patch_size, stride=stride, pan_shift=pan_shift)
            writer.append(pans, mss, np.zeros(len(pans), np.int64), scene=k, pan_origin=origins)
            scene_meta.append({"name": f"{n}", "ms": f"cropped/{n}_ms.mat", "pan": f"cropped/{n}_pan.mat",
                           "crs": None, "pairs": len(pans), "group": int(groups_all[n - 1]),
                           **locations[n - 1]})
        pairs = len(writer)
        group_of_sample = np.repeat([m["group"] for m in scene_meta], [m["pairs"] for m in scene_meta])
        split = split_array(pairs, *split_by_group(group_of_sample, test_fraction=test_fraction, seed=seed))
        return writer.finalize(
            classes=None, task="instance", labels=np.arange(pairs, dtype=np.int64), split=split,
            pan_bands=["pan"], ms_bands=list(ms_bands), pan_pixel_size=[15.0, 15.0], ms_pixel_size=[30.0, 30.0],
            ratio=2, crs=None, scenes=scene_meta,
            splits={"rule": "by scene group (overlapping crops share a group)", "test_fraction": test_fraction,
                    "seed": seed},
            provenance={"recipe": "fusebox-landsat7", "source": str(folder),
                        "recipe_options": {"pan_shift": list(pan_shift), "patch_size": patch_size, "stride": stride}},
        )


# --------------------------------------------------------------------------- dispatch
RECIPES: dict[str, Callable[..., Path]] = {
    "nc-landsat7": build_nc_landsat7,
    "eurosat-ms": build_eurosat_ms,
    "fusebox-landsat7": build_fusebox_landsat7,
}


def build_recipe(name: str, out: str | os.PathLike[str], **options: Any) -> Path:
    """Build the named recipe's dataset at ``out``.

    Args:
        name: one of :data:`RECIPES` ("nc-landsat7", "eurosat-ms", "fusebox-landsat7").
        out: Zarr group to write.
        **options: the recipe's keyword arguments (``root``, ``overwrite``, ``seed``, ...).

    Returns:
        The dataset path.

    Raises:
        ValueError: unknown recipe name.
        DataNotFoundError: the data is not under the data root.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; one of {', '.join(RECIPES)}")
    start = time.perf_counter()
    path = RECIPES[name](out, **options)
    logger.info("recipe %s built %s in %.1f s", name, path, time.perf_counter() - start)
    return path
