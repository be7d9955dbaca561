"""MAP of Hamming ranking for training code: a re-export of :mod:`hashsearch.eval.metrics`.

The definitions (eq. 10 over the engine's ranking, ties by database position, a
query without relevant items scoring 0, MAP@k) have one home,
:mod:`hashsearch.eval.metrics`; this module keeps the names training code and
older scripts import (``from hashsearch.training.metrics import
mean_average_precision``). What a training run reports for each protocol is
:mod:`hashsearch.training.experiments`' business.

Imports :mod:`hashsearch.eval.metrics` only.
"""

from __future__ import annotations

from hashsearch.eval.metrics import average_precisions, mean_average_precision

__all__ = ["average_precisions", "mean_average_precision"]
