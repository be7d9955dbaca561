"""What this machine offers: the one CPU count of the package.

Base layer: imports only the standard library.
"""

from __future__ import annotations

import os

__all__ = ["available_cpus"]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask on Linux, else ``os.cpu_count()``), >= 1.

    Environment variables such as ``HASHSEARCH_NUM_THREADS`` are not read here: callers
    that honour one (:func:`hashsearch.backends.default_num_threads`) do so on top.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
