"""Demos of the ``hashsearch demo`` command.

- :mod:`.engine`: the engine timing (random codes, hashsearch beside FAISS).
"""

from __future__ import annotations

from hashsearch.demo.engine import EngineDemoConfig, run_engine_demo

__all__ = ["EngineDemoConfig", "run_engine_demo"]
