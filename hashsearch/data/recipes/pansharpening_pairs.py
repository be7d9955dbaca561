"""Recipe ``pansharpening-pairs``: instance-level pairs from five very-high-resolution sensors.

Real PAN / MS pairs at GF-1's ratio 4, from the test scenes of two pansharpening code
repositories (no labels: a PAN patch must find the MS patch of its own ground):

======== =========================== ========== ======= ================================
scene    file                        sensor     dtype   MS bands
======== =========================== ========== ======= ================================
ge1      pnn/imgGE1.mat              GeoEye-1   uint8   blue, green, red, nir
ik       pnn/imgIK.mat               IKONOS     uint16  blue, green, red, nir (11-bit)
wv2      pnn/imgWV2.mat              WorldView-2 uint16 coastal, blue, green, yellow, red,
                                                        red_edge, nir1, nir2 (11-bit)
dgif1    dgif/Pan1.tif + MS1.tif     not stated uint8   red, green, blue, nir (inferred)
dgif2-5  dgif/PanN.tif + MSN.tif     not stated 8 / 16  blue, green, red, nir (inferred)
======== =========================== ========== ======= ================================

The ``pnn`` files (MATLAB v5) hold ``I_PAN`` (1280, 1280), ``I_MS`` (320, 320, B),
``sensor``, ``ratio`` (4), ``L`` (bit depth) and ``RGB_indexes`` (1-based), which the
recipe checks against its band table. The ``dgif`` GeoTIFFs state no sensor or band
order: the order above was inferred (true-colour renderings look natural with it
and not with the other, Melbourne Park's blue courts in scene 3; the band with the
most haze, the highest dark-object value, is the one called blue; band 4 is bright on
vegetation: NIR). MS1 and MS5 are 8-bit TIFFs tagged CMYK, which GDAL would convert
to RGBA: they are read raw (:func:`hashsearch.data._io.open_raster`).

**Registration.** No file has a geotransform; PAN pixels ``(4i .. 4i+3, 4j .. 4j+3)``
nominally cover MS pixel ``(i, j)``. As for fusebox-landsat7, the PAN offset was
measured with :func:`~hashsearch.data.recipes._base.registration_scores` (mean over
MS bands of the correlation between the band and the 4 x 4 PAN block mean, shifts
-8..8 PAN pixels): the pnn scenes are registered (best shift (0, 0)); the dgif
scenes are offset by 2 to 5 PAN pixels (:data:`PAN_SHIFTS`; e.g. dgif2: 0.74 at
(-3, -3) against 0.63 unshifted). ``register="table"`` applies these shifts,
``"measure"`` measures them again at build time, ``"none"`` uses (0, 0). Each
scene's entry in ``attrs["scenes"]`` records the shift applied and the correlation
there and unshifted.

**Bands.** ``bands="common"`` (default) keeps blue, green, red, NIR (WorldView-2's
NIR1) from every scene, in that order; ``bands="all"`` keeps every band and needs
scenes with one band list (``scenes=("wv2",)`` for the 8 WorldView-2 bands). Pixels
keep their values (uint16 when any scene is uint16, uint8 otherwise); scenes differ
in bit depth (8 or 11 bits), recorded per scene.

**Patches and split.** 64 x 64 PAN / 16 x 16 MS, stride 64 by default (any multiple
of 4: ``patch_size=32`` gives 8 x 8 MS): 400 pairs per pnn scene and 256 per dgif
scene. ``split="region"`` (default) cuts each scene into ``regions x regions``
blocks and puts a seeded ``test_fraction`` of each scene's blocks in test (a patch
belongs to the block of its centre; with ``stride < patch_size``, training patches
that overlap a test patch are dropped), so every sensor is in both splits and no
test ground is seen in training; ``split="scene"`` puts whole scenes in test.

Imports: :mod:`hashsearch.data.dual`, ``splits``, ``_io`` and the recipes' ``_base``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hashsearch.data._io import load_mat, open_raster, read_band
from hashsearch.data.dual import DualDatasetWriter, split_array
from hashsearch.data.errors import MalformedDataError
from hashsearch.data.recipes._base import Recipe, RecipeConfig, cut_pairs, option, recipe_dir, registration_scores
from hashsearch.data.splits import split_by_group

__all__ = ["COMMON_BANDS", "PAN_SHIFTS", "RECIPE", "SCENES", "PansharpeningConfig", "load_scene"]

logger = logging.getLogger("hashsearch")

RATIO = 4
_PNN4 = ("blue", "green", "red", "nir")
_WV2 = ("coastal", "blue", "green", "yellow", "red", "red_edge", "nir1", "nir2")
#: Every scene: its files, sensor, MS band names (file order), nominal (PAN, MS) ground pixel in m.
SCENES: dict[str, dict[str, Any]] = {
    "ge1": {"mat": "pnn/imgGE1.mat", "sensor": "GeoEye-1", "bands": _PNN4, "gsd": (0.5, 2.0)},
    "ik": {"mat": "pnn/imgIK.mat", "sensor": "IKONOS", "bands": _PNN4, "gsd": (1.0, 4.0)},
    "wv2": {"mat": "pnn/imgWV2.mat", "sensor": "WorldView-2", "bands": _WV2, "gsd": (0.5, 2.0)},
    "dgif1": {"pan": "dgif/Pan1.tif", "ms": "dgif/MS1.tif", "sensor": None, "bands": ("red", "green", "blue", "nir")},
    **{f"dgif{k}": {"pan": f"dgif/Pan{k}.tif", "ms": f"dgif/MS{k}.tif", "sensor": None, "bands": _PNN4}
       for k in (2, 3, 4, 5)},
}
#: The bands ``bands="common"`` keeps, and the name each sensor gives them.
COMMON_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir")
_ALIASES = {"nir": ("nir", "nir1")}
#: Measured PAN offsets (rows, cols in PAN pixels) registering PAN to MS (see the module docstring).
PAN_SHIFTS: dict[str, tuple[int, int]] = {
    "ge1": (0, 0), "ik": (0, 0), "wv2": (0, 0),
    "dgif1": (2, 0), "dgif2": (-3, -3), "dgif3": (-2, -4), "dgif4": (-2, -4), "dgif5": (-3, -5),
}
_SEARCH = 2 * RATIO  # the measured shifts are searched in -8..8 PAN pixels


@dataclass
class PansharpeningConfig(RecipeConfig):
    """Options of ``pansharpening-pairs`` (``test_fraction``: of each scene's regions, or of the scenes)."""

    test_fraction: float = option(0.2, "Fraction of each scene's regions (split=scene: of the scenes) put in test.")
    scenes: tuple[str, ...] | None = option(None, f"Scenes to use, from {', '.join(SCENES)} (default: all).")
    bands: Literal["common", "all"] = option("common", "common: blue, green, red, NIR of every scene; all: every "
                                                       "band (the scenes must share one band list, e.g. wv2).")
    patch_size: int = option(64, "PAN patch side (a multiple of 4; the MS side is a quarter).")
    stride: int | None = option(None, "Step between patches in PAN pixels (default: the patch size).")
    register: Literal["table", "measure", "none"] = option(
        "table", "PAN offset: the measured table, measured again now, or none.")
    split: Literal["region", "scene"] = option("region", "Test split: blocks of every scene, or whole scenes.")
    regions: int = option(4, "split=region: blocks per side of each scene.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scenes is not None:
            unknown = [s for s in self.scenes if s not in SCENES]
            if unknown or not self.scenes:
                raise ValueError(f"scenes must be names from {', '.join(SCENES)}, got {list(self.scenes)}")
        for name, value, choices in (("bands", self.bands, ("common", "all")),
                                     ("register", self.register, ("table", "measure", "none")),
                                     ("split", self.split, ("region", "scene"))):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        if self.regions < 1:
            raise ValueError(f"regions must be at least 1, got {self.regions}")


def load_scene(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read one scene: PAN (Hp, Wp), MS (C, Hm, Wm) in file band order, and facts about it.

    Raises:
        DataNotFoundError: a file is missing.
        MalformedDataError: a damaged file, or contents that disagree with :data:`SCENES`.
    """
    spec = SCENES[name]
    facts: dict[str, Any] = {"name": name, "sensor": spec["sensor"]}
    if "mat" in spec:
        path = folder / spec["mat"]
        v = load_mat(path, ["I_PAN", "I_MS", "ratio", "L", "RGB_indexes", "sensor"], f"pansharpening scene {name}")
        pan, ms = v["I_PAN"], np.ascontiguousarray(v["I_MS"].transpose(2, 0, 1))
        if int(v["ratio"].ravel()[0]) != RATIO:
            raise MalformedDataError(f"{path}: ratio {v['ratio'].ravel()[0]}, expected {RATIO}")
        rgb = [int(i) - 1 for i in v["RGB_indexes"].ravel()]
        named = [spec["bands"][i] if 0 <= i < len(spec["bands"]) else None for i in rgb]
        if len(spec["bands"]) != ms.shape[0] or named != ["red", "green", "blue"]:
            raise MalformedDataError(f"{path}: {ms.shape[0]} MS bands with RGB_indexes {rgb} (0-based) do not "
                                     f"match the expected bands {spec['bands']}")
        facts.update(files=[spec["mat"]], bit_depth=int(v["L"].ravel()[0]), file_sensor=str(v["sensor"].ravel()[0]))
    else:
        paths = folder / spec["pan"], folder / spec["ms"]
        with open_raster(paths[0], "PAN", georeferenced=False) as ds:
            pan = read_band(ds, 1, "PAN")
        with open_raster(paths[1], "MS", georeferenced=False) as ds:
            ms = read_band(ds, None, "MS")
        if ms.shape[0] != len(spec["bands"]):
            raise MalformedDataError(f"{paths[1]}: {ms.shape[0]} bands, expected {len(spec['bands'])}")
        facts.update(files=[spec["pan"], spec["ms"]], bit_depth=None)
    if pan.ndim != 2 or pan.shape != (RATIO * ms.shape[1], RATIO * ms.shape[2]):
        raise MalformedDataError(f"pansharpening scene {name}: PAN {pan.shape} is not {RATIO} times MS {ms.shape[1:]}")
    facts.update(pan_max=int(pan.max()), ms_max=int(ms.max()), gsd_m=list(spec.get("gsd") or []) or None)
    return pan, ms, facts


def _band_index(name: str, bands: tuple[str, ...], want: tuple[str, ...]) -> list[int]:
    out = []
    for b in want:
        hits = [bands.index(a) for a in _ALIASES.get(b, (b,)) if a in bands]
        if not hits:
            raise MalformedDataError(f"scene {name} has no {b!r} band (bands {bands})")
        out.append(hits[0])
    return out


def _region_split(origins: list[np.ndarray], shapes: list[tuple[int, int]], ids: list[int], config:
                  PansharpeningConfig, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Split codes (int8) and a keep mask over all pairs: per scene, a seeded fraction of its
    ``regions x regions`` blocks (by patch centre) go to test; training patches that overlap
    a test patch are dropped."""
    codes, keep = [], []
    n_regions = config.regions ** 2
    n_test = min(max(round(config.test_fraction * n_regions), 1 if config.test_fraction else 0), n_regions - 1)
    for org, (h, w), sid in zip(origins, shapes, ids, strict=True):
        cy, cx = org[:, 0] + patch / 2, org[:, 1] + patch / 2
        region = (np.minimum(cy * config.regions // h, config.regions - 1) * config.regions
                  + np.minimum(cx * config.regions // w, config.regions - 1)).astype(np.int64)
        test_regions = np.random.default_rng([config.seed, sid]).choice(n_regions, size=n_test, replace=False)
        is_test = np.isin(region, test_regions)
        painted = np.zeros((h + 1, w + 1), np.int64)  # summed-area table of the test footprints
        for r, c in org[is_test]:
            painted[r + 1 : r + 1 + patch, c + 1 : c + 1 + patch] = 1
        sat = painted.cumsum(0).cumsum(1)
        r, c = org[:, 0], org[:, 1]
        covered = sat[r + patch, c + patch] - sat[r, c + patch] - sat[r + patch, c] + sat[r, c]
        keep.append(is_test | (covered == 0))
        codes.append(is_test.astype(np.int8))
    return np.concatenate(codes), np.concatenate(keep)


def _build(out: Path, config: PansharpeningConfig, *, root: str | os.PathLike[str] | None, overwrite: bool,
           progress: bool) -> Path:
    from tqdm.auto import tqdm

    folder = recipe_dir("pansharpening-pairs", root)
    names = list(config.scenes) if config.scenes is not None else list(SCENES)
    names = [n for n in SCENES if n in names]  # table order
    if config.bands == "all":
        lists = {n: SCENES[n]["bands"] for n in names}
        if len(set(lists.values())) > 1:
            raise ValueError(f"bands='all' needs scenes with one band list; these differ: {lists}. "
                             "Choose scenes (e.g. scenes=wv2) or bands='common'")
        ms_bands = tuple(SCENES[names[0]]["bands"])
    else:
        ms_bands = COMMON_BANDS
    patch = config.patch_size
    stride = config.stride or patch
    if patch % RATIO or stride % RATIO:
        raise ValueError(f"patch_size ({patch}) and stride ({stride}) must be multiples of the ratio {RATIO}")

    pans, mss, origins, meta, shapes = [], [], [], [], []
    for name in tqdm(names, desc="pansharpening-pairs", unit="scene", disable=not progress):
        pan, ms, facts = load_scene(folder, name)
        ms = ms if config.bands == "all" else ms[_band_index(name, SCENES[name]["bands"], ms_bands)]
        if config.register == "measure":
            grid = [(dr, dc) for dr in range(-_SEARCH, _SEARCH + 1) for dc in range(-_SEARCH, _SEARCH + 1)]
            scores = registration_scores(pan, ms, RATIO, grid)
            shift = max(scores, key=lambda s: scores[s])
        else:
            shift = PAN_SHIFTS[name] if config.register == "table" else (0, 0)
        check = registration_scores(pan, ms, RATIO, [shift, (0, 0)], margin=_SEARCH // RATIO + 1)
        p, m, o = cut_pairs(pan, ms, ratio=RATIO, patch_size=patch, stride=stride, pan_shift=shift)
        pans.append(p)
        mss.append(m)
        origins.append(o)
        shapes.append(pan.shape)
        meta.append({**facts, "pan_shift": list(shift), "registration": {
            "correlation": round(check[shift], 4), "correlation_unshifted": round(check[(0, 0)], 4)}})
    if sum(len(p) for p in pans) == 0:
        raise ValueError(f"no {patch} x {patch} PAN patches fit in the scenes {names}")
    ids = [list(SCENES).index(n) for n in names]
    if config.split == "region":
        split_codes, keep = _region_split(origins, shapes, ids, config, patch)
    else:
        scene_of = np.repeat(np.arange(len(names)), [len(p) for p in pans])
        train, test = split_by_group(scene_of, test_fraction=config.test_fraction, seed=config.seed)
        split_codes = split_array(scene_of.size, train, test)
        keep = np.ones(scene_of.size, bool)
    dtype = np.result_type(*[p.dtype for p in pans], *[m.dtype for m in mss])
    q = patch // RATIO
    with DualDatasetWriter(out, pan_shape=(1, patch, patch), ms_shape=(len(ms_bands), q, q), pan_dtype=dtype,
                           ms_dtype=dtype, overwrite=overwrite) as writer:
        start = 0
        for k, (p, m, o) in enumerate(zip(pans, mss, origins, strict=True)):
            sel = keep[start : start + len(p)]
            writer.append(p[sel], m[sel], np.zeros(int(sel.sum()), np.int64), scene=k, pan_origin=o[sel],
                          split=split_codes[start : start + len(p)][sel])
            meta[k]["pairs"] = int(sel.sum())
            meta[k]["dropped_overlapping"] = int((~sel).sum())
            start += len(p)
        pairs = len(writer)
        split_meta = {"rule": "by region (blocks of each scene)" if config.split == "region" else "by scene",
                      "test_fraction": config.test_fraction, "seed": config.seed}
        if config.split == "region":
            split_meta["regions"] = config.regions
        return writer.finalize(
            classes=None, task="instance", labels=np.arange(pairs, dtype=np.int64),
            pan_bands=["pan"], ms_bands=list(ms_bands), ratio=RATIO, crs=None, scenes=meta, splits=split_meta,
            provenance={"recipe": "pansharpening-pairs", "source": str(folder),
                        "recipe_options": {**config.as_dict(), "stride": stride}},
        )


RECIPE = Recipe(
    name="pansharpening-pairs",
    folder="pansharpening-pairs",
    task="instance",
    summary="8 real PAN/MS scenes of GeoEye-1, IKONOS, WorldView-2 (8 bands) and others, ratio 4; no labels.",
    config=PansharpeningConfig,
    build=_build,
)
