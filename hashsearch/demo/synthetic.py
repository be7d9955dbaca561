"""A synthetic dual-source dataset on disk, for ``hashsearch demo --synthetic`` and tests.

What this module owns: writing :func:`hashsearch.training.fake.fake_dual_source`
samples (class textures with per-class spectra, float 0..1) into the
:mod:`hashsearch.data.dual` format, as uint16 pixels (x 10000, like reflectance),
with a seeded per-class train/test split, so the demo runs the same path as on
real data. Imports :mod:`hashsearch.data` and, inside the function,
:mod:`hashsearch.training.fake` (torch).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hashsearch.data import DualDatasetWriter, split_per_class
from hashsearch.data.dual import split_array

__all__ = ["SYNTHETIC_SCALE", "write_synthetic_dataset"]

#: Fake values (about 0..1) are stored as uint16 round(x * SYNTHETIC_SCALE).
SYNTHETIC_SCALE = 10000


def write_synthetic_dataset(
    out: str | os.PathLike[str],
    *,
    samples: int = 400,
    num_classes: int = 8,
    pan_size: int = 64,
    ms_size: int = 16,
    test_fraction: float = 0.2,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write ``samples`` seeded fake PAN / MS pairs as a dual-source dataset.

    Args:
        out: Zarr group to write.
        samples: pairs N.
        num_classes: classes (labels balanced).
        pan_size: PAN side (1 band); ``ms_size`` (4 bands) must divide it.
        test_fraction: per-class fraction in the test split.
        seed: seed of the data and of the split.
        overwrite: replace ``out``.

    Returns:
        The dataset path.
    """
    from hashsearch.training.fake import fake_dual_source

    data = fake_dual_source(samples, num_classes=num_classes, pan_size=pan_size, ms_size=ms_size, seed=seed)
    labels = np.asarray(data.labels, dtype=np.int64)

    def quantise(x: object) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64) * SYNTHETIC_SCALE
        return np.clip(np.floor(arr + 0.5), 0, np.iinfo(np.uint16).max).astype(np.uint16)

    split = split_array(labels.size, *split_per_class(labels, test_fraction=test_fraction, seed=seed))
    with DualDatasetWriter(out, pan_shape=(1, pan_size, pan_size), ms_shape=(4, ms_size, ms_size),
                           pan_dtype=np.uint16, ms_dtype=np.uint16, overwrite=overwrite) as writer:
        writer.append(quantise(data.pan), quantise(data.ms), labels)
        return writer.finalize(
            classes=[f"texture-{c}" for c in range(num_classes)], task="class", split=split,
            pan_bands=["pan"], ms_bands=["blue", "green", "red", "nir"], ratio=pan_size // ms_size,
            splits={"rule": "per-class", "test_fraction": test_fraction, "seed": seed},
            provenance={"recipe": "synthetic", "note": "hashsearch.training.fake textures, not satellite imagery",
                        "recipe_options": {"samples": samples, "num_classes": num_classes, "seed": seed}},
        )
