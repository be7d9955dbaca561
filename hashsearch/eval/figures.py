"""PNG figures of an evaluation (matplotlib, Agg canvas; no pyplot state).

What this module owns: how results and codes are drawn.

- :func:`plot_pr_curves` — precision-recall per direction, one panel per code
  length, one curve per run (the paper's Figs. 3, 4, 6, 7); by Hamming radius or by rank.
- :func:`plot_radius_precision` — precision within Hamming radius r (2) per run and direction.
- :func:`plot_recall_curves` — instance matching: recall@k against k (the pair found in the top k).
- :func:`plot_embedding` — t-SNE (scikit-learn) or PCA of the codes of both
  sources, coloured by class, marked by source (Fig. 5).
- :func:`plot_query_strips` — query patches and their top results, MS in true
  colour, wrong results outlined in red (Figs. 8, 9).
- :func:`rgb_bands` / :func:`to_display` — which MS bands show as red, green, blue.

matplotlib (the ``plot`` extra) and scikit-learn are imported inside the functions.
"""

from __future__ import annotations

import logging
import os
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hashsearch.eval.results import EvalRun

__all__ = [
    "colour_levels",
    "plot_embedding",
    "plot_pr_curves",
    "plot_query_strips",
    "plot_radius_precision",
    "plot_recall_curves",
    "rgb_bands",
    "to_display",
]

logger = logging.getLogger("hashsearch")

_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_SENTINEL_RGB = ("b04", "b03", "b02")  # Sentinel-2's two-digit names: B04 red, B03 green, B02 blue


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _label(run: EvalRun) -> str:
    return run.name


# ------------------------------------------------------------------ curves
def plot_pr_curves(runs: Sequence[EvalRun], direction: str, path: str | os.PathLike[str], *,
                   kind: str = "radius") -> Path:
    """Precision-recall curves of one direction: a panel per code length, a curve per run.

    Args:
        runs: evaluated runs (any code lengths and methods).
        direction: "PAN->MS" or "MS->PAN".
        path: PNG to write.
        kind: "radius" (a point per Hamming radius 0..l) or "rank" (a point per rank).
    """
    if kind not in ("radius", "rank"):
        raise ValueError(f"kind must be 'radius' or 'rank', got {kind!r}")
    bits = sorted({r.bits for r in runs if direction in r.directions})
    fig = _figure(3.6 * max(1, len(bits)), 3.4)
    axes = fig.subplots(1, max(1, len(bits)), squeeze=False)[0]
    for ax, nb in zip(axes, bits, strict=False):
        for i, run in enumerate(r for r in runs if r.bits == nb and direction in r.directions):
            curve = run.directions[direction].pr_radius if kind == "radius" else run.directions[direction].pr_rank
            ax.plot(curve.recall, curve.precision, _STYLES[i % len(_STYLES)], marker=_MARKERS[i % len(_MARKERS)],
                    markersize=3 if kind == "radius" else 2, label=_label(run))
        ax.set_title(f"{direction}, l = {nb}")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Precision-recall by {'Hamming radius' if kind == 'radius' else 'rank'}", fontsize=10)
    return _save(fig, path)


def plot_recall_curves(runs: Sequence[EvalRun], direction: str, path: str | os.PathLike[str]) -> Path:
    """Instance matching: recall@k (the query's pair within the top k) against k, log scale."""
    fig = _figure(4.6, 3.4)
    ax = fig.subplots()
    for i, run in enumerate(r for r in runs if direction in r.directions):
        c = run.directions[direction].pr_rank
        ax.plot(c.x, c.recall, _STYLES[i % len(_STYLES)], label=f"{_label(run)} (l = {run.bits})")
    ax.set_xscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title(f"{direction}: own pair within the top k")
    return _save(fig, path)


def plot_radius_precision(runs: Sequence[EvalRun], path: str | os.PathLike[str]) -> Path:
    """Precision within Hamming radius r per run and direction (lines over l when lengths vary)."""
    fig = _figure(5.2, 3.4)
    ax = fig.subplots()
    radius = next(iter(runs[0].directions.values())).radius if runs else 2
    lengths = sorted({r.bits for r in runs})
    dirs = sorted({d for r in runs for d in r.directions}, reverse=True)
    if len(lengths) > 1:
        names = list(dict.fromkeys(r.name for r in runs))
        for i, name in enumerate(names):
            for j, d in enumerate(dirs):
                pts = sorted((r.bits, r.directions[d].precision_radius) for r in runs if r.name == name
                             and d in r.directions)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], _STYLES[j % len(_STYLES)],
                        marker=_MARKERS[i % len(_MARKERS)], label=f"{name} {d}")
        ax.set_xticks(lengths)
        ax.set_xlabel("code length l")
    else:
        labels = [textwrap.fill(r.name, 14) for r in runs]  # long names ("SIDHCNN, balanced pairs") wrap
        x = np.arange(len(runs))
        width = 0.8 / max(1, len(dirs))
        for j, d in enumerate(dirs):
            vals = [r.directions[d].precision_radius if d in r.directions else 0.0 for r in runs]
            bars = ax.bar(x + (j - (len(dirs) - 1) / 2) * width, vals, width, label=d)
            ax.bar_label(bars, fmt="%.3f", fontsize=7)
        ax.set_xticks(x, labels, fontsize=7 if len(runs) > 6 else 8)
        ax.set_xlabel(f"l = {lengths[0]}" if lengths else "")
    ax.set_ylabel(f"precision within radius {radius}")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    ax.set_title(f"Precision within Hamming radius {radius}")
    return _save(fig, path)


# ------------------------------------------------------------------ embedding
def _unpacked(codes: np.ndarray, nbits: int) -> np.ndarray:
    bits = np.unpackbits(codes, axis=1, count=nbits, bitorder="little").astype(np.float32)
    return 2.0 * bits - 1.0  # ±1: squared Euclidean distance = 4 x Hamming distance


def embed_2d(x: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of the rows of ``x`` (n, d): t-SNE when asked / available, else PCA.

    Returns:
        ``(coords float (n, 2), method used: "t-SNE" or "PCA")``.
    """
    x = np.asarray(x, dtype=np.float64)
    if method in ("auto", "tsne") and x.shape[0] >= 5:
        try:
            from sklearn.manifold import TSNE
        except ImportError as exc:
            if method == "tsne":
                raise RuntimeError("t-SNE needs scikit-learn: pip install scikit-learn "
                                   "(or use embedding='pca')") from exc
        else:
            perplexity = float(min(30.0, (x.shape[0] - 1) / 3.0))
            coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                          learning_rate="auto").fit_transform(x)
            return np.asarray(coords), "t-SNE"
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ vt[:2].T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    return coords, "PCA"


def plot_embedding(pan_codes: np.ndarray, ms_codes: np.ndarray, labels: np.ndarray, nbits: int,
                   path: str | os.PathLike[str], *, class_names: Sequence[str] | None = None,
                   instance: bool = False, method: str = "auto", seed: int = 0, title: str = "") -> str:
    """Codes of paired PAN and MS samples in 2-D, coloured by class (or by source), marked by source.

    Args:
        pan_codes, ms_codes: packed uint8 (n, nbits / 8) of the same n pairs.
        labels: int (n,) class labels (ignored when ``instance``).
        nbits: code length.
        path: PNG to write.
        class_names: names of the labels.
        instance: pairs without classes: colour by source and join each pair by a line.
        method: "auto", "tsne" or "pca".
        seed: t-SNE seed.
        title: figure title prefix.

    Returns:
        The method used ("t-SNE" or "PCA").
    """
    n = pan_codes.shape[0]
    coords, used = embed_2d(np.vstack([_unpacked(pan_codes, nbits), _unpacked(ms_codes, nbits)]), method, seed)
    p, m = coords[:n], coords[n:]
    fig = _figure(6.4, 5.0)
    ax = fig.subplots()
    if instance:
        for i in range(n):
            ax.plot([p[i, 0], m[i, 0]], [p[i, 1], m[i, 1]], color="0.8", linewidth=0.5, zorder=1)
        ax.scatter(p[:, 0], p[:, 1], s=10, marker="o", color="tab:blue", label="PAN", zorder=2)
        ax.scatter(m[:, 0], m[:, 1], s=12, marker="^", color="tab:orange", label="MS", zorder=2)
    else:
        import matplotlib

        classes = np.unique(labels)
        cmap = matplotlib.colormaps["tab20" if classes.size > 10 else "tab10"]
        for i, c in enumerate(classes):
            name = class_names[int(c)] if class_names is not None and 0 <= int(c) < len(class_names) else str(c)
            colour = cmap(i % cmap.N)
            sel = labels == c
            ax.scatter(p[sel, 0], p[sel, 1], s=10, marker="o", color=colour, label=f"PAN-{name}")
            ax.scatter(m[sel, 0], m[sel, 1], s=14, marker="^", facecolors="none", edgecolors=[colour],
                       label=f"MS-{name}")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=6, ncol=2 if not instance else 1, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(f"{title}{used} of the {nbits}-bit codes (o PAN, ^ MS)", fontsize=9)
    _save(fig, path)
    return used


# ------------------------------------------------------------------ images
def rgb_bands(meta_ms: dict[str, Any] | None) -> tuple[tuple[int, int, int] | None, str | None]:
    """Which MS bands to show as (red, green, blue), from a dataset's MS attributes.

    Uses, in order: explicit indices (``rgb``, ``rgb_indices`` or ``rgb_bands`` in the
    MS attributes), then the band names ("red", "green", "blue" as words, not "red
    edge"; Sentinel-2's "B04", "B03", "B02").

    Returns:
        ``(indices or None, note)``: None with a note when the bands cannot be
        identified (the caller then shows the first three bands, or grey).
    """
    meta_ms = meta_ms or {}
    n = len(meta_ms.get("bands") or []) or int((meta_ms.get("shape") or [0])[0] or 0)
    for key in ("rgb", "rgb_indices", "rgb_bands"):
        value = meta_ms.get(key)
        if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, int) for v in value):
            if n and not all(0 <= v < n for v in value):
                return None, f"MS attribute {key}={list(value)} is out of range for {n} bands"
            return (int(value[0]), int(value[1]), int(value[2])), None
    names = [str(b).lower() for b in (meta_ms.get("bands") or [])]
    if not names:
        return None, "the dataset records no MS band names"
    found: list[int] = []
    for colour, sentinel in zip(("red", "green", "blue"), _SENTINEL_RGB, strict=True):
        idx = [i for i, b in enumerate(names)
               if (re.search(rf"\b{colour}\b", b) and "edge" not in b) or b == sentinel]
        if not idx:
            return None, f"no MS band named {colour!r} among {names}"
        found.append(idx[0])
    return (found[0], found[1], found[2]), None


def _stretch(band: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(band, [2, 98])
    if hi <= lo:
        hi = lo + 1e-6
    return np.clip((band - lo) / (hi - lo), 0, 1)


def colour_levels(images: Sequence[Any], rgb: tuple[int, int, int]) -> tuple[np.ndarray, float]:
    """One display stretch for the colour bands of a set of images (e.g. a sample of a dataset).

    Each colour band's dark level is its 2nd percentile over all the images (haze,
    sensor offsets); the three bands share one gain, the 98th percentile of all three
    above their dark levels. Shown with these levels, patches keep their brightness
    relative to each other and the balance between bands: true colour for raw pixels.

    Returns:
        ``(offsets float64 (3,), gain)`` for :func:`to_display`'s ``levels``.
    """
    stack = np.stack([np.asarray(im.cpu() if hasattr(im, "cpu") else im, dtype=np.float64)[list(rgb)]
                      for im in images])  # (n, 3, H, W)
    offsets = np.percentile(stack, 2, axis=(0, 2, 3))
    gain = float(np.percentile(stack - offsets[None, :, None, None], 98))
    return offsets, gain if gain > 0 else 1e-6


def to_display(image: Any, rgb: tuple[int, int, int] | None = None, *,
               levels: tuple[np.ndarray, float] | None = None) -> np.ndarray:
    """An image (C, H, W) as a displayable float array: (H, W) grey or (H, W, 3) colour in [0, 1].

    Each band is stretched between its own 2nd and 98th percentiles (so any per-band
    affine normalisation of the pixels shows the same), unless ``levels`` (from
    :func:`colour_levels`) give one stretch for the colour bands: true colour. With
    ``rgb`` the three bands are the colour channels; without, three or more bands
    show the first three, one band shows grey.
    """
    arr = np.asarray(image.cpu() if hasattr(image, "cpu") else image, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.shape[0] == 1:
        return _stretch(arr[0])
    idx = rgb if rgb is not None else ((0, 1, 2) if arr.shape[0] >= 3 else None)
    if idx is None:
        return _stretch(arr[0])
    colour = arr[list(idx)]
    if levels is not None:
        offsets, gain = levels
        return np.clip((colour - np.asarray(offsets)[:, None, None]) / gain, 0, 1).transpose(1, 2, 0)
    return np.stack([_stretch(band) for band in colour], axis=-1)


def plot_query_strips(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Query strips: a row per query, the query patch then its top results.

    Args:
        rows: one dict per query: ``"query"`` (display array), ``"query_title"``,
            ``"results"`` (list of display arrays), ``"titles"`` (list of str),
            ``"correct"`` (list of bool; wrong results get a red outline).
        path: PNG to write.
        title: figure title.
    """
    ncol = 1 + max((len(r["results"]) for r in rows), default=0)
    fig = _figure(1.35 * ncol + 0.3, 1.55 * max(1, len(rows)) + 0.4)
    axes = fig.subplots(max(1, len(rows)), ncol, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
    for i, row in enumerate(rows):
        ax = axes[i, 0]
        ax.imshow(row["query"], cmap="gray" if row["query"].ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(row["query_title"], fontsize=7)
        for s in ax.spines.values():
            s.set_visible(True)
            s.set_color("tab:blue")
            s.set_linewidth(2.5)
        for j, (img, text, ok) in enumerate(zip(row["results"], row["titles"], row["correct"], strict=True)):
            ax = axes[i, j + 1]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_title(text, fontsize=6, color="black" if ok else "red")
            if not ok:
                for s in ax.spines.values():
                    s.set_visible(True)
                    s.set_color("red")
                    s.set_linewidth(3)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
