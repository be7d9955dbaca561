"""The installed version of hashsearch (the one metadata lookup). Base layer: standard library only."""

from __future__ import annotations

from importlib import metadata as _metadata

__all__ = ["__version__"]

try:
    __version__: str = _metadata.version("hashsearch")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0+unknown"
