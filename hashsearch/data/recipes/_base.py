"""What every recipe shares: the :class:`Recipe` record, the :class:`RecipeConfig` base,
finding the data, manifests, block means, pair cutting and the PAN/MS registration check.

A recipe module (``hashsearch/data/recipes/NAME.py``) defines a config dataclass
subclassing :class:`RecipeConfig` (one field per option; :func:`option` gives each its
help text, which the CLI shows) and a module-level ``RECIPE = Recipe(...)``; the
package finds it by itself (:mod:`hashsearch.data.recipes`).

Imports: numpy, :mod:`hashsearch._paths`, :mod:`hashsearch.data.errors` and
:mod:`hashsearch.data._io`; never another recipe module.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hashsearch._paths import data_root
from hashsearch.data._io import md5
from hashsearch.data.errors import DataNotFoundError, MalformedDataError

__all__ = [
    "Recipe",
    "RecipeConfig",
    "block_mean",
    "cut_pairs",
    "need",
    "option",
    "read_manifest",
    "check_against_manifest",
    "recipe_dir",
    "registration_scores",
    "round_to",
]

logger = logging.getLogger("hashsearch")

Task = Literal["class", "instance"]


def option(default: Any, help: str) -> Any:
    """A config field with its help text (shown by ``hashsearch dataset build NAME --help``)."""
    return field(default=default, metadata={"help": help})


@dataclass
class RecipeConfig:
    """Options every recipe has (subclasses add theirs, each with :func:`option`).

    Attributes:
        test_fraction: fraction put in the test split (what it is a fraction of is the
            recipe's rule: of each class, of the scene groups, of the regions).
        seed: seed of the split.
    """

    test_fraction: float = option(0.2, "Fraction of the samples put in the test split (per the recipe's rule).")
    seed: int = option(0, "Seed of the split.")

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = hints.get(f.name)
            if value is not None and _is_tuple(kind) and isinstance(value, (list, tuple)):
                setattr(self, f.name, tuple(value))
            elif value is not None and _base_type(kind) in (int, float) and isinstance(value, bool):
                raise TypeError(f"option {f.name} must be a number, got {value!r}")
        if not 0.0 <= float(self.test_fraction) < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction!r}")
        if int(self.seed) != self.seed:
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    def as_dict(self) -> dict[str, Any]:
        """The options as plain JSON values (stored in the dataset's provenance)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _is_tuple(kind: Any) -> bool:
    kind = _base_type(kind)
    return kind is tuple or typing.get_origin(kind) is tuple


def _base_type(kind: Any) -> Any:
    """``X`` for ``X | None``; the type itself otherwise."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0] if len(args) == 1 else kind
    return kind


BuildFn = Callable[..., Path]


@dataclass(frozen=True)
class Recipe:
    """One dataset recipe: its name, data folder, task, options and builder.

    Attributes:
        name: the CLI / API name ("eurosat-ms").
        folder: its folder under the data root (usually ``name``).
        task: "class" or "instance" (which evaluation protocol applies).
        summary: one line for the CLI's list of recipes.
        config: the options dataclass (a :class:`RecipeConfig` subclass).
        build: ``build(out, config, *, root, overwrite, progress) -> Path``.
    """

    name: str
    folder: str
    task: Task
    summary: str
    config: type[RecipeConfig]
    build: BuildFn

    def options(self) -> list[dataclasses.Field[Any]]:
        """The config's fields (one per option)."""
        return list(dataclasses.fields(self.config))

    def make_config(self, **options: Any) -> RecipeConfig:
        """The config from keyword options; an unknown option is a clear error.

        Raises:
            ValueError: an option this recipe does not have (the message lists its options).
        """
        known = {f.name for f in self.options()}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"option(s) {', '.join(unknown)} do not apply to the {self.name} recipe; its options are "
                f"{', '.join(sorted(known))}"
            )
        return self.config(**options)

    def run(
        self,
        out: str | os.PathLike[str],
        *,
        root: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        progress: bool = True,
        config: RecipeConfig | None = None,
        **options: Any,
    ) -> Path:
        """Build this recipe's dataset at ``out`` (see :func:`hashsearch.data.recipes.build_recipe`)."""
        if config is not None and options:
            raise ValueError("give either config= or keyword options, not both")
        if config is None:
            config = self.make_config(**options)
        elif not isinstance(config, self.config):
            raise TypeError(f"the {self.name} recipe takes a {self.config.__name__}, got {type(config).__name__}")
        start = time.perf_counter()
        path = self.build(Path(out), config, root=root, overwrite=overwrite, progress=progress)
        logger.info("recipe %s built %s in %.1f s", self.name, path, time.perf_counter() - start)
        return path

    __call__ = run


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


def need(path: Path, what: str) -> Path:
    """``path`` if it exists, else :class:`DataNotFoundError` saying what is missing."""
    if not path.exists():
        raise DataNotFoundError(f"{what} is missing: {path}")
    return path


def read_manifest(path: Path) -> dict[str, str]:
    """``{relative file: md5}`` from a manifest: a list of ``{"file", "md5"}`` entries
    (eurosat-ms) or an object with a ``"files"`` mapping (aid-subset); {} when absent.

    Raises:
        MalformedDataError: the manifest is not one of those layouts.
    """
    if not path.exists():
        return {}
    try:
        content = json.loads(path.read_text())
        if isinstance(content, dict) and isinstance(content.get("files"), dict):
            return {str(k): str(v) for k, v in content["files"].items()}
        if isinstance(content, list):
            return {str(e["file"]): str(e["md5"]) for e in content}
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedDataError(f"{path} is not a readable manifest: {exc}") from exc
    raise MalformedDataError(f"{path}: expected a list of {{file, md5}} or an object with 'files'")


def check_against_manifest(path: Path, rel: str, expected: dict[str, str], manifest: Path) -> None:
    """Check one data file against the manifest's md5 sums (nothing when ``expected`` is empty).

    Args:
        path: the file; rel: its name in the manifest ("class/file.tif");
        expected: :func:`read_manifest`'s mapping; manifest: the manifest's path (for messages).

    Raises:
        MalformedDataError: the file is not listed, or its md5 differs (a damaged copy).
    """
    if not expected:
        return
    if rel not in expected:
        raise MalformedDataError(f"{rel} is not listed in {manifest}")
    if md5(path) != expected[rel]:
        raise MalformedDataError(f"{path} does not match its md5 in {manifest}; the copy is damaged")


def block_mean(x: np.ndarray, f: int) -> np.ndarray:
    """Mean of the last two axes over ``f x f`` blocks (sides must be multiples of ``f``), float64."""
    if f == 1:
        return x.astype(np.float64)
    h, w = x.shape[-2], x.shape[-1]
    if h % f or w % f:
        raise ValueError(f"sides {h} x {w} are not multiples of {f}")
    return x.astype(np.float64).reshape(*x.shape[:-2], h // f, f, w // f, f).mean(axis=(-3, -1))


def round_to(x: np.ndarray, dtype: Any) -> np.ndarray:
    """Round half up and clip into an integer dtype (float dtypes are cast as they are)."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.floor(x + 0.5), info.min, info.max).astype(dtype)


def cut_pairs(
    pan: np.ndarray, ms: np.ndarray, *, ratio: int, patch_size: int, stride: int, pan_shift: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut registered pairs from one scene whose pixels correspond without a geotransform.

    MS patch ``(i, j)`` (top-left MS pixel, side ``q = patch_size / ratio``) pairs with
    the PAN patch whose top-left PAN pixel is ``(ratio i + dr, ratio j + dc)``, with
    ``(dr, dc) = pan_shift``; patches start every ``stride / ratio`` MS pixels from the
    first ``i`` whose PAN patch lies inside the PAN image.

    Args:
        pan: (Hp, Wp) PAN image.
        ms: (C, Hm, Wm) MS image with ``Hp = ratio Hm`` and ``Wp = ratio Wm``.
        ratio: PAN pixels per MS pixel.
        patch_size: PAN patch side (a multiple of ``ratio``).
        stride: PAN step (a multiple of ``ratio``).
        pan_shift: PAN offset in PAN pixels.

    Returns:
        ``(pan_patches (B, 1, P, P), ms_patches (B, C, P/r, P/r), pan_origin int64 (B, 2))``
        in the input dtypes; B may be 0.

    Raises:
        ValueError: sizes that are not multiples of the ratio.
        MalformedDataError: PAN is not ``ratio`` times MS.
    """
    if patch_size % ratio or stride % ratio or patch_size < ratio or stride < ratio:
        raise ValueError(
            f"patch_size and stride must be positive multiples of the PAN:MS ratio {ratio}, got {patch_size}, {stride}"
        )
    if pan.shape != (ratio * ms.shape[1], ratio * ms.shape[2]):
        raise MalformedDataError(f"PAN {pan.shape} is not {ratio} times MS {ms.shape[1:]}")
    q, sq = patch_size // ratio, stride // ratio
    dr, dc = pan_shift

    def starts(ms_len: int, pan_len: int, d: int) -> list[int]:
        first = max(0, math.ceil(-d / ratio))  # smallest i with ratio i + d >= 0
        return [i for i in range(first, ms_len - q + 1, sq) if ratio * i + d + patch_size <= pan_len]

    rows, cols = starts(ms.shape[1], pan.shape[0], dr), starts(ms.shape[2], pan.shape[1], dc)
    pans, mss, origins = [], [], []
    for i in rows:
        for j in cols:
            r, c = ratio * i + dr, ratio * j + dc
            pans.append(pan[None, r : r + patch_size, c : c + patch_size])
            mss.append(ms[:, i : i + q, j : j + q])
            origins.append((r, c))
    if not pans:
        return (np.empty((0, 1, patch_size, patch_size), pan.dtype), np.empty((0, ms.shape[0], q, q), ms.dtype),
                np.empty((0, 2), np.int64))
    return np.stack(pans), np.stack(mss), np.asarray(origins, dtype=np.int64)


def registration_scores(
    pan: np.ndarray, ms: np.ndarray, ratio: int, shifts: Sequence[tuple[int, int]], *, margin: int | None = None
) -> dict[tuple[int, int], float]:
    """How well PAN matches MS at each PAN shift: mean over MS bands of the correlation
    between the band and the PAN block mean over the ``ratio x ratio`` PAN pixels that
    shift puts on each MS pixel.

    The fusebox and pansharpening recipes use it to choose (and the tests to check)
    the PAN offset that registers scenes without a geotransform.

    Args:
        pan: (Hp, Wp) PAN, ``Hp = ratio Hm``.
        ms: (C, Hm, Wm) MS.
        ratio: PAN pixels per MS pixel.
        shifts: (dr, dc) PAN offsets to score.
        margin: MS pixels left out at each border (default: enough for every shift).

    Returns:
        ``{shift: mean correlation}``; a constant band contributes nothing.
    """
    reach = max((max(abs(a), abs(b)) for a, b in shifts), default=0)
    m = margin if margin is not None else math.ceil(reach / ratio) + 1
    h, w = ms.shape[1] - 2 * m, ms.shape[2] - 2 * m
    if h < 2 or w < 2:
        raise ValueError(f"MS {ms.shape[1:]} is too small for a margin of {m}")
    x = ms[:, m : m + h, m : m + w].astype(np.float64).reshape(ms.shape[0], -1)
    x = x - x.mean(axis=1, keepdims=True)
    xn = np.linalg.norm(x, axis=1)
    out: dict[tuple[int, int], float] = {}
    # Summed-area table of PAN: each shift's block sums are four strided samples of it.
    sat = np.zeros((pan.shape[0] + 1, pan.shape[1] + 1), np.float64)
    sat[1:, 1:] = pan.astype(np.float64).cumsum(axis=0).cumsum(axis=1)
    for dr, dc in shifts:
        r0, c0 = ratio * m + dr, ratio * m + dc
        if r0 < 0 or c0 < 0 or r0 + ratio * h > pan.shape[0] or c0 + ratio * w > pan.shape[1]:
            raise ValueError(f"shift {(dr, dc)} reaches outside PAN with a margin of {m} MS pixels")

        def corner(a: int, b: int) -> np.ndarray:
            return sat[a : a + ratio * h : ratio, b : b + ratio * w : ratio]

        blk = (corner(r0 + ratio, c0 + ratio) - corner(r0, c0 + ratio) - corner(r0 + ratio, c0)
               + corner(r0, c0)).ravel()
        blk = blk - blk.mean()
        bn = np.linalg.norm(blk)
        corr = [float(x[b] @ blk / (xn[b] * bn)) for b in range(x.shape[0]) if xn[b] > 0 and bn > 0]
        out[(int(dr), int(dc))] = float(np.mean(corr)) if corr else float("nan")
    return out
