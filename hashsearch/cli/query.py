"""``hashsearch query``: find the archive images of the other source nearest to an image.

Examples::

    hashsearch query --model runs/eurosat --store ms.zarr pan_patch.npy -k 10
    hashsearch query --model demo-output/run --store demo-output/archive-pan.zarr scene_ms.tif --source ms \\
        --show strip.png --json

torch and :mod:`hashsearch.training` are imported inside the command only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer

from hashsearch.cli._common import cli_errors, emit

__all__ = ["query", "register"]

logger = logging.getLogger("hashsearch")


def register(app: typer.Typer) -> None:
    """Add ``query`` to ``app``."""
    app.command("query")(query)


def _infer_source(image: Any, retriever: Any) -> str:
    """The source whose network takes images with ``image``'s band count (and fits its size)."""
    bands, h, w = int(image.shape[-3]), int(image.shape[-2]), int(image.shape[-1])
    fits = []
    for key in ("pan", "ms"):
        c, s, _ = retriever.input_shape(key)
        if c == bands and min(h, w) >= s:
            fits.append(key)
    if len(fits) == 1:
        return fits[0]
    shapes = {k: retriever.input_shape(k) for k in ("pan", "ms")}
    if not fits:
        raise ValueError(f"the image has {bands} band(s) and {h}x{w} pixels; this model takes PAN {shapes['pan']} "
                         f"and MS {shapes['ms']} images (C, S, S)")
    raise ValueError(f"both networks take {bands}-band images of this size; "
                     "say which source it is with --source pan|ms")


def _queries(image: Any, shape: tuple[int, int, int], stride: int | None) -> tuple[Any, Any]:
    """(images (n, C, S, S), origins (n, 2) or None) of an image, a stack or a scene to tile."""
    import numpy as np

    from hashsearch.retrieval import tile_image

    c, s, _ = shape
    if image.ndim == 4:
        if tuple(image.shape[1:]) != shape:
            raise ValueError(f"a stack of query images must be (n, {c}, {s}, {s}), got {image.shape}")
        return image, None
    if image.shape[0] != c:
        raise ValueError(f"the image has {image.shape[0]} band(s), the model's network takes {c}")
    if tuple(image.shape[1:]) == (s, s) and stride is None:
        return image[None], np.zeros((1, 2), np.int64)
    return tile_image(image, s, stride=stride)


@cli_errors
def query(
    image: Path = typer.Argument(..., help="Query image: .npy (C, H, W) / (H, W) / (n, C, H, W), or a GeoTIFF. "
                                 "A scene larger than the model's patch is tiled; each tile is answered."),
    model: Path = typer.Option(..., "--model", "-m", help="Trained model: checkpoint file or run folder (last.pt)."),
    store: list[Path] = typer.Option(..., "--store", "-s", help="Code store of the archive (repeat for one store "
                                     "per source)."),
    k: int = typer.Option(10, "-k", help="Results per query image."),
    source: str | None = typer.Option(None, "--source", help="pan | ms: the source of the image (default: from its "
                                      "band count)."),
    data: Path | None = typer.Option(None, "--data", help="Dataset the model was trained on, when it was trained on "
                                     "normalised pixels (hashsearch train --data): its statistics normalise the "
                                     "query."),
    stride: int | None = typer.Option(None, "--stride", help="Step between tiles of a large scene (default: the "
                                      "patch side)."),
    show: Path | None = typer.Option(None, "--show", help="Write a PNG strip: each query tile and its results."),
    device: str = typer.Option("cpu", "--device"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Hash an image with the model and list the nearest archive entries of the other source."""
    from hashsearch.retrieval import Retriever, read_image, source_name

    array, meta = read_image(image)
    stores: Any = store[0] if len(store) == 1 else _stores_by_source(store)
    with Retriever(model, stores, pixel_stats=data, device=device) as retriever:
        key = source_name(source) if source is not None else _infer_source(array, retriever)
        images, origins = _queries(array, retriever.input_shape(key), stride)
        result = retriever.search(images, key, k)
    tiles = []
    for q in range(len(result)):
        entry: dict[str, Any] = {"query": q, "results": result.hits(q)}
        if origins is not None:
            entry["origin"] = [int(v) for v in origins[q]]
        tiles.append(entry)
    out: dict[str, Any] = {"image": str(image), "source": result.source, "target": result.target, "k": result.k,
                           "dataset": result.dataset, "queries": tiles}
    if show is not None:
        from hashsearch.demo.strips import write_strips

        out["strip"] = str(write_strips(result, images, show, title=f"{image.name}: {key} -> {result.target}"))
    if meta.get("crs"):
        out["crs"] = meta["crs"]
    if as_json:
        emit(out, True)
        return
    typer.echo(f"{image}: {len(result)} {key} quer{'y' if len(result) == 1 else 'ies'} -> {result.target} archive, "
               f"top {result.k}")
    for entry in tiles:
        where = f" at pixel (row {entry['origin'][0]}, col {entry['origin'][1]})" if "origin" in entry and \
            origins is not None and len(origins) > 1 else ""
        typer.echo(f"query {entry['query']}{where}:")
        for hit in entry["results"]:
            label = f"  {hit['class']}" if "class" in hit else (f"  label {hit['label']}" if "label" in hit else "")
            index = f"  (dataset index {hit['index']})" if "index" in hit else ""
            typer.echo(f"  {hit['rank']:>3}. id {hit['id']:<8} distance {hit['distance']:>3}{label}{index}")
    if show is not None:
        typer.echo(f"strip: {out['strip']}")


def _stores_by_source(paths: list[Path]) -> dict[str, Any]:
    """{source: store} for several stores, each recording its source."""
    from hashsearch.retrieval import _store_sources
    from hashsearch.store import CodeStore

    out: dict[str, Any] = {}
    for path in paths:
        with CodeStore.open(path) as opened:
            held = _store_sources(opened)
        if len(held) != 1:
            raise ValueError(f"with several --store, each must hold the codes of one source; {path} holds "
                             f"{', '.join(held) or 'an unrecorded source'}")
        (src,) = held
        if src in out:
            raise ValueError(f"two --store hold {src} codes: {out[src]} and {path}")
        out[src] = path
    return out
