"""Recipe ``fusebox-landsat7``: instance-level pairs (a PAN patch must find its own MS patch).

39 FuseBox Landsat-7 crops: ``N_ms.mat`` ``cropped_im`` (400, 400, 6) uint8, 30 m,
bands red, green, blue, NIR, SWIR1, SWIR2 (red first!); ``N_pan.mat``
``cropped_gray`` (800, 800) uint8, 15 m (read with ``scipy.io.loadmat``). MS keeps
blue, green, red, NIR (reordered to GF-1's order) by default. The crops carry no
geotransform; the PAN crop is offset from the MS crop by one PAN pixel along both
axes (measured on all 39 scenes with
:func:`~hashsearch.data.recipes._base.registration_scores`: MS pixel (i, j) matches
PAN pixels (2i-1 .. 2i, 2j-1 .. 2j) best, correlation ~0.9 against ~0.85
unshifted), which ``pan_shift=(-1, -1)`` corrects. Patches: 64 x 64 PAN / 32 x 32 MS,
stride 64, 144 per scene. Each pair's label is its own index (task "instance");
``scene`` holds the scene. Split: whole groups of scenes go to test (seeded
``test_fraction`` 0.2 of the groups), where a group joins scenes whose crops overlap
on the ground (``locations.txt``: scenes 10/11, 33/34 and 36/39 share pixels), so no
test ground is seen in training.

Imports: :mod:`hashsearch.data.dual`, ``splits``, ``_io`` and the recipes' ``_base``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hashsearch.data._io import load_mat
from hashsearch.data.dual import DualDatasetWriter, split_array
from hashsearch.data.errors import DataNotFoundError, MalformedDataError
from hashsearch.data.recipes._base import Recipe, RecipeConfig, cut_pairs, need, option, recipe_dir
from hashsearch.data.splits import split_by_group

__all__ = ["FUSEBOX_BANDS", "FUSEBOX_PAN_SHIFT", "RECIPE", "FuseboxConfig", "build_fusebox_landsat7",
           "fusebox_pairs"]

#: FuseBox MS band order in ``cropped_im``.
FUSEBOX_BANDS: tuple[str, ...] = ("red", "green", "blue", "nir", "swir1", "swir2")
#: PAN offset (rows, cols, in PAN pixels) that registers FuseBox PAN crops to their MS crops.
FUSEBOX_PAN_SHIFT: tuple[int, int] = (-1, -1)


@dataclass
class FuseboxConfig(RecipeConfig):
    """Options of ``fusebox-landsat7`` (``test_fraction``: of the scene groups)."""

    test_fraction: float = option(0.2, "Fraction of the scene groups (overlapping crops share one) put in test.")
    patch_size: int = option(64, "PAN patch side (even; the MS side is half).")
    stride: int | None = option(None, "Step between patches in PAN pixels (default: the patch size).")
    ms_bands: tuple[str, ...] = option(("blue", "green", "red", "nir"),
                                       f"MS bands kept, by name, in this order (from {', '.join(FUSEBOX_BANDS)}).")
    pan_shift: tuple[int, int] = option(FUSEBOX_PAN_SHIFT,
                                        "PAN offset (rows, cols) registering PAN to MS; 0,0 disables it.")
    scenes: tuple[int, ...] | None = option(None, "Scene numbers (1-based, as in the file names) (default: all 39).")

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [b for b in self.ms_bands if b not in FUSEBOX_BANDS]
        if unknown or not self.ms_bands:
            raise ValueError(f"ms_bands must be names from {FUSEBOX_BANDS}, got {list(self.ms_bands)}")
        if len(self.pan_shift) != 2:
            raise ValueError(f"pan_shift must be two integers (rows, cols), got {self.pan_shift!r}")


def fusebox_pairs(
    pan: np.ndarray, ms: np.ndarray, *, patch_size: int, stride: int, pan_shift: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut registered pairs from one FuseBox scene (ratio 2): :func:`cut_pairs` with ``ratio=2``.

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
    return cut_pairs(pan, ms, ratio=2, patch_size=patch_size, stride=stride, pan_shift=pan_shift)


def _fusebox_locations(folder: Path, n: int) -> list[dict[str, Any]]:
    """The crop of scene k (1-based) is entry k - 1 (from ``locations.txt``); at least ``n``
    entries, ``{}`` where the file says nothing."""
    path = folder / "locations.txt"
    out: list[dict[str, Any]] = []
    if path.exists():
        for line in path.read_text().strip().splitlines():
            parts = [p.strip() for p in line.split(",")]
            try:
                out.append({"path_row": parts[0], "date": parts[1], "x": int(parts[2]), "y": int(parts[3]),
                            "width": int(parts[4]), "height": int(parts[5])})
            except (IndexError, ValueError) as exc:
                raise MalformedDataError(f"{path}: line {line!r} is not 'path_row, date, x, y, width, height'") from exc
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


def _build(out: Path, config: FuseboxConfig, *, root: str | os.PathLike[str] | None, overwrite: bool,
           progress: bool) -> Path:
    from tqdm.auto import tqdm

    folder = recipe_dir("fusebox-landsat7", root)
    cropped = need(folder / "cropped", "fusebox-landsat7 cropped/ folder")
    numbers = sorted(int(p.name.split("_")[0]) for p in cropped.glob("*_ms.mat"))
    if not numbers:
        raise DataNotFoundError(f"no N_ms.mat files in {cropped}")
    if config.scenes is not None:
        absent = sorted(set(config.scenes) - set(numbers))
        if absent:
            raise DataNotFoundError(f"fusebox-landsat7 scene(s) {absent} not in {cropped} (found 1..{max(numbers)})")
        numbers = sorted({int(n) for n in config.scenes})
    band_idx = [FUSEBOX_BANDS.index(b) for b in config.ms_bands]
    patch_size = config.patch_size
    stride = config.stride or patch_size
    pan_shift = (int(config.pan_shift[0]), int(config.pan_shift[1]))
    locations = _fusebox_locations(folder, max(numbers))
    groups_all = _overlap_groups(locations)

    scene_meta: list[dict[str, Any]] = []
    q = patch_size // 2
    with DualDatasetWriter(out, pan_shape=(1, patch_size, patch_size), ms_shape=(len(band_idx), q, q),
                           pan_dtype=np.uint8, ms_dtype=np.uint8, overwrite=overwrite) as writer:
        for k, n in enumerate(tqdm(numbers, desc="fusebox-landsat7", unit="scene", disable=not progress)):
            ms = load_mat(cropped / f"{n}_ms.mat", ["cropped_im"], f"fusebox-landsat7 scene {n} MS")["cropped_im"]
            pan = load_mat(cropped / f"{n}_pan.mat", ["cropped_gray"],
                           f"fusebox-landsat7 scene {n} PAN")["cropped_gray"]
            if ms.ndim != 3 or ms.shape[2] != len(FUSEBOX_BANDS) or pan.ndim != 2:
                raise MalformedDataError(
                    f"scene {n}: expected MS (H, W, 6) and PAN (2H, 2W), got {ms.shape}, {pan.shape}")
            ms_chw = np.ascontiguousarray(ms.transpose(2, 0, 1)[band_idx])
            pans, mss, origins = fusebox_pairs(pan, ms_chw, patch_size=patch_size, stride=stride, pan_shift=pan_shift)
            writer.append(pans, mss, np.zeros(len(pans), np.int64), scene=k, pan_origin=origins)
            scene_meta.append({"name": f"{n}", "ms": f"cropped/{n}_ms.mat", "pan": f"cropped/{n}_pan.mat",
                               "crs": None, "pairs": len(pans), "group": int(groups_all[n - 1]),
                               **locations[n - 1]})
        pairs = len(writer)
        group_of_sample = np.repeat([m["group"] for m in scene_meta], [m["pairs"] for m in scene_meta])
        split = split_array(pairs, *split_by_group(group_of_sample, test_fraction=config.test_fraction,
                                                   seed=config.seed))
        return writer.finalize(
            classes=None, task="instance", labels=np.arange(pairs, dtype=np.int64), split=split,
            pan_bands=["pan"], ms_bands=list(config.ms_bands), pan_pixel_size=[15.0, 15.0],
            ms_pixel_size=[30.0, 30.0], ratio=2, crs=None, scenes=scene_meta,
            splits={"rule": "by scene group (overlapping crops share a group)",
                    "test_fraction": config.test_fraction, "seed": config.seed},
            provenance={"recipe": "fusebox-landsat7", "source": str(folder),
                        "recipe_options": {**config.as_dict(), "stride": stride}},
        )


RECIPE = Recipe(
    name="fusebox-landsat7",
    folder="fusebox-landsat7",
    task="instance",
    summary="39 FuseBox Landsat-7 PAN/MS crop pairs (ratio 2, registered by a measured 1-pixel shift); no labels.",
    config=FuseboxConfig,
    build=_build,
)


def build_fusebox_landsat7(out: str | os.PathLike[str], **options: object) -> Path:
    """Build fusebox-landsat7 (``build_recipe("fusebox-landsat7", out, **options)``)."""
    return RECIPE.run(out, **options)  # type: ignore[arg-type]
