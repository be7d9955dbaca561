"""Recipes that turn the real data in ``$HASHSEARCH_DATA`` into dual-source datasets.

Each recipe reads one folder of ``hashsearch._paths.data_root()`` (``$HASHSEARCH_DATA``,
default ``../shared/data``), never downloads anything, and writes a
:mod:`hashsearch.data.dual` Zarr dataset with a stored, seeded train/test split.
CLI: ``hashsearch dataset build NAME --out PATH [options]``; docs/datasets.md
describes every recipe, its options, what it derives and its task.

One module per recipe (``aid_subset``, ``eurosat_ms``, ``fusebox_landsat7``,
``nc_landsat7``, ``pansharpening_pairs``). **Adding a recipe is adding one module**
here that defines a config dataclass (a
:class:`~hashsearch.data.recipes._base.RecipeConfig` subclass, one field per option
with its help text) and ``RECIPE = Recipe(...)``: this package finds it (every
module not starting with ``_``), :data:`RECIPES` and :func:`build_recipe` list it,
and the CLI builds its subcommand and options from the config.

Imports: the recipe modules (found at import) and ``_base``; the recipe modules
import :mod:`hashsearch.data` readers and writers below them, never this package.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path
from typing import Any

from hashsearch.data.recipes._base import Recipe, RecipeConfig, recipe_dir

__all__ = [
    "EUROSAT_BANDS",
    "EUROSAT_PAN_WEIGHTS",
    "FUSEBOX_BANDS",
    "FUSEBOX_PAN_SHIFT",
    "NC_LANDCLASS96",
    "RECIPES",
    "Recipe",
    "RecipeConfig",
    "build_eurosat_ms",
    "build_fusebox_landsat7",
    "build_nc_landsat7",
    "build_recipe",
    "eurosat_pair",
    "fusebox_pairs",
    "get_recipe",
    "recipe_dir",
]

def _discover() -> dict[str, Recipe]:
    found: dict[str, Recipe] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        recipe = getattr(module, "RECIPE", None)
        if not isinstance(recipe, Recipe):
            raise ImportError(f"recipe module {module.__name__} defines no RECIPE = Recipe(...)")
        if recipe.name in found:
            raise ImportError(f"two recipe modules are named {recipe.name!r}")
        found[recipe.name] = recipe
    return found


#: Every recipe by name (in module order). ``RECIPES[name](out, **options)`` builds it.
RECIPES: dict[str, Recipe] = _discover()


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Raises:
        ValueError: unknown name (the message lists the recipes).
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; one of {', '.join(RECIPES)}")
    return RECIPES[name]


def build_recipe(
    name: str,
    out: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    config: RecipeConfig | None = None,
    **options: Any,
) -> Path:
    """Build the named recipe's dataset at ``out``.

    Args:
        name: one of :data:`RECIPES` ("aid-subset", "eurosat-ms", "fusebox-landsat7",
            "nc-landsat7", "pansharpening-pairs").
        out: Zarr group to write (atomically).
        root: data root (default ``$HASHSEARCH_DATA``, else ``../shared/data``).
        overwrite: replace an existing dataset at ``out``.
        progress: tqdm bars.
        config: the recipe's config object; or give its fields as ``**options``.
        **options: the recipe's options (``seed``, ``test_fraction``, ``ratio``, ...).

    Returns:
        The dataset path.

    Raises:
        ValueError: unknown recipe name, an option the recipe does not have, or an
            option value out of range.
        DataNotFoundError: the data is not under the data root.
        MalformedDataError: an input file is damaged or not in the expected layout.
    """
    return get_recipe(name).run(out, root=root, overwrite=overwrite, progress=progress, config=config, **options)


# The constants and helpers of the first recipes, where they used to be imported from.
from hashsearch.data.recipes.eurosat_ms import EUROSAT_BANDS, EUROSAT_PAN_WEIGHTS, build_eurosat_ms, eurosat_pair  # noqa: E402
from hashsearch.data.recipes.fusebox_landsat7 import (  # noqa: E402
    FUSEBOX_BANDS,
    FUSEBOX_PAN_SHIFT,
    build_fusebox_landsat7,
    fusebox_pairs,
)
from hashsearch.data.recipes.nc_landsat7 import NC_LANDCLASS96, build_nc_landsat7  # noqa: E402
