"""``hashsearch dataset``: tile scenes, build the real-data recipes, inspect datasets.

- ``hashsearch dataset tile --pan P.tif --ms M.tif [--ms M2.tif ...] [--labels L.tif] --out D.zarr``
- ``hashsearch dataset build RECIPE --out D.zarr [recipe options]``: one subcommand per
  recipe of :data:`hashsearch.data.recipes.RECIPES`, its options built from the
  recipe's config dataclass (``hashsearch dataset build RECIPE --help`` lists them)
- ``hashsearch dataset recipes [--json]``: every recipe, its task, data folder and options
- ``hashsearch dataset info D.zarr|DSRSID.mat [--json]``

rasterio, h5py and scipy (the ``data`` extra) are imported inside the commands.
"""

from __future__ import annotations

import enum
import inspect
import time
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from hashsearch.cli._common import cli_errors, emit


def register(app: typer.Typer) -> None:
    """Add the ``dataset`` command group to ``app``."""
    group = typer.Typer(
        name="dataset",
        help="Build and inspect dual-source (PAN + MS) datasets.",
        no_args_is_help=True,
    )
    group.command("tile")(tile)
    group.add_typer(_build_group(), name="build")
    group.command("recipes")(recipes)
    group.command("info")(info)
    app.add_typer(group, name="dataset")


def _int_list(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None


def _summary(path: Path, seconds: float) -> dict[str, Any]:
    from hashsearch.data.dual import dataset_info

    info = dataset_info(path)
    result = {k: info[k] for k in ("path", "num_samples", "task", "pan", "ms", "ratio", "splits")}
    if "classes" in info:
        result["classes"] = {name: c["total"] for name, c in info["classes"].items()}
    result["size_bytes"] = info["size_bytes"]
    result["seconds"] = round(seconds, 2)
    return result


@cli_errors
def tile(
    pan: Path = typer.Option(..., "--pan", help="PAN GeoTIFF."),
    ms: list[Path] = typer.Option(..., "--ms", help="MS GeoTIFF; repeat for one file per band."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset to write (a Zarr folder, e.g. pairs.zarr)."),
    labels: Path | None = typer.Option(None, "--labels", help="Label raster (integer classes)."),
    patch_size: int = typer.Option(256, help="PAN patch side in PAN pixels."),
    stride: int | None = typer.Option(None, help="Step between patches in PAN pixels [default: patch size]."),
    ratio: int | None = typer.Option(None, "--ratio", help="Target PAN:MS ratio (MS block-averaged to reach it)."),
    min_purity: float = typer.Option(0.5, help="Smallest majority-class share of a patch."),
    max_nodata: float = typer.Option(0.0, help="Largest nodata share of a kept patch."),
    ms_bands: str | None = typer.Option(None, help="1-based bands of a multi-band MS file, e.g. 1,2,3,4."),
    band_names: str | None = typer.Option(None, help="Names of the MS bands, e.g. blue,green,red,nir."),
    test_fraction: float | None = typer.Option(None, help="Fraction of each class put in the test split."),
    seed: int = typer.Option(0, help="Seed of the split."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing dataset."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Tile a co-registered PAN / MS scene (aligned by geotransform) into a dataset."""
    from hashsearch.data.tiler import Scene, TileConfig, tile_scenes

    config = TileConfig(
        patch_size=patch_size, stride=stride, target_ratio=ratio, min_purity=min_purity,
        max_nodata_fraction=max_nodata, ms_bands=_int_list(ms_bands, "--ms-bands"),
        ms_band_names=[b.strip() for b in band_names.split(",")] if band_names else None,
        test_fraction=test_fraction, split_seed=seed,
    )
    scene = Scene(pan=pan, ms=ms[0] if len(ms) == 1 else list(ms), labels=labels)
    start = time.perf_counter()
    path = tile_scenes([scene], out, config, overwrite=overwrite, progress=progress)
    emit(_summary(path, time.perf_counter() - start), as_json)


class _RecipeGroup(TyperGroup):
    """``hashsearch dataset build``: one subcommand per recipe; an unknown name is a
    one-line error (exit 1) that lists the recipes."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else None
        if name is not None and not name.startswith("-") and self.get_command(ctx, name) is None:
            typer.echo(f"error: unknown recipe {name!r}; one of {', '.join(self.list_commands(ctx))}", err=True)
            raise typer.Exit(1)
        return super().resolve_command(ctx, args)


#: Options every ``dataset build NAME`` command has (a recipe may not reuse these names).
_COMMON = ("ctx", "out", "data_root", "overwrite", "progress", "as_json")


def _cli_type(kind: Any) -> tuple[Any, Callable[[Any], Any]]:
    """(annotation typer sees, parser of the given value) for a config field type."""
    base = kind
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        base = args[0] if len(args) == 1 else str
    if typing.get_origin(base) is typing.Literal:
        choices = enum.Enum("Choice", {str(v): str(v) for v in typing.get_args(base)})  # type: ignore[misc]
        return choices | None, lambda v: v.value
    if base is tuple or typing.get_origin(base) is tuple:
        elems = [a for a in typing.get_args(base) if a is not Ellipsis] or [str]
        convert = elems[0]

        def parse(text: str) -> tuple[Any, ...]:
            try:
                return tuple(convert(v.strip()) for v in text.split(",") if v.strip())
            except ValueError:
                raise ValueError(f"expected comma-separated {convert.__name__} values, got {text!r}") from None

        return str | None, parse
    if base in (int, float, str, bool):
        return base | None, lambda v: v
    raise TypeError(f"recipe option type {kind!r} has no command-line form")


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _recipe_command(recipe: Any, every: dict[str, Any]) -> Callable[..., None]:
    """A Typer command for ``recipe``: the common options plus one per config field."""
    hints = typing.get_type_hints(recipe.config)
    parsers: dict[str, Callable[[Any], Any]] = {}
    params = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Path, default=typer.Option(
            ..., "--out", "-o", help="Dataset to write (a Zarr folder).")),
        inspect.Parameter("data_root", inspect.Parameter.KEYWORD_ONLY, annotation=Path | None, default=typer.Option(
            None, "--data-root", help="Folder holding the data sets.",
            show_default="$HASHSEARCH_DATA or ../shared/data")),
        inspect.Parameter("overwrite", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=typer.Option(
            False, "--overwrite", help="Replace an existing dataset.")),
        inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=typer.Option(
            True, "--progress/--no-progress", help="Progress bars.")),
        inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, annotation=bool, default=typer.Option(
            False, "--json", help="Print one JSON object.")),
    ]
    for f in recipe.options():
        if f.name in _COMMON:
            raise TypeError(f"recipe {recipe.name}: option {f.name!r} clashes with a common option")
        annotation, parsers[f.name] = _cli_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        decls = [f"{flag}/--no-{f.name.replace('_', '-')}"] if hints[f.name] is bool else [flag]
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                        default=typer.Option(None, *decls, help=f.metadata.get("help", ""),
                                                             show_default=_show(f.default) if f.default is not None
                                                             else False)))

    def command(ctx: typer.Context, **values: Any) -> None:
        from hashsearch.data.recipes import build_recipe

        stray = [a for a in ctx.args if a.startswith("-")]
        if stray or ctx.args:
            word = (stray or ctx.args)[0]
            key = word.lstrip("-").split("=")[0].replace("-", "_")
            owners = [name for name, fields in every.items() if key in fields and name != recipe.name]
            hint = f" ({word} is an option of {', '.join(owners)})" if owners else ""
            raise ValueError(f"{word} does not apply to the {recipe.name} recipe{hint}; see "
                             f"`hashsearch dataset build {recipe.name} --help`")
        common = {k: values.pop(k) for k in _COMMON if k in values}
        options = {k: parsers[k](v) for k, v in values.items() if v is not None}
        start = time.perf_counter()
        path = build_recipe(recipe.name, common["out"], root=common["data_root"], overwrite=common["overwrite"],
                            progress=common["progress"], **options)
        emit(_summary(path, time.perf_counter() - start), common["as_json"])

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    command.__doc__ = f"{recipe.summary} Task: {recipe.task}."
    return cli_errors(command)


def _build_group() -> typer.Typer:
    """``dataset build``: a subcommand per recipe of :data:`hashsearch.data.recipes.RECIPES`."""
    from hashsearch.data.recipes import RECIPES

    group = typer.Typer(
        name="build", cls=_RecipeGroup, no_args_is_help=True,
        help="Build a dataset from the real data in $HASHSEARCH_DATA (never downloads anything).",
    )
    every = {name: {f.name for f in r.options()} for name, r in RECIPES.items()}
    for name, recipe in RECIPES.items():
        group.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                      help=f"{recipe.summary} Task: {recipe.task}.")(_recipe_command(recipe, every))
    return group


@cli_errors
def recipes(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """List the recipes: task, data folder (under $HASHSEARCH_DATA), whether it is there, options."""
    from hashsearch._paths import data_root
    from hashsearch.data.recipes import RECIPES

    result: dict[str, Any] = {}
    for name, recipe in RECIPES.items():
        result[name] = {
            "task": recipe.task,
            "summary": recipe.summary,
            "folder": str(data_root() / recipe.folder),
            "present": (data_root() / recipe.folder).is_dir(),
            "options": {f.name: {"default": list(f.default) if isinstance(f.default, tuple) else f.default,
                                 "help": f.metadata.get("help", "")} for f in recipe.options()},
        }
    if as_json:
        emit(result, True)
        return
    for name, entry in result.items():
        opts = ", ".join(f"--{k.replace('_', '-')}" for k in entry["options"])
        state = "present" if entry["present"] else "absent"
        typer.echo(f"{name} ({entry['task']}; {entry['folder']}: {state})\n  {entry['summary']}\n  options: {opts}")


@cli_errors
def info(
    path: Path = typer.Argument(..., help="A dataset folder, or a DSRSID .mat file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Describe a dataset: sizes, shapes, classes per split, CRS, statistics, provenance."""
    if path.suffix.lower() == ".mat" or path.is_file():
        import numpy as np

        from hashsearch.data.dsrsid import DSRSID

        with DSRSID(path) as ds:
            counts = np.bincount(ds.labels, minlength=len(ds.classes))
            result: dict[str, Any] = {
                "path": str(ds.path),
                "format": "DSRSID (MATLAB v7.3)",
                "num_samples": len(ds),
                "pan": f"uint8 {ds.pan_shape}",
                "ms": f"uint8 {ds.ms_shape}",
                "classes": {name: int(c) for name, c in zip(ds.classes, counts, strict=True)},
            }
        emit(result, as_json)
        return
    from hashsearch.data.dual import dataset_info

    emit(dataset_info(path), as_json)
