"""Recipe ``aid-subset``: class-level pairs derived from 6,000 AID RGB scenes (30 classes).

AID (Xia et al., IEEE TGRS 2017) is Google Earth imagery in 30 scene classes; the copy
under ``aid-subset/`` holds the 200 lowest-numbered images of each class, downsampled
by its source repository to 150 x 150 RGB JPEG (``manifest.json`` gives each file's
md5). There is no PAN or MS sensor, so a dual sample is derived as for EuroSAT, from
the same ground and at GF-1's 4:1 ratio:

1. a centre crop of ``crop`` x ``crop`` pixels (default 128; 150 is not a multiple of
   4), averaged over ``crop / pan_size`` pixels per side when ``pan_size`` is smaller
   (``pan_size=32`` gives 32 x 32 PAN / 8 x 8 MS pairs of the whole scene);
2. **PAN** (1 x S x S) = luminance ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601 luma,
   ``pan_weights``): one broad visible band, as a PAN sensor records;
3. **MS** (3 x S/r x S/r) = blue, green, red (GF-1's band order) averaged over
   ``r x r`` pixels, ``r = ratio`` (default 4).

Values stay uint8, rounded half up. Because PAN and MS come from the same three
bands, the pair tests learning and the 4:1 geometry at a size where a model can learn
(twelve times the labelled pairs of eurosat-ms, three times its classes), not a real
sensor gap. Labels are the sorted class folders; split: a seeded ``test_fraction``
(0.2) of each class (4,800 train / 1,200 test). ``per_class`` takes the first N
images of each class (by number) and ``classes`` a subset of classes, for quick
builds and for learning curves.

Imports: :mod:`hashsearch.data.dual`, ``splits``, ``_io`` and the recipes' ``_base``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hashsearch.data._io import read_image
from hashsearch.data.dual import DualDatasetWriter, split_array
from hashsearch.data.errors import DataNotFoundError, MalformedDataError
from hashsearch.data.recipes._base import (
    Recipe,
    RecipeConfig,
    block_mean,
    check_against_manifest,
    option,
    read_manifest,
    recipe_dir,
    round_to,
)
from hashsearch.data.splits import split_per_class

__all__ = ["AID_PAN_WEIGHTS", "RECIPE", "AidConfig", "aid_pair"]

#: Weights of R, G, B in the derived PAN band (ITU-R BT.601 luma).
AID_PAN_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)


@dataclass
class AidConfig(RecipeConfig):
    """Options of ``aid-subset`` (``test_fraction``: of each class)."""

    crop: int = option(128, "Side of the centre crop of each 150 x 150 image, in image pixels.")
    pan_size: int | None = option(None, "PAN side; the crop is averaged down to it (crop / pan_size a whole number) "
                                        "(default: the crop).")
    ratio: int = option(4, "PAN:MS ratio (MS = the RGB bands averaged ratio x ratio).")
    pan_weights: tuple[float, float, float] = option(AID_PAN_WEIGHTS, "Weights of R, G, B in the PAN band.")
    per_class: int | None = option(None, "Use only the first N images of each class (by number) (default: all).")
    classes: tuple[str, ...] | None = option(None, "Use only these classes, by folder name (default: all 30).")
    verify: bool = option(True, "Check every image against manifest.json's md5 sums.")

    def __post_init__(self) -> None:
        super().__post_init__()
        size = self.pan_size or self.crop
        if self.crop < 1 or self.crop % size:
            raise ValueError(f"crop ({self.crop}) must be a positive multiple of pan_size ({size})")
        if self.ratio < 1 or size % self.ratio:
            raise ValueError(f"the PAN side ({size}) must be a multiple of the ratio ({self.ratio})")
        if len(self.pan_weights) != 3:
            raise ValueError(f"pan_weights must be 3 numbers (R, G, B), got {self.pan_weights!r}")
        if self.per_class is not None and self.per_class < 1:
            raise ValueError(f"per_class must be at least 1, got {self.per_class}")


def aid_pair(
    rgb: np.ndarray, *, crop: int = 128, pan_size: int | None = None, ratio: int = 4,
    weights: Sequence[float] = AID_PAN_WEIGHTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Derive a PAN / MS pair from one RGB image (see the module docstring).

    Args:
        rgb: uint8 (H, W, 3) image, H and W at least ``crop``.
        crop: centre crop side.
        pan_size: PAN side (default ``crop``); ``crop / pan_size`` pixels are averaged.
        ratio: PAN:MS ratio.
        weights: weights of R, G, B in PAN.

    Returns:
        ``(pan, ms)``: uint8 (1, S, S) and uint8 (3, S/ratio, S/ratio) with bands blue,
        green, red; S = ``pan_size``.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise MalformedDataError(f"an AID image must be (H, W, 3) RGB, got {rgb.shape}")
    h, w = rgb.shape[:2]
    if h < crop or w < crop:
        raise MalformedDataError(f"image {h} x {w} is smaller than the {crop} x {crop} crop")
    size = pan_size or crop
    r0, c0 = (h - crop) // 2, (w - crop) // 2
    bands = block_mean(rgb[r0 : r0 + crop, c0 : c0 + crop].transpose(2, 0, 1), crop // size)  # R, G, B float
    pan = np.tensordot(np.asarray(weights, np.float64), bands, axes=1)[None]
    ms = block_mean(bands[::-1], ratio)  # blue, green, red
    return round_to(pan, np.uint8), round_to(ms, np.uint8)


def _number(p: Path) -> tuple[int, str]:
    tail = p.stem.rsplit("_", 1)[-1]
    return (int(tail) if tail.isdigit() else -1, p.name)


def _build(out: Path, config: AidConfig, *, root: str | os.PathLike[str] | None, overwrite: bool,
           progress: bool) -> Path:
    from tqdm.auto import tqdm

    folder = recipe_dir("aid-subset", root)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DataNotFoundError(f"no class folders in {folder}")
    if config.classes is not None:
        absent = sorted(set(config.classes) - set(classes))
        if absent:
            raise DataNotFoundError(f"aid-subset class(es) {absent} not in {folder} (found {', '.join(classes)})")
        classes = sorted(set(config.classes))
    manifest = folder / "manifest.json"
    expected = read_manifest(manifest) if config.verify else {}
    files: list[tuple[int, Path]] = []
    for k, c in enumerate(classes):
        members = sorted((p for p in (folder / c).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")),
                         key=_number)
        if not members:
            raise DataNotFoundError(f"no images in {folder / c}")
        files.extend((k, p) for p in members[: config.per_class])
    labels = np.array([k for k, _ in files], dtype=np.int64)
    split = split_array(labels.size, *split_per_class(labels, test_fraction=config.test_fraction, seed=config.seed))
    s = config.pan_size or config.crop
    q = s // config.ratio
    scenes: list[dict[str, Any]] = []
    batch_pan: list[np.ndarray] = []
    batch_ms: list[np.ndarray] = []
    batch_lab: list[int] = []
    with DualDatasetWriter(out, pan_shape=(1, s, s), ms_shape=(3, q, q), pan_dtype=np.uint8,
                           ms_dtype=np.uint8, overwrite=overwrite) as writer:

        def flush() -> None:
            if batch_lab:
                start = len(writer)
                writer.append(np.stack(batch_pan), np.stack(batch_ms), batch_lab,
                              scene=np.arange(start, start + len(batch_lab)),
                              pan_origin=np.zeros((len(batch_lab), 2), np.int64))
                batch_pan.clear()
                batch_ms.clear()
                batch_lab.clear()

        for k, path in tqdm(files, desc="aid-subset", unit="image", disable=not progress):
            rel = f"{path.parent.name}/{path.name}"
            check_against_manifest(path, rel, expected, manifest)
            pan, ms = aid_pair(read_image(path, "AID"), crop=config.crop, pan_size=s, ratio=config.ratio,
                               weights=config.pan_weights)
            batch_pan.append(pan)
            batch_ms.append(ms)
            batch_lab.append(k)
            scenes.append({"name": path.stem, "file": rel})
            if len(batch_lab) >= 256:
                flush()
        flush()
        weights = list(config.pan_weights)
        return writer.finalize(
            classes=classes, task="class", split=split,
            pan_bands=[f"pan ({weights[0]:g} R + {weights[1]:g} G + {weights[2]:g} B)"],
            ms_bands=["blue", "green", "red"], ms_rgb=[2, 1, 0], ratio=config.ratio, crs=None, scenes=scenes,
            splits={"rule": "per-class", "test_fraction": config.test_fraction, "seed": config.seed},
            provenance={"recipe": "aid-subset", "source": str(folder),
                        "recipe_options": {**config.as_dict(), "verified_md5": bool(expected)}},
        )


RECIPE = Recipe(
    name="aid-subset",
    folder="aid-subset",
    task="class",
    summary="6,000 AID RGB scenes, 30 classes; PAN = luminance of a centre crop, MS = blue/green/red averaged 4x4.",
    config=AidConfig,
    build=_build,
)
