"""Example retrievals drawn as strips: each query patch, then its top results.

What this module owns: turning a :class:`hashsearch.retrieval.RetrievalResult` (and
the dataset its archive was encoded from) into the rows that
:func:`hashsearch.eval.figures.plot_query_strips` draws. Used by ``hashsearch query
--show`` and by the demo.

Imports NumPy, :mod:`hashsearch.retrieval` (types only), :mod:`hashsearch.data` and
:mod:`hashsearch.eval.figures` (matplotlib, inside the function).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_strips"]

logger = logging.getLogger("hashsearch")


def _dataset(path: str | None) -> Any:
    if not path:
        return None
    try:
        from hashsearch.data import open_dataset

        return open_dataset(path, "all")
    except Exception as exc:  # the strip still shows the query and the ids
        logger.warning("cannot open the archive's dataset %s to show the results (%s)", path, exc)
        return None


def write_strips(
    result: Any,
    queries: Any,
    path: str | os.PathLike[str],
    *,
    title: str = "",
    query_labels: Sequence[int] | np.ndarray | None = None,
    max_queries: int = 8,
    max_results: int = 8,
) -> Path:
    """Draw up to ``max_queries`` queries and their first ``max_results`` results.

    Args:
        result: a :class:`hashsearch.retrieval.RetrievalResult`.
        queries: (nq, C, S, S) query images in pixel units (as given to ``search``).
        path: PNG to write.
        title: figure title.
        query_labels: the queries' labels, when known: results of another label are
            outlined in red.
        max_queries, max_results: how much to draw.

    Returns:
        The PNG's path. Result images come from the dataset the archive was encoded
        from (``result.dataset``, ``result.indices``); without it each result is a
        blank tile titled with its id and distance.
    """
    from hashsearch.eval.figures import plot_query_strips, rgb_bands, to_display

    ds = _dataset(result.dataset) if result.indices is not None else None
    rgb = None
    if ds is not None:
        rgb, note = rgb_bands(ds.meta.get("ms"))
        if note:
            logger.info("MS shown as the first three bands: %s", note)
    queries = np.asarray(queries)
    rows = []
    for q in range(min(len(result), max_queries)):
        hits = result.hits(q)[:max_results]
        images, titles, correct = [], [], []
        if ds is not None and hits:
            block = ds.read(np.array([h["index"] for h in hits], dtype=np.int64))[result.target]
        for j, hit in enumerate(hits):
            if ds is not None:
                images.append(to_display(block[j], rgb if result.target == "ms" else None))
            else:
                images.append(np.ones((8, 8)))
            name = hit.get("class", hit.get("label"))
            titles.append(f"d={hit['distance']}" + (f" {name}" if name is not None else f" id {hit['id']}"))
            correct.append(query_labels is None or "label" not in hit or hit["label"] == int(query_labels[q]))
        qname = ""
        if query_labels is not None:
            label = int(query_labels[q])
            qname = f" {result.class_name(label) or label}"
        rows.append({"query": to_display(queries[q], rgb if result.source == "ms" else None),
                     "query_title": f"{result.source.upper()} query {q}\n{qname.strip()}".rstrip(), "results": images,
                     "titles": titles, "correct": correct})
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return plot_query_strips(rows, out, title=title)
