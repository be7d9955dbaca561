"""Demos of the ``hashsearch demo`` command.

- :mod:`.pipeline`: the product demo on real imagery (dataset, SIDHCNN training, code
  stores, cross-source MAP beside the baselines, example retrievals, the report);
  ``hashsearch demo``. Imported on use (it needs torch).
- :mod:`.strips`: example retrievals drawn as query strips (also ``hashsearch query --show``).
- :mod:`.synthetic`: seeded fake pairs as a dual-source dataset (``hashsearch demo --synthetic``).
- :mod:`.engine`: the engine timing (random codes, hashsearch beside FAISS); ``hashsearch demo engine``.
"""

from __future__ import annotations

from hashsearch.demo.engine import EngineDemoConfig, run_engine_demo

__all__ = ["EngineDemoConfig", "run_engine_demo"]
