"""``hashsearch eval``: models and a dataset in, a report folder out.

What this module owns: the evaluation pipeline (open the splits, encode both
sources with each model, rank PAN->MS and MS->PAN under the dataset's protocol,
draw the figures) and the report folder::

    OUT/
      results.json            every run, every number (hashsearch.eval.results)
      report.md               tables and figures (links to figures/)
      report.html             the same, self-contained (figures embedded as base64 PNG)
      figures/*.png           PR curves per direction (panels per code length), precision
                              within radius r, recall@k (instance), 2-D map of the codes
                              per run, query strips per run and direction

:func:`evaluate` runs one model; :func:`evaluate_and_report` runs one or several
(e.g. SIDHCNN at 16/32/64 bits beside CCA-ITQ) and writes the folder;
:func:`write_report` writes the folder from runs already evaluated (e.g. read back
with :func:`~hashsearch.eval.results.load_results`).

Imports :mod:`hashsearch.eval` (metrics, protocols, results, encoders, figures),
the engine and NumPy; torch and matplotlib only inside the functions that need them.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hashsearch.eval.encoders import EvalModel, as_model, encode_splits, open_splits
from hashsearch.eval.protocols import TRAIN, DirectionSetup, EncodedSplits, evaluate_encoded, resolve_protocol
from hashsearch.eval.results import DIRECTIONS, PROTOCOLS, EvalConfig, EvalRun, direction_name, save_results

__all__ = ["RunArtifacts", "evaluate", "evaluate_and_report", "write_report"]

logger = logging.getLogger("hashsearch")

#: Most pairs drawn into the 2-D map of the codes (t-SNE cost grows with it).
MAX_EMBEDDING_PAIRS = 1500


@dataclass
class RunArtifacts:
    """What one evaluation keeps in memory for its figures (not written to results.json).

    Attributes:
        encoded: the codes (and features) of both splits.
        setups: direction name -> who queried whom.
        train, test: the datasets of the two splits.
        meta: the dataset's attributes (task, classes, band names).
    """

    encoded: EncodedSplits
    setups: dict[str, DirectionSetup]
    train: Any
    test: Any
    meta: dict[str, Any]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "run"


def _dir_tag(direction: str) -> str:
    return direction.lower().replace("->", "2")


def _dataset_summary(meta: dict[str, Any], train: Any, test: Any, protocol: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": meta.get("path"),
        "name": meta.get("name") or (Path(str(meta["path"])).name if meta.get("path") else None),
        "task": meta.get("task"), "protocol": protocol, "train_size": len(train), "test_size": len(test),
    }
    classes = meta.get("classes")
    if classes:
        out["classes"] = list(classes)
    for src in ("pan", "ms"):
        m = meta.get(src) or {}
        if m:
            out[src] = {k: m[k] for k in ("shape", "dtype", "bands", "pixel_size") if k in m}
    return out


# ------------------------------------------------------------------ one model
def evaluate(
    model: Any,
    dataset: Any,
    *,
    config: EvalConfig | None = None,
    bits: int | None = None,
    device: str = "cpu",
    splits: tuple[Any, Any, dict[str, Any]] | None = None,
) -> tuple[EvalRun, RunArtifacts]:
    """Encode both splits with one model and rank both directions.

    Args:
        model: anything :func:`hashsearch.eval.encoders.as_model` accepts (a checkpoint
            path, an ``Encoder``, a fitted baseline or its ``.npz``, "cca" / "scm").
        dataset: a dataset path or a ``(train, test)`` pair (ignored when ``splits`` is given).
        config: evaluation settings (default :class:`EvalConfig`).
        bits: code length of a baseline fitted here ("cca" / "scm").
        device: where a checkpoint's networks run.
        splits: ``(train, test, meta)`` already opened (shared by several models).

    Returns:
        ``(run, artifacts)``: the numbers and what the figures need.
    """
    config = config or EvalConfig()
    start = time.perf_counter()
    train, test, meta = splits if splits is not None else open_splits(dataset)
    protocol = resolve_protocol(config.protocol, meta.get("task"))
    emodel: EvalModel = as_model(model, train_set=train, bits=bits, device=device, batch_size=config.batch_size,
                                 progress=config.progress)
    enc, enc_seconds = encode_splits(emodel, train, test, progress=config.progress, features=config.features)
    t_rank = time.perf_counter()
    directions, setups = evaluate_encoded(enc, protocol, config)
    rank_seconds = time.perf_counter() - t_rank
    notes: list[str] = []
    if config.features and enc.features is None:
        notes.append(f"{emodel.name} exposes no real-valued features: no quantization gap measured.")
    run = EvalRun(
        name=config.name or emodel.name, method=emodel.method, bits=emodel.bits, protocol=protocol,
        dataset=_dataset_summary(meta, train, test, protocol), model=dict(emodel.info), config=config.to_dict(),
        directions=directions,
        timings={"encode": round(enc_seconds, 3), "rank": round(rank_seconds, 3),
                 **({"fit": float(emodel.info["fit_seconds"])} if "fit_seconds" in emodel.info else {}),
                 "total": round(time.perf_counter() - start, 3)},
        notes=notes,
    )
    return run, RunArtifacts(encoded=enc, setups=setups, train=train, test=test, meta=meta)


# ------------------------------------------------------------------ per-run figures
def _raw(ds: Any) -> Any:
    """The reader under a normalising torch view (raw pixels, for true colour), else None."""
    inner = getattr(ds, "source", None)
    return inner if inner is not None and getattr(ds, "normalize", False) else None


def _image(ds: Any, index: int, source: str) -> Any:
    """Image ``index`` of ``source``: raw pixels when the view normalises them, else the item's."""
    raw = _raw(ds)
    return (raw if raw is not None else ds)[int(index)][source]


def _class_name(meta: dict[str, Any], label: int) -> str:
    classes = meta.get("classes") or []
    return str(classes[label]) if 0 <= label < len(classes) else str(label)


def _strip_rows(run: EvalRun, art: RunArtifacts, setup: DirectionSetup, config: EvalConfig,
                rgb: tuple[int, int, int] | None) -> list[dict[str, Any]]:
    from hashsearch.eval.figures import colour_levels, to_display
    from hashsearch.functional import hamming_distances, knn_search

    nq = setup.query_codes.shape[0]
    if nq == 0 or config.strip_queries == 0:
        return []
    rng = np.random.default_rng([config.seed, 0x5791])
    chosen = np.sort(rng.choice(nq, size=min(config.strip_queries, nq), replace=False))
    k = min(config.strip_results, setup.db_codes.shape[0])
    dist, pos = knn_search(setup.db_codes, setup.query_codes[chosen], k, nbits=art.encoded.nbits,
                           backend=config.backend, num_threads=config.num_threads)
    instance = run.protocol == "instance"

    levels = None
    if rgb is not None and _raw(art.test) is not None:  # raw pixels: one stretch from a sample keeps true colour
        sample = rng.choice(len(art.test), size=min(64, len(art.test)), replace=False)
        levels = colour_levels([_image(art.test, int(i), "ms") for i in sample], rgb)

    def show(img: Any, source: str) -> np.ndarray:
        return to_display(img, rgb if source == "ms" else None, levels=levels if source == "ms" else None)

    rows = []
    for row, q in enumerate(chosen):
        qi = int(setup.query_index[q])
        qkey = int(setup.query_keys[q])
        if instance:  # where the query's own pair is: its rank under the engine's rule (ties by position)
            d_all = hamming_distances(setup.query_codes[q : q + 1], setup.db_codes, nbits=art.encoded.nbits)[0]
            own = int(np.flatnonzero(setup.db_keys == qkey)[0])
            rank = int(np.sum(d_all < d_all[own]) + np.sum(d_all[:own] == d_all[own])) + 1
            q_title = f"{setup.query_source.upper()} query #{qi}\npair at rank {rank}"
        else:
            q_title = f"{setup.query_source.upper()} query #{qi}\n{_class_name(art.meta, qkey)}"
        results, titles, correct = [], [], []
        for d, p in zip(dist[row], pos[row], strict=True):
            ds = art.train if setup.db_split[p] == TRAIN else art.test
            results.append(show(_image(ds, int(setup.db_index[p]), setup.db_source), setup.db_source))
            ok = int(setup.db_keys[p]) == qkey
            correct.append(ok)
            split = "train" if setup.db_split[p] == TRAIN else "test"
            if instance:
                titles.append(f"d={int(d)} {'pair' if ok else f'{split} #{int(setup.db_index[p])}'}")
            else:
                titles.append(f"d={int(d)}\n{_class_name(art.meta, int(setup.db_keys[p]))}")
        rows.append({"query": show(_image(art.test, qi, setup.query_source), setup.query_source),
                     "query_title": q_title, "results": results, "titles": titles, "correct": correct,
                     "query_key": qkey})
    return rows


def _embedding_sample(labels: np.ndarray, per_class: int, instance: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 0xE3B])
    if instance:
        n = min(labels.size, per_class * 4, MAX_EMBEDDING_PAIRS)
        return np.sort(rng.choice(labels.size, size=n, replace=False))
    classes = np.unique(labels)
    per = max(1, min(per_class, MAX_EMBEDDING_PAIRS // max(1, classes.size)))
    picked = [rng.choice(idx, size=min(per, idx.size), replace=False)
              for idx in (np.flatnonzero(labels == c) for c in classes)]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def run_figures(run: EvalRun, art: RunArtifacts, out_dir: str | os.PathLike[str],
                config: EvalConfig | None = None, *, slug: str | None = None) -> dict[str, str]:
    """Draw the per-run figures (2-D map of the codes, query strips) into ``out_dir/figures``.

    Returns:
        Figure name -> path relative to ``out_dir`` (also stored in ``run.figures``).
    """
    from hashsearch.eval.figures import plot_embedding, plot_query_strips, rgb_bands

    config = config or EvalConfig()
    out = Path(out_dir)
    slug = slug or _slug(f"{run.name}-{run.bits}")
    figs: dict[str, str] = {}
    instance = run.protocol == "instance"
    enc = art.encoded
    labels = enc.labels["train"]
    sel = _embedding_sample(labels, config.embedding_per_class, instance, config.seed)
    if sel.size >= 3:
        rel = f"figures/embedding_{slug}.png"
        used = plot_embedding(enc.codes["train"]["pan"][sel], enc.codes["train"]["ms"][sel], labels[sel], enc.nbits,
                              out / rel, class_names=art.meta.get("classes"), instance=instance,
                              method=config.embedding, seed=config.seed, title=f"{run.name}: ")
        figs["embedding"] = rel
        run.notes.append(f"The 2-D map of {sel.size} training pairs is a {used} of the codes.")
    rgb, note = rgb_bands(art.meta.get("ms"))
    if note:
        ms_bands = int(np.shape(_image(art.test, 0, "ms"))[0]) if len(art.test) else 0
        shown = "the first three bands" if ms_bands >= 3 else "the first band in grey"
        run.notes.append(f"MS true colour: {note}; the strips show {shown}.")
    for name, setup in art.setups.items():
        rows = _strip_rows(run, art, setup, config, rgb)
        if rows:
            rel = f"figures/strips_{slug}_{_dir_tag(name)}.png"
            top = len(rows[0]["results"])
            plot_query_strips(rows, out / rel, title=f"{run.name} (l = {run.bits}) {name}: top {top} results, "
                                                     "wrong ones outlined in red")
            figs[f"strips {name}"] = rel
    run.figures.update(figs)
    return figs


# ------------------------------------------------------------------ the report
def _summary_figures(runs: Sequence[EvalRun], out: Path) -> dict[str, str]:
    from hashsearch.eval.figures import plot_pr_curves, plot_radius_precision, plot_recall_curves

    figs: dict[str, str] = {}
    if not runs:
        return figs
    for qs, ds in DIRECTIONS:
        d = direction_name(qs, ds)
        if not any(d in r.directions for r in runs):
            continue
        tag = _dir_tag(d)
        plot_pr_curves(runs, d, out / f"figures/pr_radius_{tag}.png", kind="radius")
        figs[f"PR by radius {d}"] = f"figures/pr_radius_{tag}.png"
        plot_pr_curves(runs, d, out / f"figures/pr_rank_{tag}.png", kind="rank")
        figs[f"PR by rank {d}"] = f"figures/pr_rank_{tag}.png"
        if any(r.protocol == "instance" for r in runs):
            plot_recall_curves([r for r in runs if r.protocol == "instance"], d, out / f"figures/recall_{tag}.png")
            figs[f"recall@k {d}"] = f"figures/recall_{tag}.png"
    radius = next(iter(runs[0].directions.values())).radius
    plot_radius_precision(runs, out / f"figures/precision_radius{radius}.png")
    figs[f"precision within radius {radius}"] = f"figures/precision_radius{radius}.png"
    return figs


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _tables(runs: Sequence[EvalRun]) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, caption, header, rows) of every table of the report."""
    tables = []
    dirs = [direction_name(q, d) for q, d in DIRECTIONS]
    lengths = sorted({r.bits for r in runs})
    class_runs = [r for r in runs if r.protocol == "class"]
    inst_runs = [r for r in runs if r.protocol == "instance"]
    if class_runs:
        names = list(dict.fromkeys(r.name for r in class_runs))
        header = ["Method"] + [f"{d} l={nb}" for d in dirs for nb in lengths]
        rows = []
        for name in names:
            row = [name]
            for d in dirs:
                for nb in lengths:
                    vals = [r.directions[d].map for r in class_runs if r.name == name and r.bits == nb
                            and d in r.directions]
                    row.append(_fmt(float(np.mean(vals))) + (f" ±{np.std(vals):.3f}" if len(vals) > 1 else "")
                               if vals else "–")
            rows.append(row)
        tables.append(("MAP by code length",
                       "MAP (eq. 10, full ranking, ties by database position) of each method at each code length, "
                       "both directions: the shape of the paper's Tables IV–VIII (mean ± std when several runs "
                       "share a name and length).", header, rows))
        header = ["Method", "l", "Direction", "MAP", "MAP tie-aware", "MAP@100", "P@10", "P@100",
                  "P (r≤2)", "R (r≤2)", "chance (prior)", "queries", "database"]
        rows = []
        for r in class_runs:
            for d, res in r.directions.items():
                k100 = min(100, res.database_size)
                k10 = min(10, res.database_size)
                rows.append([r.name, str(r.bits), d, _fmt(res.map), _fmt(res.map_tie_aware),
                             _fmt(res.map_at.get(k100)), _fmt(res.precision_at.get(k10)),
                             _fmt(res.precision_at.get(k100)), _fmt(res.precision_radius), _fmt(res.recall_radius),
                             _fmt(res.mean_relevant / max(1, res.database_size)), str(res.num_queries),
                             str(res.database_size)])
        tables.append(("Class retrieval in detail",
                       "Relevant = same class; test queries of one source against the training set of the other. "
                       "P/R (r≤2): precision and recall of everything within Hamming radius 2. Chance: the mean "
                       "share of relevant items in the database, about the MAP of a random ranking.", header, rows))
    if inst_runs:
        header = ["Method", "l", "Direction", "recall@1", "recall@10", "MRR", "MRR tie-aware", "chance (1/gallery)",
                  "gallery"]
        rows = []
        for r in inst_runs:
            for d, res in r.directions.items():
                rows.append([r.name, str(r.bits), d, _fmt(res.recall_at.get(min(1, res.database_size))),
                             _fmt(res.recall_at.get(min(10, res.database_size))), _fmt(res.mrr),
                             _fmt(res.mrr_tie_aware), _fmt(1.0 / max(1, res.database_size)),
                             str(res.database_size)])
        tables.append(("Instance matching",
                       "Relevant = the query's own pair; gallery = the other source of the test split "
                       "(plus training distractors when asked). recall@k: fraction of queries whose pair is in the "
                       "top k.", header, rows))
    gap_rows = [[r.name, str(r.bits), d, _fmt(res.map), _fmt(res.feature_map), _fmt(res.quantization_gap)]
                for r in runs for d, res in r.directions.items() if res.feature_map is not None]
    if gap_rows:
        tables.append(("Quantization gap",
                       "MAP of the real-valued features ranked by cosine similarity beside the MAP of their sign "
                       "codes ranked by Hamming distance: what binarisation costs (instance matching: MAP = MRR, one "
                       "relevant item).",
                       ["Method", "l", "Direction", "codes MAP", "features MAP (cosine)", "gap"], gap_rows))
    rows = [[r.name, str(r.bits)] + [_fmt(r.timings.get(k), 2) for k in ("fit", "encode", "rank", "figures", "total")]
            for r in runs]
    tables.append(("Timings", "Seconds per stage of each run.",
                   ["Method", "l", "fit", "encode", "rank", "figures", "total"], rows))
    return tables


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _intro(runs: Sequence[EvalRun]) -> list[tuple[str, str]]:
    ds = runs[0].dataset if runs else {}
    protocols = sorted({r.protocol for r in runs})
    items = [("Dataset", str(ds.get("path") or ds.get("name") or "in-memory splits")),
             ("Protocol", ", ".join(f"{PROTOCOLS[p]} ({p})" for p in protocols)),
             ("Splits", f"{ds.get('train_size', '?')} training / {ds.get('test_size', '?')} test pairs")]
    if ds.get("classes"):
        items.append(("Classes", str(len(ds["classes"]))))
    for src in ("pan", "ms"):
        info = ds.get(src) or {}
        if info.get("bands"):
            items.append((f"{src.upper()} bands", ", ".join(map(str, info["bands"]))))
    items.append(("Runs", ", ".join(f"{r.name} (l = {r.bits})" for r in runs)))
    return items


def _all_figures(runs: Sequence[EvalRun], summary: dict[str, str]) -> list[tuple[str, str]]:
    figs = list(summary.items())
    for r in runs:
        figs += [(f"{r.name} l={r.bits}: {k}", v) for k, v in r.figures.items()]
    return figs


def _write_md(path: Path, title: str, runs: Sequence[EvalRun], tables: list[Any], figs: list[tuple[str, str]]) -> None:
    out = [f"# {title}", ""]
    out += [f"- **{k}**: {v}" for k, v in _intro(runs)]
    out += ["", "Numbers: `results.json`. Definitions: docs/evaluation.md.", ""]
    for t, caption, header, rows in tables:
        out += [f"## {t}", "", caption, "", _md_table(header, rows), ""]
    if figs:
        out += ["## Figures", ""]
        out += [f"### {name}\n\n![{name}]({rel})\n" for name, rel in figs]
    notes = [n for r in runs for n in r.notes]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in dict.fromkeys(notes)] + [""]
    path.write_text("\n".join(out))


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f3f3f3}td{text-align:right}td:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
figure{margin:1em 1em 1em 0;display:inline-block;vertical-align:top}
figcaption{font-size:13px;color:#555}.caption{font-size:13px;color:#555}"""


def _write_html(path: Path, title: str, runs: Sequence[EvalRun], tables: list[Any],
                figs: list[tuple[str, str]]) -> None:
    e = html.escape
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
           f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1><ul>"]
    out += [f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in _intro(runs)]
    out += ["</ul><p>Numbers: <a href='results.json'>results.json</a>; "
            "<a href='report.md'>report.md</a>.</p>"]
    for t, caption, header, rows in tables:
        out += [f"<h2>{e(t)}</h2><p class='caption'>{e(caption)}</p><table><tr>"]
        out += [f"<th>{e(h)}</th>" for h in header] + ["</tr>"]
        out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
        out += ["</table>"]
    if figs:
        out += ["<h2>Figures</h2>"]
        for name, rel in figs:
            data = base64.b64encode((path.parent / rel).read_bytes()).decode("ascii")
            out += [f"<figure><img alt='{e(name)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{e(name)} (<a href='{e(rel)}'>{e(rel)}</a>)</figcaption></figure>"]
    notes = [n for r in runs for n in r.notes]
    if notes:
        out += ["<h2>Notes</h2><ul>"] + [f"<li>{e(n)}</li>" for n in dict.fromkeys(notes)] + ["</ul>"]
    out += ["</body></html>"]
    path.write_text("\n".join(out))


def write_report(runs: Sequence[EvalRun], out_dir: str | os.PathLike[str], *, title: str | None = None,
                 figures: bool = True) -> Path:
    """Write results.json, report.md, report.html and the summary figures of evaluated runs.

    Per-run figures already drawn (``run.figures``, paths relative to ``run.folder``
    or to ``out_dir``) are copied into ``out_dir`` when they live elsewhere.

    Args:
        runs: the runs (one dataset; any methods and code lengths).
        out_dir: the report folder (created).
        title: the report's title (default: "hashsearch evaluation: <dataset>").
        figures: draw the summary figures (PR curves, precision within radius, recall@k).

    Returns:
        The path of report.html.
    """
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    runs = list(runs)
    for r in runs:  # per-run figures from another folder (a merged report)
        if r.folder is not None and Path(r.folder).resolve() != out.resolve():
            for rel in r.figures.values():
                src = Path(r.folder) / rel
                if src.is_file():
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, out / rel)
        r.figures = {k: v for k, v in r.figures.items() if (out / v).is_file()}
    summary = _summary_figures(runs, out) if figures and runs else {}
    ds = runs[0].dataset if runs else {}
    title = title or f"hashsearch evaluation: {ds.get('name') or ds.get('path') or 'dataset'}"
    tables = _tables(runs)
    figs = _all_figures(runs, summary)
    save_results(runs, out / "results.json")
    _write_md(out / "report.md", title, runs, tables, figs)
    _write_html(out / "report.html", title, runs, tables, figs)
    for r in runs:
        r.folder = out
    return out / "report.html"


def evaluate_and_report(
    model: Any,
    dataset: Any,
    out_dir: str | os.PathLike[str],
    *,
    config: EvalConfig | None = None,
    bits: int | Sequence[int] | None = None,
    device: str = "cpu",
    title: str | None = None,
    reader_options: dict[str, Any] | None = None,
) -> tuple[list[EvalRun], Path]:
    """Evaluate one model or several on a dataset and write the report folder.

    Args:
        model: one model or a list of models, each anything
            :func:`hashsearch.eval.encoders.as_model` accepts: a checkpoint path (file or
            run folder), an ``Encoder``, a fitted CCA-ITQ / SCM baseline or its ``.npz``,
            "cca" / "scm" (fitted here on the training split, once per code length in
            ``bits``), or an object with ``bits`` and ``features(images, source)``.
        dataset: a dual-source dataset path (Zarr group or DSRSID ``.mat``) or a
            ``(train, test)`` pair of map-style datasets.
        out_dir: the report folder (created; files in it are overwritten).
        config: evaluation settings (:class:`~hashsearch.eval.results.EvalConfig`).
        bits: code length(s) of the baselines fitted here.
        device: where checkpoints' networks run ("cpu", "cuda", "auto").
        title: the report's title.
        reader_options: passed to the dataset's reader when ``dataset`` is a path (e.g.
            ``{"test_per_class": 100}`` for a DSRSID file's split).

    Returns:
        ``(runs, report_path)``: one :class:`~hashsearch.eval.results.EvalRun` per
        model (and code length), and the path of ``report.html``.
    """
    config = config or EvalConfig()
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    if not models:
        raise ValueError("no model to evaluate")
    lengths: list[int | None] = [None]
    if bits is not None:
        lengths = [int(bits)] if isinstance(bits, (int, np.integer)) else [int(b) for b in bits]
    splits = open_splits(dataset, **(reader_options or {}))
    out = Path(out_dir)
    runs: list[EvalRun] = []
    slugs: set[str] = set()
    for m in models:
        baseline = isinstance(m, str) and m.lower() in ("cca", "cca-itq", "scm", "scm-seq")
        for nb in lengths if baseline else [lengths[0] if len(lengths) == 1 else None]:
            run, art = evaluate(m, None, config=config, bits=nb, device=device, splits=splits)
            if config.figures:
                start = time.perf_counter()
                slug = base = _slug(f"{run.name}-{run.bits}")
                i = 1
                while slug in slugs:
                    i += 1
                    slug = f"{base}-{i}"
                slugs.add(slug)
                run_figures(run, art, out, config, slug=slug)
                run.timings["figures"] = round(time.perf_counter() - start, 3)
                run.timings["total"] = round(run.timings["total"] + run.timings["figures"], 3)
            runs.append(run)
            logger.info("%s (l = %d): %s", run.name, run.bits, run.headline())
    report = write_report(runs, out, title=title, figures=config.figures)
    return runs, report
