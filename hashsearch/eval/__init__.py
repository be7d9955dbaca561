"""Evaluation of hashing models: retrieval metrics, protocols and reports.

Modules (import direction downward only; no cycles):

- :mod:`.metrics` — every number: eq. 10 MAP (ties by database position), tie-aware
  MAP, MAP@k, precision@k, recall@k, MRR, precision / recall within Hamming radius r,
  PR curves by radius and by rank; rankings come from the engine (``knn_search``).
- :mod:`.results` — :class:`EvalConfig`, :class:`DirectionResult`, :class:`EvalRun`,
  ``results.json`` (:func:`save_results`, :func:`load_results`).
- :mod:`.protocols` — class retrieval and instance matching over encoded splits:
  :func:`resolve_protocol`, :class:`EncodedSplits`, :func:`evaluate_encoded`.
- :mod:`.encoders` — checkpoints, Encoders, baselines and duck-typed models -> codes.
- :mod:`.figures` — the PNG figures (matplotlib, the ``plot`` extra).
- :mod:`.report` — the pipeline and the report folder.

Stable API (other parts of hashsearch and the demo call these; arguments may only
be added, as keyword arguments with defaults)::

    from hashsearch.eval.report import evaluate_and_report   # also: from hashsearch.eval import ...
    runs, report_path = evaluate_and_report(
        model,                 # checkpoint path | Encoder | fitted baseline | "cca" | "scm" | duck model,
                               # or a list of them
        dataset,               # dataset path (Zarr group / DSRSID .mat) or a (train, test) pair
        out_dir,               # report folder: report.md, report.html, results.json, figures/
        *, config=None,        # EvalConfig (protocol, distractors, ks, radius, features, figures, ...)
        bits=None,             # code length(s) of baselines fitted here
        device="cpu", title=None,
    )                          # -> (list[EvalRun], Path of report.html)

    from hashsearch.eval.protocols import EncodedSplits, evaluate_encoded, resolve_protocol
    protocol = resolve_protocol("auto", task)               # "class" | "instance"
    results, setups = evaluate_encoded(EncodedSplits(nbits, codes, labels, features), protocol, config)

Torch-free at import time: it ranks codes with the engine and may import the base
modules, ``backends``, ``functional``, ``index``, ``store`` and ``data``; it imports
``hashsearch.training`` (torch) only inside the functions that encode images, and
never ``cli``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EvalConfig", "EvalRun", "evaluate", "evaluate_and_report", "load_results", "write_report"]

_LAZY = {"evaluate": "report", "evaluate_and_report": "report", "write_report": "report",
         "EvalConfig": "results", "EvalRun": "results", "load_results": "results"}


def __getattr__(name: str) -> Any:
    """``from hashsearch.eval import evaluate_and_report`` without importing the pipeline up front."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"hashsearch.eval.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'hashsearch.eval' has no attribute {name!r}")
