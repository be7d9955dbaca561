"""Where hashsearch finds the real data sets (``HASHSEARCH_DATA``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root"]

_REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """Return the folder that holds the real data sets.

    ``$HASHSEARCH_DATA`` when set, else ``../shared/data`` beside a source checkout.
    The folder may not exist: callers that need it raise an error (or tests skip)
    that names this path and the variable.
    """
    env = os.environ.get("HASHSEARCH_DATA")
    if env:
        return Path(env).expanduser()
    return (_REPO_ROOT.parent / "shared" / "data").resolve()
