"""Evaluation of hashing models: retrieval metrics, protocols and reports.

Torch-free: it ranks codes with the engine and may import the base modules,
``backends``, ``functional``, ``index``, ``store`` and ``data``, never
``training`` at import time or ``cli``.
"""

from __future__ import annotations
